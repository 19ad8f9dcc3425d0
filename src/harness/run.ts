/**
 * Verification of one kernel spec on one backend: compile the shader (ours or
 * the user's), check its signature against the spec, then for every case
 * generate seeded inputs, run, and compare each output with the reference.
 */
import { UsageError } from '../errors.js';
import type { NativeRunOptions } from '../backend/addon-types.js';
import { featureSkip } from '../backend/features.js';
import { sourceHashOf } from '../backend/shader.js';
import type { Backend, Pipeline } from '../backend/types.js';
import type { KernelCase, KernelSpec, Params } from '../kernels/spec.js';
import { shapeLabel } from '../kernels/spec.js';
import { bf16BitsToF32 } from '../util/bf16.js';
import { caseSeed, makeRng } from '../util/rng.js';
import { compareOutput, type OutputComparison } from '../verify/compare.js';
import { bindCase, type Bound } from './bindings.js';
import { caseRunOptions, checkCaseResources } from './launch.js';
import { preparePipeline, shaderSource } from './source.js';

/** SKIP: the kernel needs a feature the device lacks (e.g. bfloat without MSL 3.1); never a pass, never a failure. */
export type CaseStatus = 'PASS' | 'FAIL' | 'ERROR' | 'SKIP';

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
  /** Why the case did not run (status SKIP). */
  skipReason?: string;
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
  /** The --spec file the spec came from (user specs), for the repro line. */
  specFile?: string;
  /** The command's flags: a param without a flag of its own is repeated as --param NAME=VALUE. */
  knownFlags?: ReadonlySet<string>;
  /** The binding manifest the spec was derived from (--manifest): repro commands name it. */
  manifest?: string;
  backendFlag?: string;
  /** Extra native run options (workers, timeoutMs, stackSize; the first run's schedule). */
  runOptions?: NativeRunOptions;
  /**
   * Thread orders each case runs under (DESIGN.md, "Race finding"): 1 (the
   * default) runs forward only; N > 1 re-runs with reverse, then seeded
   * shuffles, and fails the case when an output differs bit for bit.
   */
  schedules?: number;
  onCase?: (r: CaseResult) => void;
}

/** The k-th thread order of --schedules: forward, reverse, then shuffles seeded 1, 2, ... */
export function scheduleOf(k: number): { label: string; options: NativeRunOptions } {
  if (k === 0) return { label: 'forward', options: { schedule: 'forward' } };
  if (k === 1) return { label: 'reverse', options: { schedule: 'reverse' } };
  return { label: `shuffle (seed ${k - 1})`, options: { schedule: 'shuffle', scheduleSeed: k - 1 } };
}

