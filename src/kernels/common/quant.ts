/**
 * Shared pieces of the quantized (MLX affine) kernel specs: the launch
 * geometry mirrored from shaders/moe_quant.metal, the input sets and their
 * generators, the buffer declarations of the common interface, and the
 * comparison rule.
 */
import { checkQuantShape, quantize, type QuantBits, type QuantizedMatrix, type QuantMode } from '../../quant/affine.js';
import { f32ToBf16Bits } from '../../util/bf16.js';
import { fillUniform, hashString } from '../../util/fastrng.js';
import type { Rng } from '../../util/rng.js';
import { qmvRef } from '../../reference/quant.js';
import type { BufferDecl, FloatRule, ParamDef, Params, Tensors } from '../spec.js';
import { num } from './params.js';
import { inputSets } from './cases.js';

/** Tiled mat-vec geometry (#define QT_* in the shader). */
export const QT = { SG: 4, ROWS: 4, XT: 2048 } as const;
/** Batched mat-vec geometry (#define QB_*). */
export const QB = { SG: 4, ROWS: 2, TOK: 4, XT: 512 } as const;
/** Rows per SIMD-group of the fused gate + up kernel (#define QG_ROWS). */
export const QG_ROWS = 2;
/** Threads per threadgroup of the naive kernels. */
export const NAIVE_TG = 64;

export const QUANT_SHADER = 'moe_quant.metal';
export const QUANT_GROUP = 'quantized experts';
/** The dequantization every quantized kernel performs, for the `math` lines. */
export const DEQ = 'W[r,i] = q[r,i]·scale[r,i/gs] + bias[r,i/gs] (bf16 scale/bias, q unpacked lowest bits first)';

/** Bytes of one [out, in_dim] matrix: packed weights, and bf16 scales + biases. */
export function qmvCost(bits: QuantBits, out: number, inDim: number, gs: number): { weights: number; sb: number } {
  return { weights: (out * inDim * bits) / 8, sb: (2 * 2 * out * inDim) / gs };
}

export const QPARAMS: ParamDef[] = [
  { name: 'out_dim', flag: 'out-dim', description: 'output rows of the weight matrix', min: 1 },
  { name: 'in_dim', flag: 'in-dim', description: 'input length (a multiple of group_size)', min: 1 },
  { name: 'group_size', flag: 'group-size', description: 'input elements per scale/bias group (32, 64 or 128)', min: 8 },
];

/** Whether each slot has its own input row: the expert-indexed mat-vecs' down (1) or gate/up (0) projection. */
export const X_PER_PAIR: ParamDef = {
  name: 'x_per_pair',
  flag: 'x-per-pair',
  description: '1: one input row per slot (down projection), 0: one input shared by all slots (gate/up)',
  min: 0,
  max: 1,
};

export const QUANT_INPUT_SETS = inputSets(`
  normal: weights U(-0.1, 0.1) quantized min/max (scale = range/(2^bits-1), bias = min); x ~ N(0,1)
  mlx: the same weights quantized as MLX's affine_quantize does (zero snapped to the grid: negative scales, bias = the larger-magnitude end)
  constant-groups: a third of the groups constant (scale 0; 0, 0.0625, 0.05, -0.033, 1e-3: bf16-exact and not), a third two-valued, the rest U(-0.1, 0.1); x ~ N(0,1)
  large: weights ±3e4 + U(-50, 50) per row (bias ≫ scale·q), x ~ N(0, 1e3²): large magnitudes and cancellation
  zeros: x = 0: every output must be exactly 0
`);
export const ALL_QUANT_SETS = QUANT_INPUT_SETS.map((s) => s.name);

