/**
 * Reference of fused softmax + top-k + renormalise (pure TS, f64).
 *
 * For each token: p = softmax(logits) over n_experts; the top_k experts by p,
 * ordered by descending p, ties broken by the lower expert index; weights =
 * p_i / Σ_{selected} p.
 */

export interface SoftmaxTopkResult {
  ids: Uint32Array;
  weights: Float64Array;
  /** Full softmax probabilities [n_tokens, n_experts], for tie decisions. */
  probs: Float64Array;
}

/** out[base + i] = softmax of x[base .. base + n), max-subtracted, in f64. */
export function softmaxInto(x: ArrayLike<number>, base: number, n: number, out: Float64Array): void {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, x[base + i] as number);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp((x[base + i] as number) - m);
    out[base + i] = e;
    s += e;
  }
  for (let i = 0; i < n; i++) out[base + i] = (out[base + i] as number) / s;
}

export function softmaxTopkRef(
  logits: Float32Array,
  nTokens: number,
  nExperts: number,
  topK: number,
): SoftmaxTopkResult {
  const ids = new Uint32Array(nTokens * topK);
  const weights = new Float64Array(nTokens * topK);
  const probs = new Float64Array(nTokens * nExperts);
  const order = new Array<number>(nExperts);
  for (let t = 0; t < nTokens; t++) {
    const base = t * nExperts;
    softmaxInto(logits, base, nExperts, probs);
    for (let e = 0; e < nExperts; e++) order[e] = e;
    order.sort((a, b) => (probs[base + b] as number) - (probs[base + a] as number) || a - b);
    let ks = 0;
    for (let k = 0; k < topK; k++) ks += probs[base + (order[k] as number)] as number;
    for (let k = 0; k < topK; k++) {
      const e = order[k] as number;
      ids[t * topK + k] = e;
      weights[t * topK + k] = (probs[base + e] as number) / ks;
    }
  }
  return { ids, weights, probs };
}

/**
 * Two probabilities tie when a float32 kernel cannot be expected to order
 * them: within a relative 1e-6 (a few f32 ulps of exp and division) or both
 * below 1e-30 (underflow: the GPU flushes such values to zero).
 */
export function probsTie(a: number, b: number): boolean {
  if (a < 1e-30 && b < 1e-30) return true;
  return Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b));
}
