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
import { resolveManifest, type Manifest, type ManifestKernel } from '../harness/manifest.js';
import type { Params, TypedArray } from '../kernels/spec.js';
import { UsageError } from '../errors.js';

export interface StageRunner {
  backend: Backend;
  /** Native run options of every dispatch (--timeout, --stack-size). */
  runOptions?: NativeRunOptions;
  /** Kernels compiled so far, by entry. */
  pipelines: Map<string, Pipeline>;
  /** The user's shader (--shader): its kernels replace ours of the same entry name. */
  userShader?: { file: string; source: string; entries: Set<string> };
  /** The binding manifest (--manifest): its entries replace our kernels of their specs, bound and launched as it says. */
  manifest?: { m: Manifest; source: string; bySpec: Map<string, ManifestKernel> };
  /** Where each compiled kernel came from, by entry: ours (shaders/) or the user's file. */
  sources: Map<string, KernelSource>;
}

/** Whose kernel ran: ours (a file under shaders/) or the --shader file's. */
export interface KernelSource {
  entry: string;
  from: 'ours' | 'shader';
  file: string;
}

/**
 * A stage that could not run: its kernel did not compile, its signature does
 * not match, or it failed while running. Carries the stage and the kernel;
 * `cause` is the original error (its class gives the exit code).
 */
export class StageError extends Error {
  constructor(
    readonly stage: string,
    readonly entry: string,
    override readonly cause: Error,
  ) {
    super(cause.message);
    this.name = 'StageError';
  }

}

/**
 * The spec a stage runs and the tensors it binds: ours, or a manifest entry's
 * derived spec with the inputs the spec does not have generated.
 */
export function stageBinding(r: StageRunner, spec: KernelSpec, params: Params, tensors: Record<string, TypedArray>): { spec: KernelSpec; tensors: Record<string, TypedArray> } {
  const k = r.manifest?.bySpec.get(spec.name);
  if (!k || !k.spec) return { spec, tensors };
  const why = k.skip(params);
  if (why !== null) throw new UsageError(`manifest ${r.manifest?.m.file}: ${k.entry} cannot run this stage (${spec.name} ${JSON.stringify(params)}): ${why}`);
  return { spec: k.spec, tensors: { ...tensors, ...k.extraInputs(params) } };
}

/** Attach a manifest: each entry with a spec replaces our kernel of that spec (the first entry of a spec wins). */
export function useManifest(r: StageRunner, m: Manifest): void {
  const { source, kernels } = resolveManifest(m);
  const bySpec = new Map<string, ManifestKernel>();
  for (const k of kernels) if (k.base && !bySpec.has(k.base.name)) bySpec.set(k.base.name, k);
  r.manifest = { m, source, bySpec };
}

export function makeRunner(backend: Backend, userShaderFile?: string, runOptions?: NativeRunOptions): StageRunner {
  const r: StageRunner = { backend, pipelines: new Map(), runOptions, sources: new Map() };
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
  const mk = r.manifest ? [...r.manifest.bySpec.values()].find((k) => k.spec === spec) : undefined;
  if (mk && r.manifest) {
    const p = await preparePipeline(spec, r.backend, { file: r.manifest.m.shaderFile, source: r.manifest.source, entry: mk.entry });
    r.pipelines.set(spec.entry, p);
    return p;
  }
  const user = r.userShader;
  const theirs = user !== undefined && user.entries.has(spec.entry);
  const src: ShaderSource = theirs ? { file: user.file, source: user.source, entry: spec.entry } : shaderSource(spec);
  r.sources.set(spec.entry, { entry: spec.entry, from: theirs ? 'shader' : 'ours', file: theirs ? user.file : `shaders/${spec.shader}` });
  const p = await preparePipeline(spec, r.backend, src);
  r.pipelines.set(spec.entry, p);
  return p;
}
