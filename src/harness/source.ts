/**
 * Shader source and pipeline preparation: which .metal file a spec runs
 * (ours under shaders/, or the user's --shader), compiled by the backend and
 * its signature checked against the spec before anything runs.
 */
import { readFileSync, existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { UsageError } from '../errors.js';
import type { Backend, Pipeline } from '../backend/types.js';
import type { KernelSpec } from '../kernels/spec.js';
import { SHADER_DIR } from '../util/paths.js';
import { checkBindings } from './bindings.js';

export interface ShaderSource {
  file: string;
  source: string;
  entry: string;
}

/** The text of a shader file; UsageError (exit 2) when it is missing or unreadable. */
export function readShader(file: string): string {
  if (!existsSync(file)) throw new UsageError(`shader file not found: ${file}`);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read shader ${file}: ${(e as Error).message}`);
  }
}

/** Where a spec's own shader is: under shaders/ for the catalog, an absolute path for a user spec. */
export function specShaderPath(spec: KernelSpec): string {
  return isAbsolute(spec.shader) ? spec.shader : join(SHADER_DIR, spec.shader);
}

/** The spec's own shader, or the user's file (and entry) in its place. */
export function shaderSource(spec: KernelSpec, shaderFile?: string, entry?: string): ShaderSource {
  if (shaderFile === undefined && spec.shader === '') throw new UsageError(`${spec.name}: the spec names no shader file: give one with --shader FILE`);
  const file = shaderFile ?? specShaderPath(spec);
  return { file, source: readShader(file), entry: entry ?? spec.entry };
}

/** Compile and check the signature; errors are UsageErrors (exit 2). */
export async function preparePipeline(spec: KernelSpec, backend: Backend, src: ShaderSource): Promise<Pipeline> {
  const pipeline = await backend.compile(src.source, src.file, src.entry);
  checkBindings(spec, pipeline.kernel, pipeline.structs, src.file);
  return pipeline;
}
