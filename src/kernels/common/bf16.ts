/** Whole-tensor conversions between f32 values and bf16 bit patterns. */
import { bf16BitsToF32, f32ToBf16Bits } from '../../util/bf16.js';

export function toBf16Bits(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToBf16Bits(a[i] as number);
  return out;
}

export function fromBf16Bits(a: Uint16Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = bf16BitsToF32(a[i] as number);
  return out;
}
