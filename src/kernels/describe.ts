/**
 * A spec's interface in data and in words (`moe kernels NAME`, the hint of a
 * kernel whose outputs were never written): every buffer with its element
 * count, struct fields with their C offsets, threadgroup memory, and the
 * launch. Launches are functions in the specs, so they are shown as they
 * are: evaluated at the defaults and at a second shape, with the params each
 * part of the geometry follows found by changing one param at a time, and
 * the spec's own formula where it states one (`launchText`).
 */
import type { NativeLaunch } from '../backend/addon-types.js';
import { structLayout } from './pack.js';
import { shapeLabel, type KernelSpec, type Params } from './spec.js';

export interface BufferListing {
  index: number;
  name: string;
  kind: 'array' | 'scalar' | 'struct';
  /** MSL type: element type of an array, the scalar's or the struct's type. */
  type: string;
  access?: 'read' | 'write' | 'readwrite';
  dtype?: string;
  /** Arrays: elements and bytes at the default params. */
  elements?: number;
  bytes?: number;
  /** Scalars: the value at the default params. */
  value?: number;
  /** Structs: each field with its C layout and its value at the default params. */
  fields?: { name: string; type: string; offset: number; size: number; value: number }[];
}

export interface LaunchAt {
  /** Where the params come from: 'defaults', 'bench' or a case's origin. */
  label: string;
  shape: string;
  mode: NativeLaunch['mode'];
  grid: number[];
  threadgroup: number[];
  threadgroupMemory: number[];
}

export interface LaunchDescription {
  mode: NativeLaunch['mode'];
  /** Metal's call for the mode, and what `grid` counts. */
  dispatch: string;
  /** The spec's own formula, when it states one. */
  formula: string | null;
  at: LaunchAt[];
  /** The params each part of the geometry changes with (one param changed at a time from the defaults). */
  dependsOn: { grid: string[]; threadgroup: string[]; threadgroupMemory: string[] };
}

const BYTES: Record<string, number> = { f32: 4, u32: 4, i32: 4, u16: 2, bf16: 2, u8: 1 };

export function dispatchName(mode: NativeLaunch['mode']): string {
  return mode === 'threads' ? 'dispatchThreads (grid counts threads)' : 'dispatchThreadgroups (grid counts threadgroups)';
}

export function describeBuffers(spec: KernelSpec, p: Params = spec.defaults): BufferListing[] {
  return spec.buffers.map((b): BufferListing => {
    if (b.kind === 'array') {
      const elements = b.length(p);
      return { index: b.index, name: b.name, kind: 'array', type: b.mslType, access: b.access, dtype: b.dtype, elements, bytes: elements * (BYTES[b.dtype] ?? 4) };
    }
    if (b.kind === 'scalar') return { index: b.index, name: b.name, kind: 'scalar', type: b.mslType, value: b.value(p) };
    const layout = structLayout(b.fields.map((f) => f.type));
    return {
      index: b.index,
      name: b.name,
      kind: 'struct',
      type: b.mslType,
      bytes: layout.size,
      fields: b.fields.map((f, i) => ({ name: f.name, type: f.type, offset: layout.fields[i]?.offset ?? 0, size: layout.fields[i]?.size ?? 0, value: f.value(p) })),
    };
  });
}

function launchAt(spec: KernelSpec, label: string, p: Params): LaunchAt {
  const l = spec.launch(p);
  return { label, shape: shapeLabel(spec, p), mode: l.mode, grid: [...l.grid], threadgroup: [...l.threadgroup], threadgroupMemory: [...l.threadgroupMemory] };
}

const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** The defaults with one param changed (doubled, or moved by one within its bounds); null when no valid change exists. */
function nudged(spec: KernelSpec, name: string): Params | null {
  const d = spec.params.find((x) => x.name === name);
  const v = spec.defaults[name] as number;
  const tries = d?.kind === 'float' ? [v === 0 ? 1 : v * 2, v / 2] : [v * 2, v + 1, v - 1];
  for (const t of tries) {
    if (t === v || (d?.min !== undefined && t < d.min) || (d?.max !== undefined && t > d.max)) continue;
    const p = { ...spec.defaults, [name]: t };
    try {
      if (spec.validate(p) === null) return p;
    } catch {
      // a validate that throws on this shape: try the next change
    }
  }
  return null;
}

