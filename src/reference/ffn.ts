/**
 * References of the expert-FFN kernels of the MoE dispatch (pure TS, f64):
 * the GELU·up products (the seeds' "swiglu" kernels use GELU with the tanh
 * approximation, not SiLU), the weighted sums of expert outputs, the
 * per-expert accumulate, the naive mat-vec, the top-k weight gather and the
 * fused weighted reduce with shared expert and residual.
 *
 * Besides the values, functions return the magnitude that a float32 kernel's
 * rounding error scales with, so specs derive tolerances from the data:
 * for sums, Σ|terms| of each output; for GELU·up, ½|gate·up| of each element
 * (the absolute error of tanh is multiplied by it).
 */
/** √(2/π) */
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation: ½x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in f64
 * and unclamped (tanh(±inf) = ±1, so huge inputs give x or −0, never NaN).
 * Kernels that clamp the tanh argument (at ±15, or ±10) differ from it by at
 * most ½|x|·(1 − tanh(10)) ≈ 2e-9·|x|, far below any f32 tolerance.
 */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

export interface ElementwiseResult {
  /** Exact (f64) results. */
  values: Float64Array;
  /** Per element: the scale its f32 rounding error is proportional to. */
  errScale: Float64Array;
}

export interface SumResult {
  values: Float64Array;
  /** Per output: Σ|terms| (the error scale of an f32 sum in any order). */
  absTermSum: Float64Array;
  /** Number of products/terms summed per output (for the error bound). */
  terms: number;
}

export function maxOf(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i] as number);
    if (v > m) m = v;
  }
  return m;
}

/** out[i] = GELU_tanh(gate[i]) · up[i] (fused_gelu_mul, fused_gelu_mul_bf16). */
export function geluMulRef(gate: ArrayLike<number>, up: ArrayLike<number>): ElementwiseResult {
  const n = gate.length;
  const values = new Float64Array(n);
  const errScale = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i] as number;
    const u = up[i] as number;
    values[i] = geluTanh(g) * u;
    errScale[i] = 0.5 * Math.abs(g * u);
  }
  return { values, errScale };
}

/**
 * GELU·up over `rows` rows laid out as [gate (I) | up (I)] each, 2·I floats
 * apart: row r gives out[r·I + i] = GELU_tanh(gu[r·2I + i]) · gu[r·2I + I + i].
 * moe_swiglu_fused is one row (I = n_elements), moe_swiglu_batch top_k rows,
 * moe_swiglu_seq n_tokens·top_k rows.
 */
export function swigluRowsRef(gateUp: ArrayLike<number>, rows: number, inter: number): ElementwiseResult {
  const values = new Float64Array(rows * inter);
  const errScale = new Float64Array(rows * inter);
  for (let r = 0; r < rows; r++) {
    const base = r * 2 * inter;
    for (let i = 0; i < inter; i++) {
      const g = gateUp[base + i] as number;
      const u = gateUp[base + inter + i] as number;
      values[r * inter + i] = geluTanh(g) * u;
      errScale[r * inter + i] = 0.5 * Math.abs(g * u);
    }
  }
  return { values, errScale };
}

/**
 * out[t, d] = Σ_k y[(t·K + k)·H + d] · w[t·K + k] for t < T
 * (moe_weighted_sum is T = 1 with weights [K]; the _seq kernels weights [T, K]).
 */
export function weightedSumRef(y: ArrayLike<number>, w: ArrayLike<number>, nTokens: number, topK: number, hidden: number): SumResult {
  const values = new Float64Array(nTokens * hidden);
  const absTermSum = new Float64Array(nTokens * hidden);
  for (let t = 0; t < nTokens; t++) {
    for (let d = 0; d < hidden; d++) {
      let s = 0;
      let a = 0;
      for (let k = 0; k < topK; k++) {
        const term = (y[(t * topK + k) * hidden + d] as number) * (w[t * topK + k] as number);
        s += term;
        a += Math.abs(term);
      }
      values[t * hidden + d] = s;
      absTermSum[t * hidden + d] = a;
    }
  }
  return { values, absTermSum, terms: topK };
}

