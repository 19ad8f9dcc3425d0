/**
 * The MLX affine quantization format, in TypeScript: quantize f32 weights,
 * dequantize, and read single values back.
 *
 * A matrix [rows, cols] is cut along each row into groups of `groupSize`
 * consecutive input elements. Each group has one scale and one bias, stored as
 * bfloat16 bits (uint16, rounded to nearest even), and every element a q of
 * `bits` bits, so that w ≈ q·scale + bias. Packing: a uint32 holds 32/bits
 * values, the first element in the lowest bits (4-bit: element j of a word in
 * bits 4j..4j+3; 8-bit: byte j). Shapes:
 *   w      uint32 [rows, cols·bits/32]
 *   scales bf16   [rows, cols/groupSize]
 *   biases bf16   [rows, cols/groupSize]
 * A stack of experts [n_experts, out_dim, in_dim] is the same matrix with
 * rows = n_experts·out_dim.
 *
 * Two ways to choose scale and bias:
 * - 'minmax' (default): scale = (max − min)/(2^bits − 1), bias = min.
 * - 'mlx': MLX's own quantizer (affine_quantize in mlx/backend/metal/kernels/
 *   quantized.h): the endpoint of larger magnitude is snapped to an integer
 *   multiple of the scale so that 0 stays representable; the scale may then be
 *   negative and the bias is that endpoint (or 0). The kernels take either.
 * Both round scale and bias to bf16 first and choose q against the rounded
 * values (the kernels dequantize with the rounded ones), q = round to nearest
 * (ties to even), clamped to [0, 2^bits − 1]. A constant group (max == min)
 * gets scale 0, q = 0 and bias = the value (rounded to bf16): no division by
 * zero, and dequantization gives the value back up to bf16 rounding.
 *
 * Error bound ('minmax'), per element, with s = (max−min)/n before rounding,
 * s', b' the stored bf16 values and n = 2^bits − 1:
 *   |w − deq(q(w))| ≤ s'/2 + |b − b'| + n·|s − s'|   (quantBound)
 * (the last two terms: a rounded bias or scale can move an end of the group
 * outside the grid, where q clamps), plus the f32 rounding of q·s' + b'.
 */
import { bf16BitsToF32, f32ToBf16Bits } from '../util/bf16.js';

export type QuantBits = 4 | 8;
export type QuantMode = 'minmax' | 'mlx';

export interface QuantizedMatrix {
  bits: QuantBits;
  groupSize: number;
  rows: number;
  cols: number;
  /** Packed values, [rows, cols·bits/32]. */
  w: Uint32Array;
  /** bf16 bits, [rows, cols/groupSize]. */
  scales: Uint16Array;
  /** bf16 bits, [rows, cols/groupSize]. */
  biases: Uint16Array;
}

/** Values per uint32 word. */
export function perWord(bits: QuantBits): number {
  return 32 / bits;
}

/** null when cols can be quantized with these bits and group size, else why not. */
export function checkQuantShape(cols: number, bits: number, groupSize: number): string | null {
  if (bits !== 4 && bits !== 8) return `bits = ${bits}: only 4 and 8 are supported`;
  if (!Number.isInteger(groupSize) || groupSize <= 0) return `group_size = ${groupSize} must be a positive integer`;
  if (groupSize % (32 / bits) !== 0) return `group_size = ${groupSize} must be a multiple of ${32 / bits} (values per uint32 at ${bits} bits)`;
  if (!Number.isInteger(cols) || cols <= 0) return `in_dim = ${cols} must be a positive integer`;
  if (cols % groupSize !== 0) return `in_dim = ${cols} must be a multiple of group_size = ${groupSize}`;
  return null;
}

/** Scale and bias of one group by the chosen mode, before bf16 rounding. */
export function groupParams(lo: number, hi: number, n: number, mode: QuantMode): [scale: number, bias: number] {
  if (mode === 'minmax') return [hi === lo ? 0 : (hi - lo) / n, lo];
  // MLX: w_max starts at 0 (so an all-negative group's range reaches 0), w_min at +max.
  const wMax = Math.max(hi, 0);
  const wMin = lo;
  // a constant group of a value ≥ 0 (MLX floors the scale at ±1e-7 there; 0 dequantizes the same)
  if (wMax === wMin) return [0, wMin];
  let scale = Math.max(Math.fround((wMax - wMin) / n), 1e-7);
  const side = Math.abs(wMin) > Math.abs(wMax);
  scale = side ? scale : -scale;
  const edge = side ? wMin : wMax;
  const q0 = Math.round(Math.fround(edge / scale));
  if (q0 === 0) return [scale, 0];
  return [Math.fround(edge / q0), edge];
}

/**
 * Quantize a row-major f32 matrix [rows, cols]. Optionally writes into
 * preallocated arrays at a row offset (`into`, `rowOffset`), so that stacked
 * experts can be filled one by one.
 */
