/**
 * What a kernel uses, for `moe check`: barriers, SIMD/quad-group functions,
 * atomics, the types and builtins it needs, and its threadgroup memory
 * (declared arrays with their sizes, and [[threadgroup(n)]] parameters).
 */
import { analysisOf } from './parse.js';
import { VECTOR_TYPE } from './features.js';
import type { ParsedMsl } from './types.js';

export interface ThreadgroupArray {
  name: string;
  type: string;
  dims: (number | null)[];
  /** Bytes, where the element type and every dimension are known. */
  bytes: number | null;
  line: number;
}

export interface KernelFacts {
  name: string;
  line: number;
  /** Every feature below, and types and builtins, as one list (sorted). */
  features: string[];
  /** threadgroup_barrier, simdgroup_barrier where used (directly or through a helper of the file). */
  barriers: string[];
  /** SIMD-group and quad-group functions used. */
  simdgroup: string[];
  threadgroupMemory: {
    static: ThreadgroupArray[];
    /** Total bytes of the declared arrays; null when one of them is not known. */
    staticBytes: number | null;
    /** [[threadgroup(n)]] parameters, sized by the launch. */
    dynamic: { index: number; name: string }[];
  };
}

const SCALAR_BYTES: Record<string, number> = {
  float: 4, half: 2, bfloat: 2, int: 4, uint: 4, short: 2, ushort: 2, char: 1, uchar: 1, bool: 1, long: 8, ulong: 8,
  int32_t: 4, uint32_t: 4, int16_t: 2, uint16_t: 2, int8_t: 1, uint8_t: 1, int64_t: 8, uint64_t: 8,
};

/** Bytes of a scalar or vector type as MSL lays it out (3-vectors take 4 elements unless packed), else null. */
export function typeBytes(type: string): number | null {
  const t = type.replace(/\b(const|volatile|metal::)\b/g, '').replace(/metal::/g, '').trim();
  if (SCALAR_BYTES[t] !== undefined) return SCALAR_BYTES[t];
  const m = /^(packed_)?([a-z]+)([234])$/.exec(t);
  if (!m || SCALAR_BYTES[m[2] as string] === undefined) return null;
  const n = Number(m[3]);
  return (SCALAR_BYTES[m[2] as string] as number) * (n === 3 && !m[1] ? 4 : n);
}

export function kernelFacts(parsed: ParsedMsl): KernelFacts[] {
  const a = analysisOf(parsed);
  return a.kernels.map((k, i) => {
    const ids = a.idents[i] ?? new Set<string>();
    const barriers = [...ids].filter((x) => x === 'threadgroup_barrier' || x === 'simdgroup_barrier').sort();
    const simdgroup = [...ids].filter((x) => /^(simd|quad)_\w+$/.test(x)).sort();
    const atomics = [...ids].filter((x) => /^atomic_\w+$/.test(x)).sort();
    const types = [...ids].filter((x) => VECTOR_TYPE.test(x) || x === 'half' || x === 'bfloat' || /^atomic_(u?int|float|bool)$/.test(x)).sort();
    const math = ['fast', 'precise', 'as_type'].filter((x) => ids.has(x));
    const builtins = k.params.flatMap((p) => (p.attr.kind === 'builtin' ? [`[[${p.attr.name}]]`] : []));
    const stat = (a.threadgroupDecls[i] ?? []).map((d) => {
      const el = typeBytes(d.type);
      const bytes = el !== null && d.dims.every((x) => x !== null) ? d.dims.reduce<number>((p, x) => p * (x as number), el) : null;
      return { ...d, bytes };
    });
    const dynamic = k.params.flatMap((p) => (p.attr.kind === 'threadgroup' ? [{ index: p.attr.index, name: p.name }] : []));
    const features = [
      ...barriers,
      ...simdgroup,
      ...atomics.filter((x) => !types.includes(x)),
      ...types,
      ...math.map((x) => (x === 'as_type' ? 'as_type' : `${x}:: math`)),
      ...(k.templateArgs !== null ? [`template instance <${k.templateArgs}>`] : []),
      ...(stat.length ? ['threadgroup arrays'] : []),
      ...(dynamic.length ? ['[[threadgroup(n)]] memory'] : []),
      ...builtins,
    ];
    return {
      name: k.name,
      line: k.line,
      features: [...new Set(features)],
      barriers,
      simdgroup,
      threadgroupMemory: {
        static: stat,
        staticBytes: stat.every((x) => x.bytes !== null) ? stat.reduce((p, x) => p + (x.bytes as number), 0) : null,
        dynamic,
      },
    };
  });
}
