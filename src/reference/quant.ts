/**
 * References of the quantized (MLX affine) mat-vec kernels: pure TS, f64.
 *
 * Each weight is dequantized exactly as the kernels must: w = q·scale + bias
 * with the stored bf16 scale and bias (q·scale + bias in f64: the true value of
 * the quantized weight), and the dot products accumulate in f64. Alongside
 * each result goes its magnitude Σ_i (|q_i·scale| + |bias|)·|x_i|: the size of
 * the terms any summation order (or the algebra scale·Σq·x + bias·Σx that
 * MLX's kernels use) may add, so the scale of a kernel's f32 rounding error.
 */
import { bf16BitsToF32 } from '../util/bf16.js';

/** A packed weight tensor as the kernels take it (one matrix or a stack of experts' matrices). */
export interface PackedWeights {
  bits: 4 | 8;
  w: Uint32Array;
  scales: Uint16Array;
  biases: Uint16Array;
}

export interface QmvResult {
  y: Float64Array;
  /** Σ (|q·s| + |b|)·|x| per output. */
  mag: Float64Array;
}

/**
 * y[r] = Σ_i (q[row0 + r, i]·s + b)·x[xOff + i] for r < outDim, where row0 is
 * the first row in the packed tensor (expert e: e·outDim).
 */
export function qmvRef(
  m: PackedWeights,
  row0: number,
  outDim: number,
  inDim: number,
  groupSize: number,
  x: Float32Array,
  xOff = 0,
): QmvResult {
  const pw = 32 / m.bits;
  const mask = (1 << m.bits) - 1;
  const wpr = inDim / pw;
  const gpr = inDim / groupSize;
  const wpg = groupSize / pw;
  const y = new Float64Array(outDim);
  const mag = new Float64Array(outDim);
  for (let r = 0; r < outDim; r++) {
    const row = row0 + r;
    let acc = 0;
    let a = 0;
    for (let g = 0; g < gpr; g++) {
      const s = bf16BitsToF32(m.scales[row * gpr + g] as number);
      const b = bf16BitsToF32(m.biases[row * gpr + g] as number);
      const as = Math.abs(s);
      const ab = Math.abs(b);
      for (let k = 0; k < wpg; k++) {
        const wi = g * wpg + k;
        const word = m.w[row * wpr + wi] as number;
        for (let j = 0; j < pw; j++) {
          const q = (word >>> (m.bits * j)) & mask;
          const xv = x[xOff + wi * pw + j] as number;
          acc += (q * s + b) * xv;
          a += (q * as + ab) * Math.abs(xv);
        }
      }
    }
    y[r] = acc;
    mag[r] = a;
  }
  return { y, mag };
}

/** SiLU: g / (1 + e^−g). */
export function silu(g: number): number {
  return g / (1 + Math.exp(-g));
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation: 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))). */
export function geluTanh(g: number): number {
  return 0.5 * g * (1 + Math.tanh(GELU_C * (g + 0.044715 * g * g * g)));
}

/** Activation codes of the `act` parameter. */
export const ACTIVATIONS = ['silu', 'gelu-tanh'] as const;

export function activation(code: number): (g: number) => number {
  if (code === 0) return silu;
  if (code === 1) return geluTanh;
  throw new Error(`unknown activation code ${code} (0 = silu, 1 = gelu-tanh)`);
}

/** Largest |act'(g)| over all g (SiLU: 1.0998; GELU-tanh: 1.1289), rounded up. */
export const ACT_MAX_SLOPE = 1.13;

export interface GateUpResult {
  y: Float64Array;
  /** Error scale per output: slope·mag_gate·|up| + |act(gate)|·mag_up. */
  mag: Float64Array;
}

/** y[r] = act(gate[r]) · up[r], gate and up quantized mat-vecs of the same x. */
export function qgateUpRef(
  gate: PackedWeights,
  up: PackedWeights,
  outDim: number,
  inDim: number,
  groupSize: number,
  x: Float32Array,
  act: number,
): GateUpResult {
  const f = activation(act);
  const g = qmvRef(gate, 0, outDim, inDim, groupSize, x);
  const u = qmvRef(up, 0, outDim, inDim, groupSize, x);
  const y = new Float64Array(outDim);
  const mag = new Float64Array(outDim);
  for (let r = 0; r < outDim; r++) {
    const a = f(g.y[r] as number);
    y[r] = a * (u.y[r] as number);
    mag[r] = ACT_MAX_SLOPE * (g.mag[r] as number) * Math.abs(u.y[r] as number) + Math.abs(a) * (u.mag[r] as number);
  }
  return { y, mag };
}