/** The launch of a spec, as far as it can be told without reading its code. */
export function describeLaunch(spec: KernelSpec): LaunchDescription {
  const base = launchAt(spec, 'defaults', { ...spec.defaults });
  const at = [base];
  const second: [string, Params][] = [];
  if (spec.bench) second.push(['bench', { ...spec.defaults, ...spec.bench }]);
  for (const c of spec.cases()) second.push([c.origin, { ...spec.defaults, ...c.params }]);
  for (const [label, p] of second) {
    if (spec.validate(p) !== null) continue;
    const l = launchAt(spec, label, p);
    if (l.shape === base.shape) continue;
    at.push(l);
    break;
  }
  const dependsOn: LaunchDescription['dependsOn'] = { grid: [], threadgroup: [], threadgroupMemory: [] };
  for (const d of spec.params) {
    const p = nudged(spec, d.name);
    if (!p) continue;
    const l = spec.launch(p);
    if (!same(l.grid, base.grid)) dependsOn.grid.push(d.name);
    if (!same(l.threadgroup, base.threadgroup)) dependsOn.threadgroup.push(d.name);
    if (!same(l.threadgroupMemory, base.threadgroupMemory)) dependsOn.threadgroupMemory.push(d.name);
  }
  return { mode: base.mode, dispatch: dispatchName(base.mode), formula: spec.launchText ?? null, at, dependsOn };
}

const dims = (d: number[]): string => `(${d.join(', ')})`;

/** How a part of the launch follows the params, in words. */
function follows(names: string[]): string {
  return names.length === 0 ? 'fixed' : `changes with ${names.join(', ')}`;
}

/** The launch in lines of text. */
export function launchLines(l: LaunchDescription): string[] {
  const lines = [`mode: ${l.mode} — ${l.dispatch}`];
  if (l.formula) lines.push(`formula: ${l.formula}`);
  for (const a of l.at) {
    const mem = a.threadgroupMemory.length > 0 ? `, threadgroup memory ${a.threadgroupMemory.map((b) => `${b} B`).join(', ')}` : '';
    lines.push(`at ${a.label} (${a.shape}): grid ${dims(a.grid)} × threadgroup ${dims(a.threadgroup)}${mem}`);
  }
  lines.push(
    `one param changed at a time from the defaults: grid ${follows(l.dependsOn.grid)}; threadgroup ${follows(l.dependsOn.threadgroup)}; threadgroup memory ${follows(l.dependsOn.threadgroupMemory)}`,
  );
  return lines;
}

/**
 * The hint for a kernel that left outputs unwritten: its launch (or
 * binding) may differ from the spec's; the spec's geometry at the failing
 * shape, and the manifest fields that change it.
 */
export function unwrittenHint(spec: KernelSpec, p: Params, specFile?: string): string {
  const l = spec.launch(p);
  const mem = l.threadgroupMemory.length > 0 ? ` with threadgroup memory ${l.threadgroupMemory.map((b) => `${b} B`).join(', ')}` : '';
  return (
    `outputs never written: the kernel may be launched differently from the spec. The spec launches ${spec.entry} with ` +
    `${l.mode === 'threads' ? 'dispatchThreads' : 'dispatchThreadgroups'}: grid ${dims(l.grid)} × threadgroup ${dims(l.threadgroup)}${mem} at ${shapeLabel(spec, p)}` +
    ` (all shapes: moe kernels ${spec.name}${specFile ? ` --spec ${specFile}` : ''}). If your kernel is launched otherwise, say how in a manifest (--manifest FILE): launch.mode, launch.grid, launch.threadgroup`
  );
}
