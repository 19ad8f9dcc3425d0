/**
 * The physics check on every bench timing: a case whose implied bandwidth or
 * FLOP rate is above what the device can do did not do the work its spec's
 * cost model counts (a kernel that returns early, a launch that covers a
 * fraction of the grid, a cost model that counts bytes never touched).
 *
 * Ceilings, by backend:
 * - GPUs: the bandwidth of the peak table (src/bench/peaks.ts), and a copy
 *   kernel's measured bandwidth (`--measure-peak`) plus 10% (a kernel that only
 *   reads may beat a copy by a little, never by more). They bound a case only
 *   where each dispatch reads its data from memory: the CUDA backend rotates
 *   copies of the buffers through twice the L2 unless `--warm-cache`. With
 *   `--warm-cache`, and on Metal (back-to-back dispatches in one command buffer,
 *   no eviction), a case small enough for the cache may legitimately run at
 *   cache bandwidth, so the memory ceilings bound only cases larger than the
 *   largest last-level cache of the devices in the table.
 *   Compute: the table's FP32 rate where it has one.
 * - CPU: no table can know the host, and a copy kernel measured over 64 MiB is
 *   no ceiling either (the CPU backend leaves the caches warm, so a case that
 *   fits in them runs faster than DRAM; and the copy kernel's rate is bound by
 *   the cost of each thread's invocation, which a kernel with more work per
 *   thread does not pay per byte). The CPU ceiling is therefore a physical
 *   bound of the host that no real kernel can pass: every logical CPU moving
 *   at most 192 bytes a cycle between registers and L1 (two 64-byte loads and
 *   one 64-byte store, the widest cores shipping) and retiring at most 64 FP32
 *   FLOP a cycle (two 16-lane FMA pipes), at no more than 6 GHz. It catches a
 *   kernel that skips most of its work, not one that skips a little.
 */
import { cpus, availableParallelism } from 'node:os';
import type { BenchCase } from './run.js';
import { findPeak } from './peaks.js';

export const IMPOSSIBLE = 'physically impossible: the kernel did not do the work the cost model says';

/** Margin over a measured copy bandwidth before a case is impossible. */
export const MEASURED_MARGIN = 0.1;
/** Bytes a cycle one logical CPU can move between registers and L1, at most. */
export const HOST_BYTES_PER_CYCLE = 192;
/** FP32 FLOP a cycle one logical CPU can retire, at most. */
export const HOST_FLOP_PER_CYCLE = 64;
/** No shipping CPU clocks higher (GHz). */
export const HOST_MAX_GHZ = 6;
/**
 * Bytes above which a working set cannot stay in any GPU's last-level cache
 * (the largest in the peak table's devices: Apple Ultra system-level caches,
 * NVIDIA L2s of at most 60 MB), so DRAM bandwidth bounds it even when nothing
 * evicts the cache between dispatches.
 */
export const LARGEST_GPU_CACHE_BYTES = 256 * 2 ** 20;

export interface Ceiling {
  kind: 'bandwidth' | 'compute';
  /** GB/s for bandwidth, GFLOP/s for compute. */
  value: number;
  /** A case is impossible above value × (1 + margin). */
  margin: number;
  /** Short name for tables and the roofline. */
  label: string;
  source: string;
  /** Cases smaller than this many bytes are not bounded by it (they may run from a cache); 0: every case. */
  minBytes: number;
}

export interface ImpossibleCase {
  kernel: string;
  shape: string;
  gbps: number;
  gflops: number;
  reasons: string[];
}

export interface PhysicsVerdict {
  ceilings: Ceiling[];
  notes: string[];
  impossible: ImpossibleCase[];
}

/** What the check reads from a bench report (a saved --json report has it too). */
export interface PhysicsInput {
  backend: string;
  device: { name: string };
  peak: { bandwidthGBs: number; source: string } | null;
  flags: Record<string, unknown>;
  cases: Pick<BenchCase, 'kernel' | 'shape' | 'bytes' | 'flops' | 'gbps' | 'gflops'>[];
}

/** Logical CPUs of this host: the most that can run a CPU-backend dispatch at once. */
export function hostCpus(): number {
  return Math.max(cpus().length, availableParallelism(), 1);
}

