/** bfloat16 ⇄ float32, rounding to nearest even exactly as the kernels store. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0] as number;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) {
    return ((b >>> 16) | 0x0040) & 0xffff; // NaN stays a (quiet) NaN
  }
  const lsb = (b >>> 16) & 1;
  return ((b + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0] as number;
}

/** Round a number to the nearest bfloat16 value (as a number). */
export function roundBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}

/** Round to float32 (Math.fround) — named for symmetry. */
export const roundF32 = Math.fround;
