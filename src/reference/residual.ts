/**
 * The residual stream around an MoE block, in f64: the residual add, and the
 * combine of the routed experts' outputs into the residual (optionally scaled
 * by a routed scaling factor, as DeepSeek-V2/V3 do), plus a dense mat-vec for
 * bf16 weights. Each sum also returns Σ|terms| per output, the scale of its
 * f32 rounding error.
 */

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
  const values = new Float64Array(T * H);
  const absTermSum = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < H; d++) {
      let acc = 0;
      let abs = 0;
      for (let k = 0; k < K; k++) {
        const term = (w[t * K + k] as number) * (y[(t * K + k) * H + d] as number);
        acc += term;
        abs += Math.abs(term);
      }
      const r = res[t * H + d] as number;
      values[t * H + d] = r + scale * acc;
      absTermSum[t * H + d] = Math.abs(r) + Math.abs(scale) * abs;
    }
  }
  return { values, absTermSum };
}

/** out[r] = Σ_j W[r, j] · x[j]; W row-major [n, k] (already widened from bf16). */
export function matvecBf16Ref(W: ArrayLike<number>, x: ArrayLike<number>, n: number, k: number): SumRef {
  if (W.length !== n * k || x.length !== k) throw new Error(`matvecBf16Ref: W has ${W.length} elements (expected ${n}×${k}), x ${x.length}`);
  const values = new Float64Array(n);
  const absTermSum = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let acc = 0;
    let abs = 0;
    for (let j = 0; j < k; j++) {
      const term = (W[r * k + j] as number) * (x[j] as number);
      acc += term;
      abs += Math.abs(term);
    }
    values[r] = acc;
    absTermSum[r] = abs;
  }
  return { values, absTermSum };
}