export function reproCommand(spec: KernelSpec, c: KernelCase, o: VerifyOptions): string {
  const parts = ['npx moe verify', ...(o.specFile ? [`--spec ${o.specFile}`] : []), `--kernel ${spec.name}`];
  for (const d of spec.params) {
    const flag = d.flag ?? d.name;
    parts.push(o.knownFlags && !o.knownFlags.has(flag) ? `--param ${d.name}=${c.params[d.name]}` : `--${flag} ${c.params[d.name]}`);
  }
  parts.push(`--inputs ${c.inputSet}`, `--seed ${o.seed}`);
  if (o.backendFlag) parts.push(`--backend ${o.backendFlag}`);
  if (o.manifest) parts.push(`--manifest ${o.manifest}`);
  else if (o.shaderFile) parts.push(`--shader ${o.shaderFile}`);
  if (o.entry && !o.manifest) parts.push(`--entry ${o.entry}`);
  if ((o.schedules ?? 1) > 1) parts.push(`--schedules ${o.schedules}`);
  if (o.runOptions?.timeoutMs !== undefined) parts.push(`--timeout ${o.runOptions.timeoutMs}ms`);
  if (o.runOptions?.stackSize !== undefined) parts.push(`--stack-size ${o.runOptions.stackSize}`);
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
  const launch = spec.launch(c.params);
  const runOptions = caseRunOptions(spec, c.params, bound, o.runOptions);
  try {
    await backend.run(pipeline, bound.buffers, launch, runOptions);
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
  // Race finding: the same inputs under other thread orders, bit for bit.
  for (let k = 1; k < (o.schedules ?? 1); k++) {
    const { label, options } = scheduleOf(k);
    const again = bindCase(spec, c.params, inputs);
    try {
      await backend.run(pipeline, again.buffers, launch, { ...runOptions, ...options });
    } catch (e) {
      result.status = 'ERROR';
      result.error = `under thread order ${label} (--schedules): ${(e as Error).message}`;
      break;
    }
    const diff = scheduleDifference(spec, bound, again, label);
    if (diff !== null) {
      result.outputs.push(diff);
      result.status = 'FAIL';
      break;
    }
  }
  result.ms = performance.now() - t0;
  return result;
}

function bitsText(a: ArrayLike<number>, i: number, bytes: Uint8Array, size: number): string {
  let hex = '';
  for (let b = size - 1; b >= 0; b--) hex += (bytes[i * size + b] as number).toString(16).padStart(2, '0');
  return `${a[i]} (0x${hex})`;
}

/** The first output that differs between two runs of the same case, as a failed comparison; null when all are identical. */
export function scheduleDifference(spec: KernelSpec, first: Bound, again: Bound, label: string): OutputComparison | null {
  for (const b of spec.buffers) {
    if (b.kind !== 'array' || b.access === 'read') continue;
    const x = first.outputs[b.name];
    const y = again.outputs[b.name];
    if (!x || !y) continue;
    const size = x.BYTES_PER_ELEMENT;
    const xb = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    const yb = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
    let count = 0;
    let firstAt = -1;
    for (let i = 0; i < x.length; i++) {
      let same = true;
      for (let k = 0; k < size && same; k++) same = xb[i * size + k] === yb[i * size + k];
      if (same) continue;
      if (firstAt < 0) firstAt = i;
      count++;
    }
    if (count === 0) continue;
    return {
      name: `${b.name} (thread order ${label})`,
      kind: 'exact',
      elements: x.length,
      pass: false,
      failure:
        `differs from the forward thread order at ${count} of ${x.length} elements, first at [${firstAt}]: ` +
        `${bitsText(y, firstAt, yb, size)} under ${label}, ${bitsText(x, firstAt, xb, size)} under forward ` +
        `(a race: threads exchange data without a barrier between them)`,
      cosine: null,
      maxAbs: null,
      relMaxAbs: null,
      violations: count,
      firstViolation: { index: firstAt, got: y[firstAt] as number, expected: x[firstAt] as number },
      worst: null,
      nonFinite: 0,
      unwritten: 0,
      rule: { kind: 'exact', reason: 'outputs must be bit-identical under every thread order between barriers (--schedules)' },
    };
  }
  return null;
}

/** Whether a case ended by the watchdog's timeout (the backends' errors say "timed out: ..."). */
export function isTimeout(r: CaseResult): boolean {
  return r.status === 'ERROR' && r.error !== null && /\btimed out: /.test(r.error);
}

/** A case that does not run: the device lacks a feature its shader needs (reported as SKIP with the reason). */
export function skippedCase(spec: KernelSpec, c: KernelCase, entry: string, o: VerifyOptions, reason: string): CaseResult {
  return {
    kernel: spec.name,
    entry,
    origin: c.origin,
    inputSet: c.inputSet,
    params: c.params,
    shape: shapeLabel(spec, c.params),
    seed: o.seed,
    status: 'SKIP',
    outputs: [],
    error: null,
    skipReason: reason,
    repro: reproCommand(spec, c, o),
    ms: 0,
  };
}

/** Every case is valid for the spec, its input set known, its buffers within memory: else a UsageError (before anything runs). */
export function checkCases(spec: KernelSpec, cases: KernelCase[], o: { schedules?: number }): void {
  for (const c of cases) {
    const why = spec.validate(c.params);
    if (why !== null) throw new UsageError(`${spec.name}: ${why}`);
    if (!spec.inputSets.some((s) => s.name === c.inputSet)) {
      throw new UsageError(`${spec.name}: unknown input set '${c.inputSet}' (choose from ${spec.inputSets.map((s) => s.name).join(', ')})`);
    }
    checkCaseResources(spec, c.params, { schedules: o.schedules });
  }
}

/** Verify the given cases; compile and signature errors throw (exit 2), case failures are rows. */
export async function verifySpec(
  spec: KernelSpec,
  backend: Backend,
  cases: KernelCase[],
  o: VerifyOptions,
): Promise<{ results: CaseResult[]; sourceHash: string }> {
  checkCases(spec, cases, o);
  const src = shaderSource(spec, o.shaderFile, o.entry);
  const skip = featureSkip(backend.device(), src.source, src.file);
  if (skip !== null) {
    const results = cases.map((c) => skippedCase(spec, c, src.entry, o, skip));
    for (const r of results) o.onCase?.(r);
    return { results, sourceHash: sourceHashOf(src.source) };
  }
  const pipeline = await preparePipeline(spec, backend, src);
  const results: CaseResult[] = [];
  // Fail fast: a kernel that timed out once would most likely time out on
  // every case, one full timeout each; its other cases are skipped, saying why.
  let timedOut: CaseResult | null = null;
  for (const c of cases) {
    const r: CaseResult = timedOut
      ? skippedCase(spec, c, pipeline.entry, o, `not run: timed out on case ${timedOut.shape} (inputs ${timedOut.inputSet})`)
      : await runCase(spec, backend, pipeline, c, o);
    if (!timedOut && isTimeout(r)) timedOut = r;
    results.push(r);
    o.onCase?.(r);
  }
  return { results, sourceHash: pipeline.sourceHash };
}
