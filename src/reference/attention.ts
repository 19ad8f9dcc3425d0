/**
 * Reference of the four single-token (decode) GPU attention kernels (pure TS,
 * f64 accumulation), as moeflux's `gpu_attn_fuse` chains them:
 *
 *   scores[h, p] = (Σ_d Q[h, d] · K[p, kv(h), d]) · scale     p < seq_len
 *   scores[h, :seq_len] = softmax(scores[h, :seq_len])           in place
 *   out[h, d]    = Σ_p scores[h, p] · V[p, kv(h), d]
 *   x[i]        *= sigmoid(gate[i])                               in place
 *
 * GQA: kv(h) = h / (n_heads / n_kv_heads). Scores rows are `seq_stride`
 * apart; elements [seq_len, seq_stride) of a row are not part of the result.
 * K and V caches are [seq_len, n_kv_heads · head_dim] row-major.
 *
 * Besides the values, each function returns the magnitude a float32 kernel's
 * rounding error scales with (Σ|terms| of the largest dot product), so specs
 * can derive tolerances from the data.
 */
import { softmaxInto } from './softmax-topk.js';

export interface DotResult {
  /** Exact (f64) results. */
  values: Float64Array;
  /** max over outputs of Σ|a_i · b_i| (the error scale of an f32 dot product). */
  maxAbsTermSum: number;
}

/** scores[h·seq_stride + p] = (Q[h]·K[p, kv(h)])·scale for p < seq_len; padding is 0 (not compared). */
export function attnScoresRef(
  q: Float32Array,
  k: Float32Array,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  seqLen: number,
  seqStride: number,
  scale: number,
): DotResult {
  const out = new Float64Array(nHeads * seqStride);
  const headsPerKv = nHeads / nKvHeads;
  const kvDim = nKvHeads * headDim;
  let maxAbs = 0;
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / headsPerKv);
    for (let p = 0; p < seqLen; p++) {
      let s = 0;
      let a = 0;
      const kb = p * kvDim + kvh * headDim;
      for (let d = 0; d < headDim; d++) {
        const t = (q[h * headDim + d] as number) * (k[kb + d] as number);
        s += t;
        a += Math.abs(t);
      }
      out[h * seqStride + p] = s * scale;
      if (a > maxAbs) maxAbs = a;
    }
  }
  return { values: out, maxAbsTermSum: maxAbs };
}

/**
 * Per-head softmax over [0, seq_len) of each row (max-subtracted); the rest of
 * each row keeps its input value (an in-place kernel leaves it alone).
 */
export function attnSoftmaxRef(scores: Float32Array, nHeads: number, seqLen: number, seqStride: number): Float64Array {
  const out = Float64Array.from(scores);
  for (let h = 0; h < nHeads; h++) {
    softmaxInto(scores, h * seqStride, seqLen, out);
  }
  return out;
}

/** out[h·head_dim + d] = Σ_{p < seq_len} scores[h·seq_stride + p] · V[p, kv(h), d]. */
export function attnValuesRef(
  scores: Float32Array,
  v: Float32Array,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  seqLen: number,
  seqStride: number,
): DotResult {
  const out = new Float64Array(nHeads * headDim);
  const headsPerKv = nHeads / nKvHeads;
  const kvDim = nKvHeads * headDim;
  let maxAbs = 0;
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / headsPerKv);
    for (let d = 0; d < headDim; d++) {
      let s = 0;
      let a = 0;
      for (let p = 0; p < seqLen; p++) {
        const t = (scores[h * seqStride + p] as number) * (v[p * kvDim + kvh * headDim + d] as number);
        s += t;
        a += Math.abs(t);
      }
      out[h * headDim + d] = s;
      if (a > maxAbs) maxAbs = a;
    }
  }
  return { values: out, maxAbsTermSum: maxAbs };
}

/** σ(g) = 1 / (1 + e^−g), written so that neither branch overflows. */
export function sigmoidStable(g: number): number {
  if (g >= 0) return 1 / (1 + Math.exp(-g));
  const e = Math.exp(g);
  return e / (1 + e);
}

/** x[i] · σ(gate[i]). */
export function sigmoidGateRef(x: Float32Array, gate: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] as number) * sigmoidStable(gate[i] as number);
  return out;
}