export function quantize(
  w: Float32Array,
  rows: number,
  cols: number,
  bits: QuantBits,
  groupSize: number,
  opts: { mode?: QuantMode; into?: QuantizedMatrix; rowOffset?: number } = {},
): QuantizedMatrix {
  const bad = checkQuantShape(cols, bits, groupSize);
  if (bad !== null) throw new Error(bad);
  if (w.length < rows * cols) throw new Error(`weights hold ${w.length} values, expected ${rows}·${cols}`);
  const mode = opts.mode ?? 'minmax';
  const pw = perWord(bits);
  const wpr = cols / pw;
  const gpr = cols / groupSize;
  const n = (1 << bits) - 1;
  const r0 = opts.rowOffset ?? 0;
  const out: QuantizedMatrix = opts.into ?? {
    bits,
    groupSize,
    rows,
    cols,
    w: new Uint32Array(rows * wpr),
    scales: new Uint16Array(rows * gpr),
    biases: new Uint16Array(rows * gpr),
  };
  if (out.bits !== bits || out.groupSize !== groupSize || out.cols !== cols || out.rows < r0 + rows) {
    throw new Error('quantize: the target matrix does not match');
  }
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < gpr; g++) {
      const base = r * cols + g * groupSize;
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < groupSize; i++) {
        const v = w[base + i] as number;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const [s, b] = groupParams(lo, hi, n, mode);
      const sBits = f32ToBf16Bits(s);
      const bBits = f32ToBf16Bits(b);
      const gi = (r0 + r) * gpr + g;
      out.scales[gi] = sBits;
      out.biases[gi] = bBits;
      const sq = bf16BitsToF32(sBits);
      const bq = bf16BitsToF32(bBits);
      const inv = sq === 0 ? 0 : 1 / sq;
      const w0 = (r0 + r) * wpr + (g * groupSize) / pw;
      for (let k = 0; k < groupSize / pw; k++) {
        let word = 0;
        for (let j = 0; j < pw; j++) {
          const v = ((w[base + k * pw + j] as number) - bq) * inv;
          let q = Math.round(v);
          if (q - v === 0.5 && (q & 1) !== 0) q -= 1; // ties to even
          if (!(q >= 0)) q = 0; // also NaN
          else if (q > n) q = n;
          word |= q << (bits * j);
        }
        out.w[w0 + k] = word >>> 0;
      }
    }
  }
  return out;
}

/** q of element (row, col): the bits-wide field `col % perWord` of its word, lowest bits first. */
export function quantValue(m: QuantizedMatrix, row: number, col: number): number {
  const pw = perWord(m.bits);
  const word = m.w[row * (m.cols / pw) + Math.floor(col / pw)] as number;
  return (word >>> (m.bits * (col % pw))) & ((1 << m.bits) - 1);
}

/** Stored scale and bias of the group holding (row, col), as numbers. */
export function groupScaleBias(m: QuantizedMatrix, row: number, col: number): [scale: number, bias: number] {
  const gi = row * (m.cols / m.groupSize) + Math.floor(col / m.groupSize);
  return [bf16BitsToF32(m.scales[gi] as number), bf16BitsToF32(m.biases[gi] as number)];
}

/**
 * Dequantize to f32: w = q·scale + bias with the bf16 scale and bias, rounded
 * once to f32 (q·scale is exact in f32: at most 8 + 8 significant bits), which
 * is what a kernel computing `q * s + b` or `fma(q, s, b)` in float gets.
 */
export function dequantize(m: QuantizedMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  const pw = perWord(m.bits);
  const mask = (1 << m.bits) - 1;
  const wpr = m.cols / pw;
  const gpr = m.cols / m.groupSize;
  for (let r = 0; r < m.rows; r++) {
    for (let g = 0; g < gpr; g++) {
      const s = bf16BitsToF32(m.scales[r * gpr + g] as number);
      const b = bf16BitsToF32(m.biases[r * gpr + g] as number);
      for (let c = g * m.groupSize; c < (g + 1) * m.groupSize; c++) {
        const word = m.w[r * wpr + Math.floor(c / pw)] as number;
        out[r * m.cols + c] = ((word >>> (m.bits * (c % pw))) & mask) * s + b;
      }
    }
  }
  return out;
}

/**
 * Error bound of every element of one group with min `lo` and max `hi`:
 * 'minmax': s'/2 + |b − b'| + n·|s − s'| (see the module comment);
 * 'mlx': |s'| + |b − b'| + n·|s − s'| (snapping the end of larger magnitude
 * onto the grid can leave the other end up to one step outside it).
 * s, b: the group's scale and bias before rounding; s', b': as stored (bf16).
 */
export function quantBound(lo: number, hi: number, bits: QuantBits, mode: QuantMode = 'minmax'): number {
  const n = (1 << bits) - 1;
  const [s, b] = groupParams(lo, hi, n, mode);
  const sq = bf16BitsToF32(f32ToBf16Bits(s));
  const bq = bf16BitsToF32(f32ToBf16Bits(b));
  return (mode === 'mlx' ? Math.abs(sq) : Math.abs(sq) / 2) + Math.abs(b - bq) + n * Math.abs(s - sq);
}
