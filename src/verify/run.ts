/**
 * Verification of one kernel spec on one backend: compile the shader (ours or
 * the user's), check its signature against the spec, then for every case
 * generate seeded inputs, run, and compare each output with the reference.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { Backend, Pipeline } from '../backend/types.js';
import type { KernelCase, KernelSpec, Params } from '../kernels/spec.js';
import { shapeLabel } from '../kernels/spec.js';
import { bf16BitsToF32 } from '../util/bf16.js';
import { caseSeed, makeRng } from '../util/rng.js';
import { SHADER_DIR } from '../util/paths.js';
import { checkBindings, bindCase } from './bindings.js';
import { compareOutput, type OutputComparison } from './compare.js';

export type CaseStatus = 'PASS' | 'FAIL' | 'ERROR';

export interface CaseResult {
  kernel: string;
  entry: string;
  origin: string;
  inputSet: string;
  params: Params;
  shape: string;
  seed: number;
  status: CaseStatus;
  outputs: OutputComparison[];
  /** Runtime error text (status ERROR). */
  error: string | null;
  /** One command line that re-runs exactly this case. */
  repro: string;
  ms: number;
}

export interface VerifyOptions {
  seed: number;
  /** User's shader in place of ours. */
  shaderFile?: string;
  /** Entry point in the user's shader (default: the spec's). */
  entry?: string;
  backendFlag?: string;
  /** Extra native run options (schedules, workers). */
  runOptions?: import('../backend/addon-types.js').NativeRunOptions;
  onCase?: (r: CaseResult) => void;
}

export interface ShaderSource {
  file: string;
  source: string;
  entry: string;
}

export function shaderSource(spec: KernelSpec, shaderFile?: string, entry?: string): ShaderSource {
  const file = shaderFile ?? join(SHADER_DIR, spec.shader);
  if (!existsSync(file)) throw new UsageError(`shader file not found: ${file}`);
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read shader ${file}: ${(e as Error).message}`);
  }
  return { file, source, entry: entry ?? spec.entry };
}

/** Compile and check the signature; errors are UsageErrors (exit 2). */
export async function preparePipeline(spec: KernelSpec, backend: Backend, src: ShaderSource): Promise<Pipeline> {
  const pipeline = await backend.compile(src.source, src.file, src.entry);
  checkBindings(spec, pipeline.kernel, pipeline.structs, src.file);
  return pipeline;
}

export function reproCommand(spec: KernelSpec, c: KernelCase, o: VerifyOptions): string {
  const parts = ['npx moe verify', `--kernel ${spec.name}`];
  for (const d of spec.params) parts.push(`--${d.flag ?? d.name} ${c.params[d.name]}`);
  parts.push(`--inputs ${c.inputSet}`, `--seed ${o.seed}`);
  if (o.backendFlag) parts.push(`--backend ${o.backendFlag}`);
  if (o.shaderFile) parts.push(`--shader ${o.shaderFile}`);
  if (o.entry) parts.push(`--entry ${o.entry}`);
  return parts.join(' ');
}

export async function runCase(
  spec: KernelSpec,
  backend: Backend,
  pipeline: Pipeline,
  c: KernelCase,
  o: VerifyOptions,
): Promise<CaseResult> {
  const t0 = performance.now();
  const shape = shapeLabel(spec, c.params);
  const rng = makeRng(caseSeed(o.seed, spec.name, shape, c.inputSet));
  const inputs = spec.inputs(c.params, c.inputSet, rng);
  const bound = bindCase(spec, c.params, inputs);
  const result: CaseResult = {
    kernel: spec.name,
    entry: pipeline.entry,
    origin: c.origin,
    inputSet: c.inputSet,
    params: c.params,
    shape,
    seed: o.seed,
    status: 'PASS',
    outputs: [],
    error: null,
    repro: reproCommand(spec, c, o),
    ms: 0,
  };
  try {
    await backend.run(pipeline, bound.buffers, spec.launch(c.params), o.runOptions ?? {});
  } catch (e) {
    result.status = 'ERROR';
    result.error = (e as Error).message;
    result.ms = performance.now() - t0;
    return result;
  }
  const ref = spec.reference(c.params, inputs);
  for (const b of spec.buffers) {
    if (b.kind !== 'array' || b.access === 'read') continue;
    const got = bound.outputs[b.name];
    const expected = ref.outputs[b.name];
    const rule = ref.rules[b.name];
    if (!got || !expected || !rule) throw new Error(`spec ${spec.name}: no reference or rule for output '${b.name}'`);
    const decode =
      b.dtype === 'bf16' ? (a: ArrayLike<number>, i: number) => bf16BitsToF32(a[i] as number) : undefined;
    const expectedValues = b.dtype === 'bf16' && expected instanceof Uint16Array ? Array.from(expected, bf16BitsToF32) : expected;
    result.outputs.push(compareOutput(b.name, got, expectedValues, rule, decode, ref.include?.[b.name]));
  }
  if (result.outputs.some((r) => !r.pass)) result.status = 'FAIL';
  result.ms = performance.now() - t0;
  return result;
}

/** Verify the given cases; compile and signature errors throw (exit 2), case failures are rows. */
export async function verifySpec(
  spec: KernelSpec,
  backend: Backend,
  cases: KernelCase[],
  o: VerifyOptions,
): Promise<{ results: CaseResult[]; sourceHash: string }> {
  for (const c of cases) {
    const why = spec.validate(c.params);
    if (why !== null) throw new UsageError(`${spec.name}: ${why}`);
    if (!spec.inputSets.some((s) => s.name === c.inputSet)) {
      throw new UsageError(`${spec.name}: unknown input set '${c.inputSet}' (choose from ${spec.inputSets.map((s) => s.name).join(', ')})`);
    }
  }
  const pipeline = await preparePipeline(spec, backend, shaderSource(spec, o.shaderFile, o.entry));
  const results: CaseResult[] = [];
  for (const c of cases) {
    const r = await runCase(spec, backend, pipeline, c, o);
    results.push(r);
    o.onCase?.(r);
  }
  return { results, sourceHash: pipeline.sourceHash };
}
