/**
 * Binding of a spec's buffers to a kernel: the signature check (the spec's
 * buffers against the parsed signature of the shader, before anything runs)
 * and building the byte views handed to the backend, for a verified case
 * (fresh copies, canary-filled outputs) or a stage of a larger computation
 * (the caller's tensors, written in place).
 */
import { UsageError } from '../errors.js';
import type { MslKernel, MslParam, MslStruct } from '../msl/index.js';
import { packStruct, type FieldType } from '../kernels/pack.js';
import { arrayCompat, layoutText, shaderStructText, structText, typeClass } from './layout.js';
import type { BufferDecl, DType, KernelSpec, Params, Tensors, TypedArray } from '../kernels/spec.js';
import { fillCanary } from '../verify/compare.js';

function compatible(specType: string, userType: string): boolean {
  const c = arrayCompat(specType, userType);
  return c.ok && c.lanes === 1;
}

function describe(p: MslParam): string {
  const as = p.addressSpace ? `${p.addressSpace} ` : '';
  return `${as}${p.cppType}`.replace(/\s+/g, ' ').trim();
}

function fieldClass(t: FieldType): string {
  return typeClass(t === 'bool' ? 'bool' : t);
}

/** The hint of a signature whose layout differs from the spec's in a way a manifest can describe. */
const MANIFEST_HINT = 'if that is how your engine binds it, describe it in a manifest (`moe init FILE.metal` writes one; docs/manifest.md)';

/** Throws UsageError naming the buffer index and both types on the first mismatch. */
export function checkBindings(spec: KernelSpec, kernel: MslKernel, structs: MslStruct[], file: string): void {
  const where = `${file}: kernel '${kernel.name}'`;
  const byIndex = new Map<number, MslParam>();
  const tgByIndex = new Map<number, MslParam>();
  for (const p of kernel.params) {
    if (p.attr.kind === 'buffer') byIndex.set(p.attr.index, p);
    if (p.attr.kind === 'threadgroup') tgByIndex.set(p.attr.index, p);
  }
  const declared = new Set(spec.buffers.map((b) => b.index));
  for (const [idx, p] of byIndex) {
    if (!declared.has(idx)) {
      throw new UsageError(
        `${where}: buffer(${idx}) '${p.name}' (${describe(p)}) is not part of the ${spec.entry} interface, which binds buffers ${[...declared].sort((a, b) => a - b).join(', ')}`,
      );
    }
  }
  for (const b of spec.buffers) {
    const p = byIndex.get(b.index);
    const expected = expectedText(b);
    if (!p) throw new UsageError(`${where}: buffer(${b.index}) missing: the spec binds ${b.name} as ${expected}`);
    const mismatch = (why: string): never => {
      throw new UsageError(
        `${where}: buffer(${b.index}) type mismatch: the spec binds ${b.name} as ${expected}, the shader declares '${p.name}' as ${describe(p)} (${why})`,
      );
    };
    if (b.kind === 'array') {
      if (p.kind !== 'pointer') mismatch('expected a pointer');
      if (p.addressSpace !== 'device' && p.addressSpace !== 'constant') mismatch('expected device memory');
      if (!compatible(b.mslType, p.baseType)) {
        const c = arrayCompat(b.mslType, p.baseType);
        if (c.ok) mismatch(`layout: the spec's elements are ${layoutText(b.mslType)} each, the shader reads ${layoutText(p.baseType)} per element; ${MANIFEST_HINT}, which checks the length is a multiple of ${c.lanes}`);
        mismatch(`layout: the spec's elements are ${layoutText(b.mslType)} each, the shader's ${layoutText(p.baseType)}`);
      }
      if (b.access !== 'read' && (p.isConst || p.addressSpace === 'constant')) mismatch('the kernel must write it but it is const');
    } else if (b.kind === 'scalar') {
      if (p.kind === 'value') mismatch('buffers are passed by reference or pointer');
      if (p.kind === 'reference' && structs.some((st) => st.name === p.baseType)) {
        const st = structs.find((x) => x.name === p.baseType) as MslStruct;
        mismatch(`layout: the spec passes one ${layoutText(b.mslType)} scalar, the shader a struct ${shaderStructText(st)}; ${MANIFEST_HINT} with "${b.index}": {"struct": {...}} giving each field as an expression of the params`);
      }
      if (!compatible(b.mslType, p.baseType)) mismatch(`layout: the spec passes ${layoutText(b.mslType)}, the shader reads ${layoutText(p.baseType)}`);
    } else {
      if (p.kind === 'value') mismatch('buffers are passed by reference or pointer');
      const st = structs.find((s) => s.name === p.baseType);
      if (!st) {
        const spec = structText(b.mslType, b.fields.map((f) => ({ type: f.type, name: f.name })));
        if (typeClass(p.baseType) !== p.baseType || /^(float|half|int|uint)$/.test(p.baseType)) {
          mismatch(`layout: the spec passes the param struct ${spec} here, the shader one ${layoutText(p.baseType)} scalar; if the kernel takes the struct's fields as separate scalars, ${MANIFEST_HINT} with e.g. "${b.index}": {"value": "${b.name}.${b.fields[0]?.name ?? 'field'}"}`);
        }
        mismatch(`struct '${p.baseType}' is not declared in the shader (the spec passes ${spec})`);
      }
      else {
        const mine = b.fields.map((f) => fieldClass(f.type));
        const theirs = st.fields.flatMap((f) => Array<string>(f.arrayLength ?? 1).fill(typeClass(f.type)));
        if (mine.length !== theirs.length || mine.some((t, i) => t !== theirs[i])) {
          mismatch(`fields {${st.fields.map((f) => `${f.type} ${f.name}`).join(', ')}} differ from {${b.fields.map((f) => `${f.type} ${f.name}`).join(', ')}}`);
        }
      }
    }
  }
  const tgDeclared = new Set(spec.threadgroup.map((t) => t.index));
  for (const [idx, p] of tgByIndex) {
    if (!tgDeclared.has(idx)) {
      throw new UsageError(`${where}: threadgroup(${idx}) '${p.name}' is not part of the ${spec.entry} interface (it provides no threadgroup memory at index ${idx})`);
    }
  }
}

