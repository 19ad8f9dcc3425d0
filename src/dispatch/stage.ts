/**
 * Running one catalog kernel as a stage of a larger computation: the spec's
 * own buffer layout and launch geometry bind named tensors, so the layer
 * pipeline never repeats a kernel's interface.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeRunOptions } from '../backend/addon-types.js';
import type { Backend, Pipeline } from '../backend/types.js';
import { UsageError } from '../errors.js';
import { packStruct } from '../kernels/pack.js';
import type { KernelSpec, Params, TypedArray } from '../kernels/spec.js';
import { SHADER_DIR } from '../util/paths.js';
import { checkBindings } from '../verify/bindings.js';

const u8 = (a: TypedArray): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export interface StageRunner {
  backend: Backend;
  /** Native run options of every dispatch (--timeout, --stack-size). */
  runOptions?: NativeRunOptions;
  /** Kernels compiled so far, by entry. */
  pipelines: Map<string, Pipeline>;
  /** The user's shader (--shader): its kernels replace ours of the same entry name. */
  userShader?: { file: string; source: string; entries: Set<string> };
}

/** Which of our shader files defines `entry` (a `kernel void entry(` or a host_name). */
function ourShaderFor(entry: string): string {
  const re = new RegExp(`(kernel\\s+void\\s+${entry}\\s*[(<])|(host_name\\(\\s*"${entry}"\\s*\\))`);
  for (const f of readdirSync(SHADER_DIR)) {
    if (!f.endsWith('.metal')) continue;
    if (re.test(readFileSync(join(SHADER_DIR, f), 'utf8'))) return join(SHADER_DIR, f);
  }
  throw new Error(`no shader in ${SHADER_DIR} defines kernel '${entry}'`);
}

export function makeRunner(backend: Backend, userShaderFile?: string, runOptions?: NativeRunOptions): StageRunner {
  const r: StageRunner = { backend, pipelines: new Map(), runOptions };
  if (userShaderFile) {
    if (!existsSync(userShaderFile)) throw new UsageError(`shader file not found: ${userShaderFile}`);
    const source = readFileSync(userShaderFile, 'utf8');
    const entries = new Set<string>();
    for (const m of source.matchAll(/kernel\s+void\s+([A-Za-z_]\w*)/g)) entries.add(m[1] as string);
    for (const m of source.matchAll(/host_name\(\s*"([^"]+)"\s*\)/g)) entries.add(m[1] as string);
    r.userShader = { file: userShaderFile, source, entries };
  }
  return r;
}

export async function pipelineFor(r: StageRunner, spec: KernelSpec): Promise<Pipeline> {
  const have = r.pipelines.get(spec.entry);
  if (have) return have;
  let p: Pipeline;
  if (r.userShader && r.userShader.entries.has(spec.entry)) {
    p = await r.backend.compile(r.userShader.source, r.userShader.file, spec.entry);
    checkBindings(spec, p.kernel, p.structs, r.userShader.file);
  } else {
    const file = ourShaderFor(spec.entry);
    p = await r.backend.compile(readFileSync(file, 'utf8'), file, spec.entry);
  }
  r.pipelines.set(spec.entry, p);
  return p;
}

export interface StageCall {
  spec: KernelSpec;
  params: Params;
  /** Tensors by the spec's buffer names; outputs are written in place. */
  tensors: Record<string, TypedArray>;
}

/** The spec's buffer names by [[buffer(n)]] index (for runtime error messages). */
export function bufferNames(spec: KernelSpec): (string | null)[] {
  const names = new Array<string | null>(Math.max(...spec.buffers.map((b) => b.index)) + 1).fill(null);
  for (const b of spec.buffers) names[b.index] = b.name;
  return names;
}

/** Bind by name through the spec's layout; returns the buffers and launch of the call. */
export function bindStage(c: StageCall): { buffers: (Uint8Array | null)[]; launch: ReturnType<KernelSpec['launch']> } {
  const maxIndex = Math.max(...c.spec.buffers.map((b) => b.index));
  const buffers = new Array<Uint8Array | null>(maxIndex + 1).fill(null);
  for (const b of c.spec.buffers) {
    if (b.kind === 'struct') buffers[b.index] = packStruct(b.fields.map((f) => [f.type, f.value(c.params)]));
    else if (b.kind === 'scalar') {
      const v = b.value(c.params);
      buffers[b.index] = u8(b.mslType === 'float' ? new Float32Array([v]) : b.mslType === 'int' ? new Int32Array([v]) : new Uint32Array([v]));
    } else {
      const t = c.tensors[b.name];
      if (!t) throw new Error(`stage ${c.spec.entry}: no tensor bound to '${b.name}'`);
      const need = b.length(c.params);
      if (t.length < need) throw new Error(`stage ${c.spec.entry}: tensor '${b.name}' has ${t.length} elements, needs ${need}`);
      buffers[b.index] = u8(t);
    }
  }
  return { buffers, launch: c.spec.launch(c.params) };
}

export async function runStage(r: StageRunner, c: StageCall): Promise<void> {
  const why = c.spec.validate(c.params);
  if (why !== null) throw new UsageError(`${c.spec.name}: ${why}`);
  const p = await pipelineFor(r, c.spec);
  const { buffers, launch } = bindStage(c);
  await r.backend.run(p, buffers, launch, { ...r.runOptions, bufferNames: bufferNames(c.spec) });
}

/** Median device time of one stage call (ns). */
export async function timeStage(r: StageRunner, c: StageCall, iterations = 3): Promise<number> {
  const p = await pipelineFor(r, c.spec);
  const { buffers, launch } = bindStage(c);
  // Time on copies: in-place stages (accumulate) must not change the layer's tensors.
  const copies = buffers.map((b) => (b ? b.slice() : null));
  const t = Array.from(await r.backend.time(p, copies, launch, { ...r.runOptions, bufferNames: bufferNames(c.spec), warmup: 1, iterations })).sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)] as number;
}
