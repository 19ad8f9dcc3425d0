/**
 * Small generic pieces of the specs around the experts (norm, RoPE, residual,
 * bf16 mat-vec, combine): launches, case tables, bf16 buffers, float checks
 * and a comparison rule built from per-element error bounds.
 */
import type { NativeLaunch } from '../../backend/addon-types.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../../util/bf16.js';
import type { FieldType } from '../pack.js';
import type { BufferDecl, DType, FloatRule, InputSet, KernelCase, Params } from '../spec.js';

/** float32 unit roundoff. */
export const F32_U = 2 ** -24;

/** dispatchThreads of (x, y, z) threads in threadgroups of min(256, x). */
export function threads256(x: number, y = 1, z = 1): NativeLaunch {
  return { mode: 'threads', grid: [x, y, z], threadgroup: [Math.min(256, x), 1, 1], threadgroupMemory: [] };
}

/** One case per (shape, input set). */
export function casesOf(shapes: readonly (readonly [origin: string, params: Params])[], sets: readonly { name: string }[]): KernelCase[] {
  return shapes.flatMap(([origin, params]) => sets.map((s) => ({ params, inputSet: s.name, origin })));
}

export function unknownInputSet(set: string): never {
  throw new Error(`unknown input set '${set}'`);
}

/** null when `v` survives a float32 struct field unchanged in kind (finite), else why not. */
export function finiteF32(name: string, v: number): string | null {
  return Number.isFinite(Math.fround(v)) ? null : `${name} = ${v} is not a finite float32`;
}

/** bf16 bits (round to nearest even) of each value. */
export function bf16Bits(values: ArrayLike<number>): Uint16Array {
  return Uint16Array.from({ length: values.length }, (_, i) => f32ToBf16Bits(values[i] as number));
}

/** The float values of bf16 bits. */
export function widenBf16(bits: Uint16Array): Float64Array {
  return Float64Array.from(bits, (b) => bf16BitsToF32(b));
}

/**
 * A float rule from a per-element error bound: |got_i − v_i| ≤ bound_i, met
 * by atol = max bound (rtol 0). The whole-tensor floors (cosine,
 * rel_max_abs) keep the given values unless the bound itself allows less
 * (outputs that cancel to the rounding noise): then they follow from it —
 * rel_max_abs ≤ max bound / max|v|, cosine ≥ √(1 − Σ bound² / Σ v²).
 */
export function boundRule(values: ArrayLike<number>, bounds: ArrayLike<number>, minCosine: number, maxRelMaxAbs: number, reason: string): FloatRule {
  let maxV = 0;
  let maxB = 0;
  let sv = 0;
  let sb = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i] as number);
    const b = bounds[i] as number;
    maxV = Math.max(maxV, v);
    maxB = Math.max(maxB, b);
    sv += v * v;
    sb += b * b;
  }
  return {
    kind: 'float',
    atol: maxB,
    rtol: 0,
    minCosine: Math.min(minCosine, sb < sv ? Math.sqrt(1 - sb / sv) : -1),
    maxRelMaxAbs: Math.max(maxRelMaxAbs, maxV > 0 ? maxB / maxV : Infinity),
    reason,
  };
}

/** Input sets from (name, description) pairs. */
export function inputSets(...sets: [name: string, description: string][]): InputSet[] {
  return sets.map(([name, description]) => ({ name, description }));
}

const DTYPES = { float: 'f32', bfloat: 'bf16', uint: 'u32' } as const satisfies Record<string, DType>;

/** A device array at [[buffer(index)]]; the dtype follows the MSL element type. */
export function arrayBuf(index: number, name: string, mslType: keyof typeof DTYPES, access: 'read' | 'write', length: (p: Params) => number): BufferDecl {
  return { index, name, kind: 'array', mslType, dtype: DTYPES[mslType], access, length };
}

/** A `constant T& params` struct at [[buffer(index)]], fields in declaration order. */
export function structBuf(index: number, mslType: string, fields: [name: string, type: FieldType, value: (p: Params) => number][]): BufferDecl {
  return { index, name: 'params', kind: 'struct', mslType, fields: fields.map(([name, type, value]) => ({ name, type, value })) };
}

/** A param value as a number (specs declare every param they read). */
export { num } from './params.js';
