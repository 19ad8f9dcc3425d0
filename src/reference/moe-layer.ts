/**
 * Reference of one whole MoE FFN layer (pure TS, f64 accumulation), stage by
 * stage, so `moe dispatch` can name the first stage whose result diverges.
 *
 *   logits = x · W_routerᵀ                       [T, E]
 *   ids, w = softmax → top-k → renormalise       [T, K]
 *   for each token t and slot k (expert e = ids[t,k]):
 *     g = W_gate[e] · x[t], u = W_up[e] · x[t]   [I]
 *     h = act(g) · u                             [I]   (act: GELU-tanh, the seeds' math)
 *     y[t,k] = W_down[e] · h                     [H]
 *   shared (when the model has one): ys[t] = W_sd · (act(W_sg · x[t]) · (W_su · x[t]))
 *     gate g_s[t] = sigmoid(w_sgate · x[t]) when gated, else 1
 *   out[t] = Σ_k w[t,k]·y[t,k] + g_s[t]·ys[t] + x[t]   (residual)
 *
 * Matrices are row-major [rows = outputs, cols = inputs], as naive_matvec_f32 takes them.
 */
import { softmaxTopkRef } from './softmax-topk.js';

export type Activation = 'gelu-tanh' | 'silu';

export function geluTanh(x: number): number {
  let inner = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  inner = Math.min(Math.max(inner, -15), 15);
  return 0.5 * x * (1 + Math.tanh(inner));
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

export function activation(a: Activation): (x: number) => number {
  return a === 'silu' ? silu : geluTanh;
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** y = W·x for W [n, k] row-major at `offset`. */
export function matvec(w: Float32Array, offset: number, x: ArrayLike<number>, xOff: number, n: number, k: number): Float64Array {
  const y = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    const base = offset + r * k;
    for (let c = 0; c < k; c++) s += (w[base + c] as number) * (x[xOff + c] as number);
    y[r] = s;
  }
  return y;
}

export interface LayerShape {
  tokens: number;
  hidden: number;
  intermediate: number;
  experts: number;
  topK: number;
  /** 0 when the model has no shared expert. */
  sharedIntermediate: number;
  sharedGate: boolean;
  activation: Activation;
}

/** Expert weights are produced on demand (a real layer's are gigabytes). */
export interface LayerWeights {
  router: Float32Array; // [E, H]
  gate(e: number): Float32Array; // [I, H]
  up(e: number): Float32Array; // [I, H]
  down(e: number): Float32Array; // [H, I]
  sharedGate?: Float32Array; // [I_s, H]
  sharedUp?: Float32Array; // [I_s, H]
  sharedDown?: Float32Array; // [H, I_s]
  sharedGateVec?: Float32Array; // [H]
}

export interface LayerStages {
  logits: Float64Array; // [T, E]
  ids: Uint32Array; // [T, K]
  weights: Float64Array; // [T, K]
  probs: Float64Array; // [T, E]
  /** gate and up projections per (t, k): [T·K, I] */
  gateOut: Float64Array;
  upOut: Float64Array;
  /** GELU(gate)·up per (t, k): [T·K, I] */
  hidden: Float64Array;
  /** expert outputs per (t, k): [T·K, H] */
  expertOut: Float64Array;
  /** shared expert output [T, H] (zeros without one) and its gate [T] */
  sharedOut: Float64Array;
  sharedGate: Float64Array;
  /** the layer's output [T, H] */
  out: Float64Array;
}

export function moeLayerRef(s: LayerShape, x: Float32Array, w: LayerWeights): LayerStages {
  const { tokens: T, hidden: H, intermediate: I, experts: E, topK: K, sharedIntermediate: IS } = s;
  const act = activation(s.activation);
  const logits = new Float64Array(T * E);
  for (let t = 0; t < T; t++) logits.set(matvec(w.router, 0, x, t * H, E, H), t * E);
  // The kernel sees f32 logits: route on those.
  const r = softmaxTopkRef(Float32Array.from(logits), T, E, K);
  const hidden = new Float64Array(T * K * I);
  const gateOut = new Float64Array(T * K * I);
  const upOut = new Float64Array(T * K * I);
  const expertOut = new Float64Array(T * K * H);
  const sharedOut = new Float64Array(T * H);
  const sharedGate = new Float64Array(T);
  const out = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < K; k++) {
      const e = r.ids[t * K + k] as number;
      const g = matvec(w.gate(e), 0, x, t * H, I, H);
      const u = matvec(w.up(e), 0, x, t * H, I, H);
      gateOut.set(g, (t * K + k) * I);
      upOut.set(u, (t * K + k) * I);
      const h = new Float64Array(I);
      for (let i = 0; i < I; i++) h[i] = act(g[i] as number) * (u[i] as number);
      hidden.set(h, (t * K + k) * I);
      const y = matvec(w.down(e), 0, h, 0, H, I);
      expertOut.set(y, (t * K + k) * H);
    }
    if (IS > 0 && w.sharedGate && w.sharedUp && w.sharedDown) {
      const g = matvec(w.sharedGate, 0, x, t * H, IS, H);
      const u = matvec(w.sharedUp, 0, x, t * H, IS, H);
      const h = new Float64Array(IS);
      for (let i = 0; i < IS; i++) h[i] = act(g[i] as number) * (u[i] as number);
      sharedOut.set(matvec(w.sharedDown, 0, h, 0, H, IS), t * H);
      let gs = 1;
      if (s.sharedGate && w.sharedGateVec) {
        let d = 0;
        for (let c = 0; c < H; c++) d += (w.sharedGateVec[c] as number) * (x[t * H + c] as number);
        gs = sigmoid(d);
      }
      sharedGate[t] = gs;
    }
    for (let c = 0; c < H; c++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += (r.weights[t * K + k] as number) * (expertOut[(t * K + k) * H + c] as number);
      out[t * H + c] = acc + (sharedGate[t] as number) * (sharedOut[t * H + c] as number) + (x[t * H + c] as number);
    }
  }
  return { logits, ids: r.ids, weights: r.weights, probs: r.probs, gateOut, upOut, hidden, expertOut, sharedOut, sharedGate, out };
}
