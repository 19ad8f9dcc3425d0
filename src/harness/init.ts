/**
 * `moe init FILE.metal`: a manifest skeleton for every kernel of a shader
 * file. Each kernel gets the catalog spec that fits it best (entry name,
 * signature: input/output arrays and their element types, buffer names), the
 * buffers it could map, and TODO markers where the user must decide (the
 * launch, scalars no name explains). The loader refuses a TODO left in place.
 */
import { basename } from 'node:path';
import type { BufferDecl, KernelSpec } from '../kernels/spec.js';
import type { MslKernel, MslParam, MslStruct, ParsedMsl } from '../msl/index.js';
import { elementLayout, isHalfClass } from './layout.js';
import type { BindingJson, EntryJson, ManifestJson } from './manifest.js';

const COMMON = new Set(['kernel', 'moe', 'f32', 'f16', 'bf16', 'float', 'mul', 'batch', 'fused', 'op', '32', '16', '64']);
/** Spellings engines use for the same buffer. */
const ALIASES: Record<string, string[]> = {
  x: ['src1', 'input', 'in', 'src', 'src0', 'inp', 'act'],
  y: ['dst', 'out', 'output', 'result'],
  out: ['dst', 'output', 'y', 'result'],
  output: ['dst', 'out', 'y', 'result'],
  w: ['src0', 'weight', 'weights', 'wq'],
  weights: ['w', 'wts', 'probs'],
  ids: ['indices', 'idx', 'experts'],
  expert_outputs: ['expert_out', 'experts_out', 'y'],
};

function tokens(name: string): string[] {
  return name.toLowerCase().split(/[^a-z0-9]+|(?<=[a-z])(?=[0-9]{2,})/).filter((t) => t.length >= 2 && !COMMON.has(t));
}

function cls(t: string): string {
  const c = elementLayout(t).scalar;
  return isHalfClass(c) ? 'u16' : c;
}

function specArrays(s: KernelSpec): { inputs: string[]; outputs: string[] } {
  const a = s.buffers.filter((b): b is Extract<BufferDecl, { kind: 'array' }> => b.kind === 'array');
  return { inputs: a.filter((b) => b.access === 'read').map((b) => cls(b.mslType)), outputs: a.filter((b) => b.access !== 'read').map((b) => cls(b.mslType)) };
}

function kernelArrays(k: MslKernel): { inputs: string[]; outputs: string[] } {
  const ptr = k.params.filter((p) => p.attr.kind === 'buffer' && p.kind === 'pointer');
  const ro = (p: MslParam): boolean => p.isConst || p.addressSpace === 'constant';
  return { inputs: ptr.filter(ro).map((p) => cls(p.baseType)), outputs: ptr.filter((p) => !ro(p)).map((p) => cls(p.baseType)) };
}

function overlap(a: string[], b: string[]): number {
  const rest = [...b];
  let n = 0;
  for (const x of a) {
    const i = rest.indexOf(x);
    if (i >= 0) {
      n++;
      rest.splice(i, 1);
    }
  }
  return n;
}

function knownNames(s: KernelSpec): Set<string> {
  const n = new Set<string>();
  for (const b of s.buffers) {
    n.add(b.name);
    for (const a of ALIASES[b.name] ?? []) n.add(a);
    if (b.kind === 'struct') for (const f of b.fields) n.add(f.name);
  }
  for (const p of s.params) n.add(p.name);
  return n;
}

/** How well a spec fits a kernel: name tokens (at least one must match), array counts and element types, buffer names. */
export function fitScore(s: KernelSpec, k: MslKernel): number {
  const byName = nameScore(s, k);
  return byName === 0 ? -Infinity : byName + signatureScore(s, k);
}

/** Tokens of the kernel's name found in the spec's name or entry. */
function nameScore(s: KernelSpec, k: MslKernel): number {
  let score = 0;
  // Quantized mat-vecs go by many names: qmv4 = q4 = 4bit = dequant matvec.
  const hay = `${s.name} ${s.entry}`.toLowerCase().replace(/qmv([0-9])/g, 'qmv$1 q$1 $1bit dequant matvec');
  for (const t of tokens(k.name)) {
    if (hay.includes(t)) score += 5;
    else {
      const digits = /[a-z]+([0-9])$/.exec(t)?.[1];
      if (digits && hay.includes(digits)) score += 1;
    }
  }
  return score;
}

/** Array counts and element types, buffer names, threadgroup memory. */
function signatureScore(s: KernelSpec, k: MslKernel): number {
  let score = 0;
  const a = specArrays(s);
  const b = kernelArrays(k);
  score -= 2 * Math.abs(a.inputs.length - b.inputs.length) + 2 * Math.abs(a.outputs.length - b.outputs.length);
  score += overlap(a.inputs, b.inputs) + overlap(a.outputs, b.outputs);
  score -= Math.max(0, a.inputs.length - overlap(a.inputs, b.inputs)) + Math.max(0, a.outputs.length - overlap(a.outputs, b.outputs));
  const names = knownNames(s);
  for (const p of k.params) if (p.attr.kind === 'buffer' && names.has(p.name)) score += 1;
  const tg = k.params.some((p) => p.attr.kind === 'threadgroup');
  if (s.threadgroup.length > 0 && !tg) score -= 1;
  return score;
}

/** The best-fitting specs of a kernel, best first, with their scores. */
export function rankSpecs(k: MslKernel, specs: KernelSpec[]): { spec: KernelSpec; score: number }[] {
  return specs.map((spec) => ({ spec, score: fitScore(spec, k) })).sort((x, y) => y.score - x.score);
}

