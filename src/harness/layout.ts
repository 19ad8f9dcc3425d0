/**
 * Memory layouts of MSL types, for the signature check: which spellings share
 * one storage type (uint, uint32_t), which vector types are whole runs of a
 * scalar (float4 = 4 × f32), and the text that explains a layout in errors.
 */
import type { MslStruct } from '../msl/index.js';

/** MSL spellings that share one storage type. */
const TYPE_CLASS: Record<string, string> = {
  uint: 'u32',
  uint32_t: 'u32',
  'unsigned int': 'u32',
  unsigned: 'u32',
  int: 'i32',
  int32_t: 'i32',
  float: 'f32',
  float32_t: 'f32',
  ushort: 'u16',
  uint16_t: 'u16',
  'unsigned short': 'u16',
  bfloat: 'bf16',
  bfloat16_t: 'bf16',
  half: 'f16',
  uchar: 'u8',
  uint8_t: 'u8',
  char: 'i8',
  int8_t: 'i8',
  bool: 'bool',
  short: 'i16',
  int16_t: 'i16',
};

const CLASS_BYTES: Record<string, number> = { u32: 4, i32: 4, f32: 4, u16: 2, bf16: 2, f16: 2, i16: 2, u8: 1, i8: 1, bool: 1 };

export function typeClass(t: string): string {
  return TYPE_CLASS[t.trim()] ?? t.trim();
}

/** The scalar class and lane count of an element type: float4 → f32 × 4, packed_half2 → f16 × 2, uint → u32 × 1. */
export function elementLayout(t: string): { scalar: string; lanes: number } {
  const m = /^(?:packed_)?(float|half|bfloat|int|uint|short|ushort|char|uchar|bool)([234])$/.exec(t.trim());
  if (m) return { scalar: typeClass(m[1] as string), lanes: Number(m[2]) };
  return { scalar: typeClass(t), lanes: 1 };
}

/** A storage type in words: "f32 (4 bytes)", "4 × f32 (16 bytes)". */
export function layoutText(t: string): string {
  const { scalar, lanes } = elementLayout(t);
  const bytes = CLASS_BYTES[scalar];
  if (bytes === undefined) return `'${t}'`;
  return `${lanes > 1 ? `${lanes} × ` : ''}${scalar} (${lanes * bytes} bytes)`;
}

/** Whether a scalar class is 16-bit floating point data that an engine may take as raw ushort words. */
export function isHalfClass(c: string): boolean {
  return c === 'bf16' || c === 'f16';
}

/**
 * How an array's elements of the spec's type may be read through the shader's
 * element type: same class (lanes 1), a vector of that class (lanes N: the
 * length must be a multiple of N), or 16-bit float data as ushort.
 */
export function arrayCompat(specType: string, userType: string): { ok: true; lanes: number; raw16: boolean } | { ok: false } {
  const a = elementLayout(specType);
  const b = elementLayout(userType);
  if (a.lanes !== 1) return a.scalar === b.scalar && a.lanes === b.lanes ? { ok: true, lanes: 1, raw16: false } : { ok: false };
  if (a.scalar === b.scalar) return { ok: true, lanes: b.lanes, raw16: false };
  if (isHalfClass(a.scalar) && b.scalar === 'u16') return { ok: true, lanes: b.lanes, raw16: true };
  if (a.scalar === 'u16' && isHalfClass(b.scalar)) return { ok: true, lanes: b.lanes, raw16: true };
  return { ok: false };
}

/** A struct's fields in words: "MoeParams {uint n_tokens; uint top_k} (8 bytes)". */
export function structText(name: string, fields: { type: string; name: string }[]): string {
  const bytes = fields.reduce((s, f) => s + (CLASS_BYTES[typeClass(f.type)] ?? 4), 0);
  return `${name} {${fields.map((f) => `${f.type} ${f.name}`).join('; ')}} (${bytes} bytes)`;
}

export function shaderStructText(st: MslStruct): string {
  return structText(
    st.name,
    st.fields.map((f) => ({ type: f.type, name: f.arrayLength !== null ? `${f.name}[${f.arrayLength}]` : f.name })),
  );
}