/** A fast seeded stream of uint32 (mulberry32), for bulk packed words. */
export function u32Stream(seed: string): () => number {
  let a = hashString(seed);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** f32 weights [rows, cols] of an input set (before quantization). */
export function genF32Weights(rows: number, cols: number, groupSize: number, set: string, seed: string): Float32Array {
  const w = new Float32Array(rows * cols);
  switch (set) {
    case 'normal':
    case 'mlx':
    case 'zeros':
      return fillUniform(w, seed, 0.1);
    case 'constant-groups': {
      fillUniform(w, seed, 0.1);
      const r = u32Stream(`${seed}:groups`);
      const consts = [0, 0.0625, 0.05, -0.033, 1e-3]; // bf16-exact and not
      for (let g = 0; g < (rows * cols) / groupSize; g++) {
        const kind = r() % 3;
        const at = g * groupSize;
        if (kind === 0) {
          w.fill(consts[r() % consts.length] as number, at, at + groupSize);
        } else if (kind === 1) {
          const a = ((r() / 2 ** 32) * 2 - 1) * 0.1;
          const b = ((r() / 2 ** 32) * 2 - 1) * 0.1;
          for (let i = 0; i < groupSize; i++) w[at + i] = r() & 1 ? a : b;
        }
      }
      return w;
    }
    case 'large': {
      fillUniform(w, seed, 50);
      for (let row = 0; row < rows; row++) {
        const c = row % 2 === 0 ? 3e4 : -3e4;
        for (let i = 0; i < cols; i++) w[row * cols + i] = (w[row * cols + i] as number) + c;
      }
      return w;
    }
    default:
      throw new Error(`unknown input set '${set}'`);
  }
}

export function quantMode(set: string): QuantMode {
  return set === 'mlx' ? 'mlx' : 'minmax';
}

export function emptyQuant(rows: number, cols: number, bits: QuantBits, groupSize: number): QuantizedMatrix {
  return {
    bits,
    groupSize,
    rows,
    cols,
    w: new Uint32Array((rows * cols * bits) / 32),
    scales: new Uint16Array((rows * cols) / groupSize),
    biases: new Uint16Array((rows * cols) / groupSize),
  };
}

/** Quantized weights of an input set, [rows, cols], written into `into` at `rowOffset` when given. */
export function genQuantWeights(
  rows: number,
  cols: number,
  bits: QuantBits,
  groupSize: number,
  set: string,
  seed: string,
  into?: QuantizedMatrix,
  rowOffset = 0,
): QuantizedMatrix {
  const w = genF32Weights(rows, cols, groupSize, set, seed);
  return quantize(w, rows, cols, bits, groupSize, { mode: quantMode(set), into, rowOffset });
}

/**
 * Arbitrary packed weights for rows [row0, row0 + rows) of `m`: random words
 * (every bit pattern) and random bf16 scales and biases of both signs. Fills
 * experts that the kernel must not read (a wrong gather then shows).
 */
export function fillRandomPacked(m: QuantizedMatrix, row0: number, rows: number, seed: string): void {
  const r = u32Stream(seed);
  const wpr = (m.cols * m.bits) / 32;
  const gpr = m.cols / m.groupSize;
  for (let i = row0 * wpr; i < (row0 + rows) * wpr; i++) m.w[i] = r();
  for (let i = row0 * gpr; i < (row0 + rows) * gpr; i++) {
    m.scales[i] = f32ToBf16Bits(((r() / 2 ** 32) * 2 - 1) * 0.02);
    m.biases[i] = f32ToBf16Bits(((r() / 2 ** 32) * 2 - 1) * 0.2);
  }
}

/** Copy rows [from, from + rows) of `m` to rows [to, to + rows) (memcpy speed, for bulk filler experts). */
export function copyRows(m: QuantizedMatrix, from: number, to: number, rows: number): void {
  const wpr = (m.cols * m.bits) / 32;
  const gpr = m.cols / m.groupSize;
  m.w.copyWithin(to * wpr, from * wpr, (from + rows) * wpr);
  m.scales.copyWithin(to * gpr, from * gpr, (from + rows) * gpr);
  m.biases.copyWithin(to * gpr, from * gpr, (from + rows) * gpr);
}

/** Inputs x of an input set: `count` values. */
export function genX(count: number, set: string, rng: Rng): Float32Array {
  const x = new Float32Array(count);
  if (set === 'zeros') return x;
  const k = set === 'large' ? 1e3 : 1;
  for (let i = 0; i < count; i++) x[i] = k * rng.normal();
  return x;
}

/** The common interface's buffers 0..7 (prefix for gate/up names), at `first` onwards. */
export function weightBuffers(
  bits: QuantBits,
  first: number,
  rowsOf: (p: Params) => number,
  prefix = '',
): BufferDecl[] {
  return [
    { index: first, name: `${prefix}w`, kind: 'array', mslType: 'uint', dtype: 'u32', access: 'read', length: (p) => (rowsOf(p) * num(p, 'in_dim') * bits) / 32 },
    { index: first + 1, name: `${prefix}scales`, kind: 'array', mslType: 'bfloat', dtype: 'bf16', access: 'read', length: (p) => (rowsOf(p) * num(p, 'in_dim')) / num(p, 'group_size') },
    { index: first + 2, name: `${prefix}biases`, kind: 'array', mslType: 'bfloat', dtype: 'bf16', access: 'read', length: (p) => (rowsOf(p) * num(p, 'in_dim')) / num(p, 'group_size') },
  ];
}

export function dimBuffers(first: number): BufferDecl[] {
  return [
    { index: first, name: 'out_dim', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'out_dim') },
    { index: first + 1, name: 'in_dim', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'in_dim') },
    { index: first + 2, name: 'group_size', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'group_size') },
  ];
}

