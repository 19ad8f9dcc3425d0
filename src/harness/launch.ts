/**
 * What a case asks of the machine, checked before anything is allocated:
 * the portable launch limits (validateLaunch against PORTABLE_LIMITS: what
 * Metal allows any kernel) and the memory its buffers need; and the run
 * options of its dispatches (the watchdog's budget scaled to its cost).
 * Refusals are UsageErrors (exit 2) that give the figures.
 */
import type { NativeRunOptions } from '../backend/addon-types.js';
import { LaunchError, PORTABLE_LIMITS, validateLaunch } from '../backend/launch.js';
import { defaultTimeoutMs, gib, memoryBudget } from '../backend/limits.js';
import { UsageError } from '../errors.js';
import type { DType, KernelSpec, Params } from '../kernels/spec.js';
import { shapeLabel } from '../kernels/spec.js';

const DTYPE_BYTES: Record<DType, number> = { f32: 4, u32: 4, i32: 4, u16: 2, bf16: 2, u8: 1 };

/** Bytes of all the buffers of one case, from the spec's lengths (nothing allocated). */
export function caseBufferBytes(spec: KernelSpec, p: Params): number {
  let total = 0;
  for (const b of spec.buffers) {
    if (b.kind === 'array') total += Math.max(1, b.length(p)) * DTYPE_BYTES[b.dtype];
    else if (b.kind === 'struct') total += 16 * b.fields.length;
    else total += 4;
  }
  return total;
}

/**
 * Copies of the buffers alive at once while a case runs: the generated inputs,
 * the bound copies, the runtime's guarded copies, and the reference (outputs,
 * often in f64); one more for a second thread order (--schedules).
 */
export const CASE_MEMORY_FACTOR = 4;

/** Throws UsageError when Metal would refuse the case's launch or its buffers would not fit in memory. */
export function checkCaseResources(spec: KernelSpec, p: Params, opts: { schedules?: number; budget?: number } = {}): void {
  const where = `${spec.name} (${shapeLabel(spec, p)})`;
  const bytes = caseBufferBytes(spec, p);
  const need = bytes * (CASE_MEMORY_FACTOR + ((opts.schedules ?? 1) > 1 ? 1 : 0));
  const budget = opts.budget ?? memoryBudget();
  if (!Number.isFinite(need) || need > budget) {
    throw new UsageError(
      `${where}: the buffers take ${gib(bytes)}, about ${gib(need)} with the copies a run holds, more than the ${gib(budget)} of memory available${process.env.MOE_MEMORY_LIMIT ? ' (MOE_MEMORY_LIMIT)' : ''}: use smaller sizes`,
    );
  }
  try {
    validateLaunch(spec.launch(p), PORTABLE_LIMITS);
  } catch (e) {
    if (e instanceof LaunchError) throw new UsageError(`${where}: ${e.message}, as Metal would refuse the launch`);
    throw e;
  }
}

/** The native run options of a case's dispatches: the caller's, the buffers' names, and a watchdog budget scaled to the case's cost. */
export function caseRunOptions(spec: KernelSpec, p: Params, bound: { names: (string | null)[] }, base?: NativeRunOptions): NativeRunOptions {
  const run: NativeRunOptions = { ...base, bufferNames: bound.names };
  if (run.timeoutMs === undefined) run.timeoutMs = defaultTimeoutMs(spec.launch(p), spec.cost(p));
  return run;
}
