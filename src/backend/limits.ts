/**
 * Limits a dispatch runs under, so that hostile kernels never take the tool
 * down: the watchdog's default time budget, the per-thread stack, and the
 * memory a case may ask for. Launch limits are in launch.ts.
 */
import { freemem, totalmem } from 'node:os';
import type { NativeLaunch } from './addon-types.js';
import { UsageError } from '../errors.js';

/** The watchdog's floor: no dispatch is abandoned sooner by default. */
export const MIN_DEFAULT_TIMEOUT_MS = 10_000;
/** Nanoseconds granted per thread of the grid, or per byte or flop of the spec's cost, whichever is more. */
export const TIMEOUT_NS_PER_UNIT = 100;

export const MIN_STACK_SIZE = 16 * 1024;
export const MAX_STACK_SIZE = 64 * 1024 * 1024;
export const DEFAULT_STACK_SIZE = 256 * 1024;

/** Threads of the whole grid. */
export function gridThreads(launch: NativeLaunch): number {
  const [gx, gy, gz] = launch.grid;
  const [tx, ty, tz] = launch.threadgroup;
  return launch.mode === 'threads' ? gx * gy * gz : gx * gy * gz * tx * ty * tz;
}

/**
 * Default watchdog budget of one dispatch: max(10 s, 100 ns × max(threads,
 * bytes + flops of the spec's cost model)). Generous on purpose (the CPU
 * backend runs a thread in a few ns to µs): it only has to end kernels that
 * never would.
 */
export function defaultTimeoutMs(launch: NativeLaunch, cost?: { bytes: number; flops: number }): number {
  const units = Math.max(gridThreads(launch), cost ? cost.bytes + cost.flops : 0);
  return Math.ceil(Math.max(MIN_DEFAULT_TIMEOUT_MS, (units * TIMEOUT_NS_PER_UNIT) / 1e6));
}

const GiB = 2 ** 30;
/** "257.0 MiB", "3.25 GiB". */
export const gib = (bytes: number): string => (bytes < GiB ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / GiB).toFixed(2)} GiB`);

/**
 * Bytes a run may allocate: 80% of the machine's memory, and no more than
 * what is free plus 512 MiB; MOE_MEMORY_LIMIT (bytes, or with K/M/G) caps it
 * further (CI machines, tests).
 */
export function memoryBudget(): number {
  const machine = Math.min(totalmem() * 0.8, freemem() + 512 * 2 ** 20);
  const limit = parseMemoryLimit(process.env.MOE_MEMORY_LIMIT);
  return limit === undefined ? machine : Math.min(machine, limit);
}

/** MOE_MEMORY_LIMIT in bytes (bytes, or with K/M/G, KiB/MB...); undefined when unset or empty; UsageError when it does not parse. */
export function parseMemoryLimit(value: string | undefined): number | undefined {
  const env = value?.trim();
  if (!env) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg])?i?b?$/i.exec(env);
  if (!m) throw new UsageError(`MOE_MEMORY_LIMIT: '${value}' is not a size (bytes, or with K, M or G: 512M, 4G)`);
  const unit = (m[2] ?? '').toLowerCase();
  const limit = Number(m[1]) * (unit === 'k' ? 2 ** 10 : unit === 'm' ? 2 ** 20 : unit === 'g' ? 2 ** 30 : 1);
  if (!(limit >= 1)) throw new UsageError(`MOE_MEMORY_LIMIT: '${value}' must be at least one byte`);
  return limit;
}