/** The ceilings that bound a report's cases, with notes on what is not bounded and why. */
export function deviceCeilings(r: Omit<PhysicsInput, 'cases'>, logicalCpus = hostCpus()): { ceilings: Ceiling[]; notes: string[] } {
  const ceilings: Ceiling[] = [];
  const notes: string[] = [];
  if (r.backend === 'cpu') {
    const n = logicalCpus;
    ceilings.push({
      kind: 'bandwidth',
      value: n * HOST_BYTES_PER_CYCLE * HOST_MAX_GHZ,
      margin: 0,
      label: 'host bound',
      source: `${n} logical CPUs × ${HOST_BYTES_PER_CYCLE} B/cycle × ${HOST_MAX_GHZ} GHz (what no core can pass)`,
      minBytes: 0,
    });
    ceilings.push({
      kind: 'compute',
      value: n * HOST_FLOP_PER_CYCLE * HOST_MAX_GHZ,
      margin: 0,
      label: 'host bound',
      source: `${n} logical CPUs × ${HOST_FLOP_PER_CYCLE} FP32 FLOP/cycle × ${HOST_MAX_GHZ} GHz (what no core can pass)`,
      minBytes: 0,
    });
    if (r.peak?.source.startsWith('measured')) {
      notes.push('the measured copy bandwidth is shown, not applied: on the CPU a case that fits in the caches may run faster than a copy through DRAM');
    }
    return { ceilings, notes };
  }
  // GPUs: memory ceilings bound every case where the timing evicts the cache between dispatches.
  const evicts = r.backend === 'cuda' && r.flags['warm-cache'] !== true;
  const minBytes = evicts ? 0 : LARGEST_GPU_CACHE_BYTES;
  if (!evicts) {
    notes.push(
      `${r.backend === 'cuda' ? '--warm-cache' : `the ${r.backend} backend's timing`} leaves data in the cache between dispatches: the memory ceilings bound only cases moving more than ${LARGEST_GPU_CACHE_BYTES / 2 ** 20} MiB`,
    );
  }
  const table = findPeak(r.device.name);
  if (table) ceilings.push({ kind: 'bandwidth', value: table.bandwidthGBs, margin: 0, label: 'peak table', source: `${table.name}: ${table.source}`, minBytes });
  if (r.peak?.source.startsWith('measured')) {
    ceilings.push({ kind: 'bandwidth', value: r.peak.bandwidthGBs, margin: MEASURED_MARGIN, label: 'measured copy', source: r.peak.source, minBytes });
  }
  if (!table && !r.peak?.source.startsWith('measured')) notes.push(`no bandwidth ceiling known for ${r.device.name} (use --measure-peak)`);
  if (table?.fp32Tflops !== undefined) {
    ceilings.push({ kind: 'compute', value: table.fp32Tflops * 1000, margin: 0, label: 'peak table', source: `${table.name}: FP32, ${table.source}`, minBytes: 0 });
  } else {
    notes.push(`no compute ceiling known for ${r.device.name}`);
  }
  return { ceilings, notes };
}

const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toPrecision(2));

/** Every case checked against every ceiling that bounds it. */
export function checkPhysics(r: PhysicsInput, logicalCpus = hostCpus()): PhysicsVerdict {
  const { ceilings, notes } = deviceCeilings(r, logicalCpus);
  const impossible: ImpossibleCase[] = [];
  for (const c of r.cases) {
    const reasons: string[] = [];
    for (const k of ceilings) {
      if (c.bytes < k.minBytes) continue;
      const got = k.kind === 'bandwidth' ? c.gbps : c.gflops;
      const limit = k.value * (1 + k.margin);
      if (Number.isFinite(got) && got > limit) {
        const unit = k.kind === 'bandwidth' ? 'GB/s' : 'GFLOP/s';
        const over = k.margin > 0 ? ` + ${Math.round(100 * k.margin)}%` : '';
        reasons.push(`${fmt(got)} ${unit} > ${k.label} ${fmt(k.value)} ${unit}${over} (${k.source})`);
      }
    }
    if (reasons.length > 0) impossible.push({ kernel: c.kernel, shape: c.shape, gbps: c.gbps, gflops: c.gflops, reasons });
  }
  return { ceilings, notes, impossible };
}

/** Lines for the table or Markdown output (empty when every case is possible). */
export function renderPhysics(v: PhysicsVerdict, markdown: boolean): string {
  if (v.impossible.length === 0) return '';
  const lines: string[] = [''];
  if (markdown) {
    lines.push('### ❌ Physically impossible results', '');
    for (const c of v.impossible) lines.push(`- **${c.kernel}** ${c.shape}: ${IMPOSSIBLE}: ${c.reasons.join('; ')}`);
    lines.push('');
  } else {
    for (const c of v.impossible) lines.push(`IMPOSSIBLE ${c.kernel} ${c.shape}: ${IMPOSSIBLE}: ${c.reasons.join('; ')}`);
    lines.push(`FAIL: ${v.impossible.length} physically impossible case(s)`);
  }
  return lines.join('\n');
}
