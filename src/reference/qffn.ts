/**
 * References of the fused decode expert stage (shaders/moe_qffn.metal): pure
 * TS, f64. Weights are stacked over experts [n_experts, rows, in_dim], MLX
 * affine quantized (dequantized as qmvRef does) or f32. Each result carries
 * its magnitude (the sum of the absolute terms), the scale of a kernel's f32
 * rounding error in any summation order.
 */
import { ACT_MAX_SLOPE, activation, qmvRef, type PackedWeights, type QmvResult } from './quant.js';

/** f32 weights, or packed MLX affine ones. */
export type ExpertWeights = { bits: 32; w: Float32Array } | PackedWeights;

/** y[r] = Σ_i W[row0 + r, i]·x[xOff + i] for r < outDim, with Σ|W·x| per output. */
export function rowsRef(m: ExpertWeights, row0: number, outDim: number, inDim: number, groupSize: number, x: Float32Array, xOff = 0): QmvResult {
  if (m.bits !== 32) return qmvRef(m, row0, outDim, inDim, groupSize, x, xOff);
  const y = new Float64Array(outDim);
  const mag = new Float64Array(outDim);
  for (let r = 0; r < outDim; r++) {
    const base = (row0 + r) * inDim;
    let acc = 0;
    let a = 0;
    for (let i = 0; i < inDim; i++) {
      const t = (m.w[base + i] as number) * (x[xOff + i] as number);
      acc += t;
      a += Math.abs(t);
    }
    y[r] = acc;
    mag[r] = a;
  }
  return { y, mag };
}

export interface FfnShape {
  nExperts: number;
  outDim: number;
  inDim: number;
  groupSize: number;
}

/**
 * h[s, r] = act(Wg[ids[s]]·x)[r] · (Wu[ids[s]]·x)[r] for every slot s; a slot
 * whose id is ≥ n_experts gives zeros. mag as qgateUpRef's.
 */
export function ffnGateUpRef(gate: ExpertWeights, up: ExpertWeights, ids: Uint32Array, s: FfnShape, x: Float32Array, act: number): QmvResult {
  const f = activation(act);
  const R = s.outDim;
  const y = new Float64Array(ids.length * R);
  const mag = new Float64Array(ids.length * R);
  ids.forEach((e, slot) => {
    if (e >= s.nExperts) return;
    const g = rowsRef(gate, e * R, R, s.inDim, s.groupSize, x);
    const u = rowsRef(up, e * R, R, s.inDim, s.groupSize, x);
    for (let r = 0; r < R; r++) {
      const a = f(g.y[r] as number);
      y[slot * R + r] = a * (u.y[r] as number);
      mag[slot * R + r] = ACT_MAX_SLOPE * (g.mag[r] as number) * Math.abs(u.y[r] as number) + Math.abs(a) * (u.mag[r] as number);
    }
  });
  return { y, mag };
}

export interface DownExtras {
  /** shared expert output [out_dim], scaled by sharedGate */
  shared?: Float32Array;
  sharedGate?: number;
  residual?: Float32Array;
}

/**
 * out[r] = Σ_s route_w[s]·(Wd[ids[s]]·h[s])[r] (+ sharedGate·shared[r]) (+ residual[r]);
 * slots whose id is ≥ n_experts add nothing.
 */
export function ffnDownAccumRef(w: ExpertWeights, ids: Uint32Array, routeW: Float32Array, s: FfnShape, h: Float32Array, extra: DownExtras = {}): QmvResult {
  const R = s.outDim;
  const y = new Float64Array(R);
  const mag = new Float64Array(R);
  ids.forEach((e, slot) => {
    if (e >= s.nExperts) return;
    const d = rowsRef(w, e * R, R, s.inDim, s.groupSize, h, slot * s.inDim);
    const rw = routeW[slot] as number;
    for (let r = 0; r < R; r++) {
      y[r] = (y[r] as number) + rw * (d.y[r] as number);
      mag[r] = (mag[r] as number) + Math.abs(rw) * (d.mag[r] as number);
    }
  });
  for (let r = 0; r < R; r++) {
    if (extra.shared) {
      const v = (extra.sharedGate ?? 1) * (extra.shared[r] as number);
      y[r] = (y[r] as number) + v;
      mag[r] = (mag[r] as number) + Math.abs(v);
    }
    if (extra.residual) {
      y[r] = (y[r] as number) + (extra.residual[r] as number);
      mag[r] = (mag[r] as number) + Math.abs(extra.residual[r] as number);
    }
  }
  return { y, mag };
}
