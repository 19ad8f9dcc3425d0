/** Launch geometries shared by the specs. */
import type { NativeLaunch } from '../../backend/addon-types.js';

/** Threadgroup width of every moe_dispatch launch (capped by grid.x), of gpu_attn_fuse and of moe_weighted_reduce_f32. */
export const TG = 256;

/** dispatchThreads of `grid` threads in threadgroups of min(256, grid.x) (mlx-native's encode_with_args). */
export function threads(x: number, y = 1, z = 1): NativeLaunch {
  return { mode: 'threads', grid: [x, y, z], threadgroup: [Math.min(TG, x), 1, 1], threadgroupMemory: [] };
}

/** dispatchThreadgroups of (x, y) threadgroups of `width` threads (default 256). */
export function groups(x: number, y = 1, width = TG, threadgroupMemory: number[] = []): NativeLaunch {
  return { mode: 'threadgroups', grid: [x, y, 1], threadgroup: [width, 1, 1], threadgroupMemory };
}

/** dispatchThreads of (x, y) threads in threadgroups of a fixed `width`. */
export function threadsOf(width: number, x: number, y = 1): NativeLaunch {
  return { mode: 'threads', grid: [x, y, 1], threadgroup: [width, 1, 1], threadgroupMemory: [] };
}
