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
import type { BufferDecl, DType, KernelSpec, Params, Tensors, TypedArray } from '../kernels/spec.js';
import { fillCanary } from '../verify/compare.js';

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
  bool: 'bool',
  short: 'i16',
  int16_t: 'i16',
};

function typeClass(t: string): string {
  return TYPE_CLASS[t.trim()] ?? t.trim();
}

/** bfloat data may be taken as raw 16-bit words (ushort) by engines that decode it themselves. */
function compatible(specType: string, userType: string): boolean {
  const a = typeClass(specType);
  const b = typeClass(userType);
  if (a === b) return true;
  return (a === 'bf16' && b === 'u16') || (a === 'u16' && b === 'bf16');
}

function describe(p: MslParam): string {
  const as = p.addressSpace ? `${p.addressSpace} ` : '';
  return `${as}${p.cppType}`.replace(/\s+/g, ' ').trim();
}

function fieldClass(t: FieldType): string {
  return typeClass(t === 'bool' ? 'bool' : t);
}

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
      if (!compatible(b.mslType, p.baseType)) mismatch('element types differ');
      if (b.access !== 'read' && (p.isConst || p.addressSpace === 'constant')) mismatch('the kernel must write it but it is const');
    } else if (b.kind === 'scalar') {
      if (p.kind === 'value') mismatch('buffers are passed by reference or pointer');
      if (!compatible(b.mslType, p.baseType)) mismatch('scalar types differ');
    } else {
      if (p.kind === 'value') mismatch('buffers are passed by reference or pointer');
      const st = structs.find((s) => s.name === p.baseType);
      if (!st) mismatch(`struct '${p.baseType}' is not declared in the shader`);
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