/** Whether the kernel's arrays could be the spec's: the same numbers of inputs and outputs, give or take one extra buffer. */
function arraysClose(s: KernelSpec, k: MslKernel): boolean {
  const a = specArrays(s);
  const b = kernelArrays(k);
  return Math.abs(a.inputs.length - b.inputs.length) + Math.abs(a.outputs.length - b.outputs.length) <= 1;
}

/** The lowest score taken as a proposal; below it the entry's spec is a TODO. */
export const MIN_SCORE = 6;

/** An expression of the spec for a value the shader names `name`: a param, a scalar buffer, a struct field; else null. */
function valueFor(name: string, s: KernelSpec): string | null {
  if (s.params.some((q) => q.name === name)) return name;
  if (s.buffers.some((b) => b.kind === 'scalar' && b.name === name)) return name;
  for (const b of s.buffers) if (b.kind === 'struct' && b.fields.some((f) => f.name === name)) return `${b.name}.${name}`;
  return null;
}

function bindingFor(p: MslParam, s: KernelSpec, used: Set<string>, structs: MslStruct[]): BindingJson {
  const arrays = s.buffers.filter((b): b is Extract<BufferDecl, { kind: 'array' }> => b.kind === 'array' && !used.has(b.name));
  if (p.kind === 'pointer') {
    const out = !(p.isConst || p.addressSpace === 'constant');
    const fits = arrays.filter((b) => (b.access !== 'read') === out && cls(b.mslType) === cls(p.baseType));
    const named = fits.find((b) => b.name === p.name || (ALIASES[b.name] ?? []).includes(p.name)) ?? fits[0];
    if (named) {
      used.add(named.name);
      const raw = isHalfClass(elementLayout(named.mslType).scalar) && cls(p.baseType) === 'u16' && elementLayout(p.baseType).scalar === 'u16';
      return raw ? { buffer: named.name, note: `TODO: ${named.mslType} data read as ${p.baseType}: say how the kernel decodes it` } : named.name;
    }
    return { input: p.name, length: 'TODO', fill: 'zeros', note: 'TODO: a buffer the spec does not have: its length and contents' };
  }
  const st = s.buffers.find((b) => b.kind === 'struct' && b.mslType === p.baseType && !used.has(b.name));
  if (st) {
    used.add(st.name);
    return st.name;
  }
  const scalar = s.buffers.find((b) => b.kind === 'scalar' && b.name === p.name && !used.has(b.name));
  if (scalar) {
    used.add(scalar.name);
    return scalar.name;
  }
  const own = structs.find((x) => x.name === p.baseType);
  if (own) {
    const fields = Object.fromEntries(own.fields.map((f) => [f.name, valueFor(f.name, s) ?? 'TODO']));
    return Object.values(fields).includes('TODO')
      ? { struct: fields, note: `TODO: the fields of ${own.name} as expressions of ${s.params.map((q) => q.name).join(', ')}` }
      : { struct: fields };
  }
  const v = valueFor(p.name, s);
  if (v !== null) return { value: v };
  return { value: 'TODO', note: `TODO: '${p.name}' as an expression of ${s.params.map((q) => q.name).join(', ')}` };
}

/** The manifest skeleton of a parsed shader file. */
export function manifestSkeleton(parsed: ParsedMsl, specs: KernelSpec[], shaderRel: string): ManifestJson {
  const kernels: Record<string, EntryJson> = {};
  for (const k of parsed.kernels) {
    const ranked = rankSpecs(k, specs).filter((r) => arraysClose(r.spec, k));
    const best = ranked[0];
    const others = ranked.slice(1, 4).filter((r) => r.score >= MIN_SCORE).map((r) => r.spec.name);
    if (!best || best.score < MIN_SCORE) {
      kernels[k.name] = {
        spec: null,
        note: `TODO: no catalog spec fits clearly${best ? ` (closest: ${ranked.slice(0, 3).map((r) => r.spec.name).join(', ')})` : ''}: name one (moe kernels), or leave null to compile it only`,
      };
      continue;
    }
    const s = best.spec;
    const used = new Set<string>();
    const buffers: Record<string, BindingJson> = {};
    for (const p of [...k.params].sort((x, y) => (x.attr.kind === 'buffer' ? x.attr.index : 0) - (y.attr.kind === 'buffer' ? y.attr.index : 0))) {
      if (p.attr.kind === 'buffer') buffers[String(p.attr.index)] = bindingFor(p, s, used, parsed.structs);
    }
    const omit = s.buffers.filter((b) => b.kind !== 'array' && !used.has(b.name)).map((b) => b.name);
    const usesTg = k.params.some((p) => p.attr.kind === 'builtin' && /threadgroup_position_in_grid|threadgroups_per_grid/.test(p.attr.name));
    const tgMem = k.params.filter((p) => p.attr.kind === 'threadgroup');
    kernels[k.name] = {
      spec: s.name,
      note: `TODO: check: proposed by name and signature${others.length ? ` (also possible: ${others.join(', ')})` : ''}; set the launch as the engine dispatches it`,
      buffers,
      ...(omit.length ? { omit } : {}),
      launch: {
        mode: usesTg ? 'threadgroups' : 'threads',
        grid: ['TODO'],
        threadgroup: ['TODO'],
        ...(tgMem.length ? { threadgroupMemory: Object.fromEntries(tgMem.map((p) => [String(p.attr.kind === 'threadgroup' ? p.attr.index : 0), 'TODO'])) } : {}),
      },
    };
  }
  return { $schema: 'https://github.com/moe-kernels/moe-kernels/docs/manifest.schema.json', description: `binding manifest of ${basename(shaderRel)} (moe init)`, shader: shaderRel, kernels };
}