/**
 * out[t, h] = Σ_k w[t·K + k] · y[(t·K + k), h] + g[t] · ys[t, h] (+ res[t, h] when `residual` is given)
 * (moe_weighted_reduce_f32).
 */
export function weightedReduceRef(
  w: ArrayLike<number>,
  y: ArrayLike<number>,
  g: ArrayLike<number>,
  ys: ArrayLike<number>,
  residual: ArrayLike<number> | null,
  nTokens: number,
  topK: number,
  hidden: number,
): SumResult {
  const values = new Float64Array(nTokens * hidden);
  const absTermSum = new Float64Array(nTokens * hidden);
  for (let t = 0; t < nTokens; t++) {
    const gt = g[t] as number;
    for (let h = 0; h < hidden; h++) {
      let s = 0;
      let a = 0;
      for (let k = 0; k < topK; k++) {
        const term = (w[t * topK + k] as number) * (y[(t * topK + k) * hidden + h] as number);
        s += term;
        a += Math.abs(term);
      }
      const sh = gt * (ys[t * hidden + h] as number);
      s += sh;
      a += Math.abs(sh);
      if (residual !== null) {
        const r = residual[t * hidden + h] as number;
        s += r;
        a += Math.abs(r);
      }
      values[t * hidden + h] = s;
      absTermSum[t * hidden + h] = a;
    }
  }
  return { values, absTermSum, terms: topK + 1 + (residual !== null ? 1 : 0) };
}

/** acc[i] + w · e[i] (moe_accumulate); errScale = |acc[i]| + |w · e[i]|. */
export function accumulateRef(acc: ArrayLike<number>, e: ArrayLike<number>, w: number): ElementwiseResult {
  const n = acc.length;
  const values = new Float64Array(n);
  const errScale = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = acc[i] as number;
    const p = w * (e[i] as number);
    values[i] = a + p;
    errScale[i] = Math.abs(a) + Math.abs(p);
  }
  return { values, errScale };
}

/** out[r] = Σ_c weight[r·k + c] · x[c] for r < n (naive_matvec_f32; weight [n, k] row-major). */
export function matvecRef(weight: ArrayLike<number>, x: ArrayLike<number>, n: number, k: number): SumResult {
  const values = new Float64Array(n);
  const absTermSum = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    let a = 0;
    const base = r * k;
    for (let c = 0; c < k; c++) {
      const term = (weight[base + c] as number) * (x[c] as number);
      s += term;
      a += Math.abs(term);
    }
    values[r] = s;
    absTermSum[r] = a;
  }
  return { values, absTermSum, terms: k };
}

export interface GatherTopkResult {
  ids: Uint32Array;
  weights: Float64Array;
}

/**
 * moe_gather_topk_weights: ids[k] = sorted[k]; weights[k] = probs[ids[k]] / S · scale[ids[k]]
 * with S = Σ_{k < top_k} probs[ids[k]], and weights 0 when S is not positive.
 * The kernel trusts `sorted` (it neither sorts nor checks it).
 */
export function gatherTopkRef(probs: ArrayLike<number>, sorted: ArrayLike<number>, scale: ArrayLike<number>, topK: number): GatherTopkResult {
  const ids = new Uint32Array(topK);
  const weights = new Float64Array(topK);
  let s = 0;
  for (let k = 0; k < topK; k++) {
    const e = sorted[k] as number;
    ids[k] = e;
    s += probs[e] as number;
  }
  const inv = s > 0 ? 1 / s : 0;
  for (let k = 0; k < topK; k++) {
    const e = ids[k] as number;
    weights[k] = (probs[e] as number) * inv * (scale[e] as number);
  }
  return { ids, weights };
}
