/**
 * Running one catalog kernel as a stage of a larger computation: the spec's
 * own buffer layout and launch geometry bind named tensors (through the
 * harness, as verify and bench bind theirs), so the layer pipeline never
 * repeats a kernel's interface.
 */
import type { NativeRunOptions } from '../backend/addon-types.js';
import type { Backend, Pipeline } from '../backend/types.js';
import type { KernelSpec } from '../kernels/spec.js';
import { preparePipeline, readShader, shaderSource, type ShaderSource } from '../harness/source.js';

export interface StageRunner {
  backend: Backend;
  /** Native run options of every dispatch (--timeout, --stack-size). */
  runOptions?: NativeRunOptions;
  /** Kernels compiled so far, by entry. */
  pipelines: Map<string, Pipeline>;
  /** The user's shader (--shader): its kernels replace ours of the same entry name. */
  userShader?: { file: string; source: string; entries: Set<string> };
}

export function makeRunner(backend: Backend, userShaderFile?: string, runOptions?: NativeRunOptions): StageRunner {
  const r: StageRunner = { backend, pipelines: new Map(), runOptions };
  if (userShaderFile) {
    const source = readShader(userShaderFile);
    const entries = new Set<string>();
    for (const m of source.matchAll(/kernel\s+void\s+([A-Za-z_]\w*)/g)) entries.add(m[1] as string);
    for (const m of source.matchAll(/host_name\(\s*"([^"]+)"\s*\)/g)) entries.add(m[1] as string);
    r.userShader = { file: userShaderFile, source, entries };
  }
  return r;
}

/** The stage's pipeline: the user's kernel of the spec's entry name where --shader defines one, else ours; compiled once. */
export async function pipelineFor(r: StageRunner, spec: KernelSpec): Promise<Pipeline> {
  const have = r.pipelines.get(spec.entry);
  if (have) return have;
  const user = r.userShader;
  const src: ShaderSource = user && user.entries.has(spec.entry) ? { file: user.file, source: user.source, entry: spec.entry } : shaderSource(spec);
  const p = await preparePipeline(spec, r.backend, src);
  r.pipelines.set(spec.entry, p);
  return p;
}