function expectedText(b: BufferDecl): string {
  switch (b.kind) {
    case 'array':
      return `device ${b.access === 'read' ? 'const ' : ''}${b.mslType}*`;
    case 'scalar':
      return `constant ${b.mslType}&`;
    case 'struct':
      return `constant ${b.mslType}& {${b.fields.map((f) => `${f.type} ${f.name}`).join(', ')}}`;
  }
}

export function allocate(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(n);
    case 'u32':
      return new Uint32Array(n);
    case 'i32':
      return new Int32Array(n);
    case 'u16':
    case 'bf16':
      return new Uint16Array(n);
    case 'u8':
      return new Uint8Array(n);
  }
}

export function bytesOf(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export interface Bound {
  buffers: (Uint8Array | null)[];
  /** Output tensors the kernel writes (views of the bound memory). */
  outputs: Tensors;
  /** The spec's buffer names by [[buffer(n)]] index (for runtime error messages). */
  names: (string | null)[];
}

type ArrayDecl = Extract<BufferDecl, { kind: 'array' }>;

/**
 * The buffers of one dispatch in [[buffer(n)]] order: param structs packed,
 * scalars one per index, arrays as `array` gives them.
 */
function bindBuffers(spec: KernelSpec, p: Params, array: (b: ArrayDecl, n: number) => TypedArray): Bound {
  const maxIndex = Math.max(...spec.buffers.map((b) => b.index));
  const buffers: (Uint8Array | null)[] = new Array<Uint8Array | null>(maxIndex + 1).fill(null);
  const names: (string | null)[] = new Array<string | null>(maxIndex + 1).fill(null);
  const outputs: Tensors = {};
  for (const b of spec.buffers) {
    names[b.index] = b.name;
    if (b.kind === 'struct') {
      buffers[b.index] = packStruct(b.fields.map((f) => [f.type, f.value(p)]));
    } else if (b.kind === 'scalar') {
      const v = b.value(p);
      const a = b.mslType === 'float' ? new Float32Array([v]) : b.mslType === 'int' ? new Int32Array([v]) : new Uint32Array([v]);
      buffers[b.index] = bytesOf(a);
    } else {
      const n = b.length(p);
      const a = array(b, n);
      if (b.access !== 'read') outputs[b.name] = a.length === n ? a : a.subarray(0, n);
      buffers[b.index] = bytesOf(a);
    }
  }
  return { buffers, outputs, names };
}

/**
 * Build the buffers for one case: params packed, inputs copied (so a kernel
 * writing them cannot change the caller's tensors), outputs filled with the
 * canary (readwrite outputs start from their input values).
 */
export function bindCase(spec: KernelSpec, p: Params, inputs: Tensors): Bound {
  return bindBuffers(spec, p, (b, n) => {
    const a = allocate(b.dtype, Math.max(n, 1));
    if (b.access === 'write') {
      fillCanary(a, b.dtype === 'f32' ? 'float' : 'int');
    } else {
      const src = inputs[b.name];
      if (!src) throw new Error(`spec ${spec.name}: input '${b.name}' was not generated`);
      if (src.length !== n) throw new Error(`spec ${spec.name}: input '${b.name}' has ${src.length} elements, expected ${n}`);
      a.set(src as unknown as ArrayLike<number>);
    }
    return a;
  });
}

/**
 * Bind the caller's tensors by the spec's buffer names, without copies: the
 * kernel reads and writes them in place (a stage of a larger computation).
 */
export function bindTensors(spec: KernelSpec, p: Params, tensors: Record<string, TypedArray>): Bound {
  return bindBuffers(spec, p, (b, n) => {
    const t = tensors[b.name];
    if (!t) throw new Error(`stage ${spec.entry}: no tensor bound to '${b.name}'`);
    if (t.length < n) throw new Error(`stage ${spec.entry}: tensor '${b.name}' has ${t.length} elements, needs ${n}`);
    return t;
  });
}