/** Shape checks shared by every quantized spec. */
export function validateQuant(p: Params, bits: QuantBits, weightRows: number): string | null {
  const bad = checkQuantShape(num(p, 'in_dim'), bits, num(p, 'group_size'));
  if (bad !== null) return bad;
  const bytes = (weightRows * num(p, 'in_dim') * bits) / 8;
  if (bytes > 2 ** 30) return `packed weights of ${(bytes / 2 ** 30).toFixed(1)} GiB are too large to verify`;
  return null;
}

/**
 * The reference of one packed 4-bit matrix applied in `slots`, each an
 * [out_dim]-row mat-vec: slot i reads rows from `row0` and x from `xOffset`;
 * a null slot stays 0. Outputs and magnitudes are [slots, out_dim].
 */
export function qmvSlotsRef(t: Tensors, outDim: number, inDim: number, groupSize: number, slots: ([row0: number, xOffset: number] | null)[]): { y: Float32Array; mag: Float64Array } {
  const m = { bits: 4 as const, w: t.w as Uint32Array, scales: t.scales as Uint16Array, biases: t.biases as Uint16Array };
  const y = new Float32Array(slots.length * outDim);
  const mag = new Float64Array(slots.length * outDim);
  slots.forEach((slot, i) => {
    if (slot === null) return;
    const r = qmvRef(m, slot[0], outDim, inDim, groupSize, t.x as Float32Array, slot[1]);
    y.set(r.y, i * outDim);
    mag.set(r.mag, i * outDim);
  });
  return { y, mag };
}

/** Unit roundoff of f32. */
const U32 = 2 ** -24;

/**
 * The comparison rule for f32 outputs of quantized mat-vecs, from the
 * reference's per-output magnitudes Σ(|q·s| + |b|)·|x| (see src/reference/quant.ts).
 */
export function quantRule(mag: Float64Array, inDim: number, extra = ''): FloatRule {
  let m = 0;
  for (const v of mag) if (v > m) m = v;
  return {
    kind: 'float',
    atol: 4 * Math.sqrt(inDim) * U32 * m + 1e-30,
    rtol: 1e-5,
    minCosine: 0.99999,
    maxRelMaxAbs: 5e-4,
    reason:
      'reference dequantizes as the kernel must (q·scale + bias, bf16 scale/bias) and sums in f64, so only f32 rounding differs: ' +
      `≤ 4·√in_dim·2⁻²⁴·max Σ(|q·s|+|b|)·|x| in any summation order${extra}`,
  };
}
