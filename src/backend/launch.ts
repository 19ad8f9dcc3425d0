/**
 * Launch geometry, binding order and timing shared by the backends:
 * everything of a dispatch that is not a call into the GPU API, so that it
 * runs, and is tested, on Linux. One validateLaunch for every backend, against
 * a limits object each: Metal takes them from the pipeline and the device,
 * CUDA from the compiled function, and every case is held to PORTABLE_LIMITS
 * before anything is allocated (the harness).
 */
import type { MslKernel } from '../msl/index.js';
import type { NativeLaunch } from './addon-types.js';
import type { Buffers } from './types.js';

/** A launch the backend would refuse, named before anything is dispatched. */
export class LaunchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LaunchError';
  }
}

export interface LaunchLimits {
  /** Most threads in one threadgroup (Metal: the pipeline's maxTotalThreadsPerThreadgroup). */
  maxThreadsPerThreadgroup: number;
  /** Words for that limit in messages, e.g. "the pipeline's maxTotalThreadsPerThreadgroup". */
  threadsLimitName?: string;
  /** Bytes of threadgroup memory one threadgroup may use in all, static and dynamic. */
  maxThreadgroupMemory: number;
  /** Words for that limit in messages (default "the maximum"). */
  memoryLimitName?: string;
  /** Threadgroup memory the kernel declares itself (Metal: staticThreadgroupMemoryLength). */
  staticThreadgroupMemory?: number;
  /** Each dynamic threadgroup memory length is rounded up to a multiple of this (Metal: 16; default 1). */
  threadgroupMemoryGranule?: number;
  /** Most [[threadgroup(n)]] indices (default 31). */
  maxThreadgroupMemoryIndices?: number;
}

/** The threadgroup memory budget of the CPU runtime, which the GPU backends keep too: 32 KiB. */
export const SHARED_MAX_THREADGROUP_MEMORY = 32 * 1024;
/** setThreadgroupMemoryLength:atIndex: takes multiples of 16 bytes. */
export const METAL_THREADGROUP_MEMORY_GRANULE = 16;
/** setBytes:length:atIndex: is for data under 4 KB; a larger param struct goes in a buffer. */
export const MAX_SET_BYTES = 4096;
/** Metal's buffer argument table: [[buffer(0)]] .. [[buffer(30)]]. */
export const MAX_BUFFER_INDICES = 31;

/** What Metal allows any kernel on any device (1024 threads, 32 KiB): every case must fit, whatever the backend. */
export const PORTABLE_LIMITS: LaunchLimits = {
  maxThreadsPerThreadgroup: 1024,
  threadsLimitName: "Metal's maximum",
  maxThreadgroupMemory: SHARED_MAX_THREADGROUP_MEMORY,
  memoryLimitName: "Metal's maximum",
  threadgroupMemoryGranule: METAL_THREADGROUP_MEMORY_GRANULE,
};

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;
const dims = (d: readonly number[]): string => d.join('×');

/**
 * The launch as the backend encodes it (dynamic threadgroup memory rounded up
 * to the granule), or a LaunchError naming the first limit it breaks: a zero
 * grid or threadgroup dimension, more threads per threadgroup than allowed,
 * a grid of threadgroups beyond 2^32−1 threads in a dimension, too many
 * threadgroup memory indices, or more threadgroup memory than allowed.
 */
export function validateLaunch(launch: NativeLaunch, limits: LaunchLimits): NativeLaunch {
  const { grid, threadgroup: tg } = launch;
  for (const [what, d] of [['grid', grid], ['threadgroup', tg]] as const) {
    if (d.length !== 3 || d.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
      throw new LaunchError(`${what} (${d.join(',')}) must be 3 integers in [0, 2^32-1]`);
    }
    if (d.some((x) => x === 0)) throw new LaunchError(`${what} (${d.join(',')}) has a zero dimension`);
  }
  const per = tg[0] * tg[1] * tg[2];
  if (per > limits.maxThreadsPerThreadgroup) {
    throw new LaunchError(
      `a threadgroup of ${dims(tg)} = ${per} threads exceeds ${limits.threadsLimitName ?? 'the maximum'} of ${limits.maxThreadsPerThreadgroup}`,
    );
  }
  if (launch.mode === 'threadgroups') {
    for (let k = 0; k < 3; k++) {
      if ((grid[k] as number) * (tg[k] as number) > 0xffffffff) {
        throw new LaunchError(`${grid[k]} threadgroups of ${tg[k]} threads in dimension ${'xyz'[k]} exceed 2^32-1 threads`);
      }
    }
  }
  const maxIdx = limits.maxThreadgroupMemoryIndices ?? 31;
  if (launch.threadgroupMemory.length > maxIdx) {
    throw new LaunchError(`${launch.threadgroupMemory.length} threadgroup memory arguments exceed the maximum of ${maxIdx}`);
  }
  const granule = limits.threadgroupMemoryGranule ?? 1;
  const rounded = launch.threadgroupMemory.map((b, i) => {
    if (!Number.isInteger(b) || b < 0) throw new LaunchError(`threadgroup memory [[threadgroup(${i})]] of ${b} bytes is not a byte count`);
    return roundUp(b, granule);
  });
  const stat = limits.staticThreadgroupMemory ?? 0;
  const total = rounded.reduce((a, b) => a + b, stat);
  if (total > limits.maxThreadgroupMemory) {
    const parts = stat > 0 ? ` (${stat} declared in the kernel, ${total - stat} set at launch)` : '';
    throw new LaunchError(`threadgroup memory of ${total} bytes${parts} exceeds ${limits.memoryLimitName ?? 'the maximum'} of ${limits.maxThreadgroupMemory}`);
  }
  return { mode: launch.mode, grid: [...grid], threadgroup: [...tg], threadgroupMemory: rounded };
}

