/** Builders for the buffer declarations of a kernel's signature (BufferDecl). */
import type { FieldType } from '../pack.js';
import type { BufferDecl, Params } from '../spec.js';
import { param } from './params.js';

type Len = (p: Params) => number;
type Access = 'read' | 'write' | 'readwrite';

const array = (mslType: string, dtype: 'f32' | 'u32' | 'bf16', access: Access) => (index: number, name: string, length: Len): BufferDecl => ({
  index,
  name,
  kind: 'array',
  mslType,
  dtype,
  access,
  length,
});

export const f32In = array('float', 'f32', 'read');
export const f32Out = array('float', 'f32', 'write');
export const f32InOut = array('float', 'f32', 'readwrite');
export const u32In = array('uint', 'u32', 'read');
export const u32Out = array('uint', 'u32', 'write');

/** An f32 or bf16 (bfloat) array, for kernels with both variants. */
export function floatArray(bf16: boolean, access: Access, index: number, name: string, length: Len): BufferDecl {
  return bf16 ? array('bfloat', 'bf16', access)(index, name, length) : array('float', 'f32', access)(index, name, length);
}

/** A `constant uint&` scalar; `value` defaults to the param of the same name. */
export function uintArg(index: number, name: string, value: Len = param(name)): BufferDecl {
  return { index, name, kind: 'scalar', mslType: 'uint', value };
}

/** A param struct whose fields are uint params of the same name unless given as [name, value] or [name, value, type]. */
export function paramStruct(index: number, mslType: string, fields: (string | [string, Len] | [string, Len, FieldType])[], name = 'params'): BufferDecl {
  return {
    index,
    name,
    kind: 'struct',
    mslType,
    fields: fields.map((f) => (typeof f === 'string' ? { name: f, type: 'uint', value: param(f) } : { name: f[0], type: f[2] ?? 'uint', value: f[1] })),
  };
}
