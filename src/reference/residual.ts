/**
 * The residual stream around an MoE block, in f64: the residual add, and the
 * combine of the routed experts' outputs into the residual (optionally scaled
 * by a routed scaling factor, as DeepSeek-V2/V3 do), plus a dense mat-vec for
 * bf16 weights. Each sum also returns Σ|terms| per output, the scale of its
 * f32 rounding error.
 */
import { matvecRef, weightedSumRef } from './ffn.js';

export interface SumRef {
  values: Float64Array;
  /** Σ |term| per output element (residual included). */
  absTermSum: Float64Array;
}

/** out[i] = a[i] + b[i]. */
export function residualAddRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length !== b.length) throw new Error(`residualAddRef: a has ${a.length} elements, b ${b.length}`);
  return Float64Array.from({ length: a.length }, (_, i) => (a[i] as number) + (b[i] as number));
}

/** out[t, d] = res[t, d] + scale · Σ_k w[t, k] · y[t, k, d]; y: [T, K, H], w: [T, K], res: [T, H]. */
export function moeCombineRef(y: ArrayLike<number>, w: ArrayLike<number>, res: ArrayLike<number>, T: number, K: number, H: number, scale = 1): SumRef {
  if (y.length !== T * K * H || w.length !== T * K || res.length !== T * H) throw new Error(`moeCombineRef: buffer lengths do not match T=${T} K=${K} H=${H}`);
  const experts = weightedSumRef(y, w, T, K, H);
  const values = new Float64Array(T * H);
  const absTermSum = new Float64Array(T * H);
  for (let i = 0; i < T * H; i++) {
    const r = res[i] as number;
    values[i] = r + scale * (experts.values[i] as number);
    absTermSum[i] = Math.abs(r) + Math.abs(scale) * (experts.absTermSum[i] as number);
  }
  return { values, absTermSum };
}

/** out[r] = Σ_j W[r, j] · x[j]; W row-major [n, k] (already widened from bf16). */
export function matvecBf16Ref(W: ArrayLike<number>, x: ArrayLike<number>, n: number, k: number): SumRef {
  if (W.length !== n * k || x.length !== k) throw new Error(`matvecBf16Ref: W has ${W.length} elements (expected ${n}×${k}), x ${x.length}`);
  const { values, absTermSum } = matvecRef(W, x, n, k);
  return { values, absTermSum };
}