export interface PlannedBinding {
  index: number;
  data: Uint8Array;
  /** true: setBytes (a `constant T&` param struct or scalar of 1..4096 bytes); false: a buffer. */
  bytes: boolean;
}

/**
 * The bindings of one dispatch in [[buffer(n)]] order: `constant` references
 * (param structs, scalars bound one per index) of at most 4096 bytes go by
 * setBytes, everything else (pointers, larger structs) in a buffer. Every
 * buffer the kernel declares must be bound; views at indices the kernel does
 * not declare are bound as buffers (harmless, as on the CPU backend).
 */
export function planBindings(kernel: MslKernel, buffers: Buffers, maxSetBytes = MAX_SET_BYTES): PlannedBinding[] {
  if (buffers.length > MAX_BUFFER_INDICES) {
    throw new LaunchError(`${buffers.length} buffers exceed the ${MAX_BUFFER_INDICES} [[buffer(n)]] indices`);
  }
  const declared = new Map<number, MslKernel['params'][number]>();
  for (const p of kernel.params) if (p.attr.kind === 'buffer') declared.set(p.attr.index, p);
  for (const [index, p] of declared) {
    if (index >= MAX_BUFFER_INDICES) throw new LaunchError(`kernel '${kernel.name}': buffer(${index}) '${p.name}' is beyond [[buffer(30)]]`);
    if (!buffers[index]) throw new LaunchError(`kernel '${kernel.name}': buffer(${index}) '${p.name}' is not bound`);
  }
  const out: PlannedBinding[] = [];
  buffers.forEach((data, index) => {
    if (!data) return;
    const p = declared.get(index);
    const isConstRef = p !== undefined && p.addressSpace === 'constant' && p.kind === 'reference';
    if (isConstRef && data.byteLength === 0) {
      throw new LaunchError(`kernel '${kernel.name}': buffer(${index}) '${p.name}' (constant ${p.cppType}) is bound to 0 bytes`);
    }
    out.push({ index, data, bytes: isConstRef && data.byteLength <= maxSetBytes });
  });
  return out;
}

/** Dispatches per timed command buffer, at most: amortises the command buffer's own cost, keeps enough samples. */
export const MAX_DISPATCHES_PER_BATCH = 32;

/**
 * How `iterations` timed dispatches are split into command buffers: as many
 * per buffer as allowed, so the total is at least `iterations`. A GPU clock
 * times a command buffer, so each batch yields one sample.
 */
export function timingPlan(iterations: number, maxPerBatch = MAX_DISPATCHES_PER_BATCH): { perBatch: number; batches: number } {
  if (!Number.isInteger(iterations) || iterations < 1) throw new LaunchError(`iterations ${iterations} must be a positive integer`);
  if (!Number.isInteger(maxPerBatch) || maxPerBatch < 1) throw new LaunchError(`maxPerBatch ${maxPerBatch} must be a positive integer`);
  const perBatch = Math.min(iterations, maxPerBatch);
  return { perBatch, batches: Math.ceil(iterations / perBatch) };
}

/**
 * Per-dispatch device times from per-batch GPU times: each batch's time over
 * its dispatches (one sample per batch, never repeated: a repeated value
 * would make the noise of the median look smaller than it is). A time that
 * is not a positive finite number means the device's timestamps cannot be
 * used, and is an error, not a sample.
 */
export function perDispatchTimes(batchNs: ArrayLike<number>, perBatch: number): Float64Array {
  const out = new Float64Array(batchNs.length);
  for (let i = 0; i < batchNs.length; i++) {
    const t = batchNs[i] as number;
    if (!Number.isFinite(t) || t <= 0) {
      throw new LaunchError(`the device reported a GPU time of ${t} ns for a command buffer of ${perBatch} dispatches: its timestamps cannot be used`);
    }
    out[i] = t / perBatch;
  }
  return out;
}
