/**
 * Binding manifests (docs/manifest.md, schema docs/manifest.schema.json): how
 * an engine's shader file binds and launches the kernels of catalog specs.
 * Each entry becomes a spec of its own, derived from the catalog's: same
 * params, inputs, reference and comparison rules; the engine's buffer
 * indices, extra scalars, structs and input buffers, and launch geometry.
 * Every mismatch between the manifest, the spec and the parsed signature is
 * a UsageError naming all three.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import type { NativeLaunch } from '../backend/addon-types.js';
import { UsageError } from '../errors.js';
import { findSpec } from '../kernels/index.js';
import type { FieldType } from '../kernels/pack.js';
import type { BufferDecl, KernelSpec, Params, Tensors, ThreadgroupDecl } from '../kernels/spec.js';
import { parseMsl, type MslKernel, type MslParam, type ParsedMsl } from '../msl/index.js';
import { ExprError, parseExpr, type Expr, type Scope } from './expr.js';
import { arrayCompat, elementLayout, layoutText, shaderStructText, typeClass } from './layout.js';
import { MANIFEST_SCHEMA } from './manifest-schema.js';
import { readShader } from './source.js';

type ExprText = string | number;
type Fill = 'zeros' | 'iota' | { constant: number } | { expr: string };
export type BindingJson =
  | string
  | { buffer: string; note?: string }
  | { value: ExprText; type?: 'uint' | 'int' | 'float'; note?: string }
  | { struct: Record<string, ExprText>; note?: string }
  | { input: string; type?: 'uint' | 'int' | 'float'; length: ExprText; fill: Fill; note?: string };

export interface LaunchJson {
  mode: 'threads' | 'threadgroups';
  grid: ExprText[];
  threadgroup: ExprText[];
  threadgroupMemory?: Record<string, ExprText>;
}

export interface EntryJson {
  spec?: string | null;
  note?: string;
  requires?: string[];
  omit?: string[];
  buffers?: Record<string, BindingJson>;
  launch?: LaunchJson;
}

export interface ManifestJson {
  $schema?: string;
  description?: string;
  shader: string;
  kernels: Record<string, EntryJson>;
}

export interface Manifest {
  /** The manifest's path as given. */
  file: string;
  /** The shader's path as written in the manifest (relative to it). */
  shaderRel: string;
  /** The shader's path, resolved against the manifest's folder. */
  shaderFile: string;
  json: ManifestJson;
}

/** One entry of the manifest, resolved against its spec and the parsed shader. */
export interface ManifestKernel {
  entry: string;
  /** The catalog spec, or null for a compile-only entry. */
  base: KernelSpec | null;
  /** The derived spec (the engine's binding and launch); null for a compile-only entry. */
  spec: KernelSpec | null;
  /** The reason a case is not run (a `requires` condition it fails, a length that is not a whole number of vectors), else null. */
  skip(p: Params): string | null;
  /** The inputs the spec does not have ({"input": ...} buffers), generated for a case. */
  extraInputs(p: Params): Tensors;
  note?: string;
}

let validator: ReturnType<Ajv2020['compile']> | null = null;

function validate(json: unknown): ErrorObject[] {
  if (!validator) validator = new Ajv2020({ allErrors: true, strict: false }).compile(MANIFEST_SCHEMA);
  return validator(json) ? [] : (validator.errors ?? []);
}

/** JSON path text of an ajv instancePath: /kernels/foo/buffers/3 → kernels.foo.buffers["3"]. */
function jsonPath(instancePath: string): string {
  if (instancePath === '') return '(top level)';
  return instancePath
    .split('/')
    .slice(1)
    .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((k, i) => (/^[A-Za-z_$][\w$]*$/.test(k) ? `${i === 0 ? '' : '.'}${k}` : `[${JSON.stringify(k)}]`))
    .join('');
}

/** The errors of the deepest failing path, in words; oneOf alternatives summed up. */
export function schemaErrorText(errors: ErrorObject[]): string {
  const depth = (e: ErrorObject): number => e.instancePath.split('/').length;
  const maxDepth = Math.max(...errors.map(depth));
  const deepest = errors.filter((e) => depth(e) === maxDepth);
  const lines = new Set<string>();
  for (const e of deepest) {
    let msg = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties') msg = `has an unknown property '${String((e.params as { additionalProperty: string }).additionalProperty)}'`;
    else if (e.keyword === 'enum') msg = `must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues).map((v) => JSON.stringify(v)).join(', ')}`;
    else if (e.keyword === 'propertyNames') msg = 'has a key that is not a buffer index (0-99)';
    else if (e.keyword === 'oneOf' && e.schemaPath.includes('binding')) {
      msg = 'must be a spec buffer name, {"buffer": NAME}, {"value": EXPR}, {"struct": {FIELD: EXPR}} or {"input": NAME, "length": EXPR, "fill": ...}';
    }
    lines.add(`${jsonPath(e.instancePath)} ${msg}`);
  }
  return [...lines].slice(0, 6).join('; ');
}

/** Read and validate a manifest file; UsageError (exit 2) with the JSON path of what is wrong. */
export function loadManifest(file: string): Manifest {
  if (!existsSync(file)) throw new UsageError(`manifest not found: ${file}`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`manifest ${file} is not JSON: ${(e as Error).message}`);
  }
  const errors = validate(json);
  if (errors.length > 0) throw new UsageError(`manifest ${file} does not follow docs/manifest.schema.json: ${schemaErrorText(errors)}`);
  const m = json as ManifestJson;
  return { file, shaderRel: m.shader, shaderFile: resolve(dirname(file), m.shader), json: m };
}

/** "manifest.json (shader engine.metal)", for reports. */
export function manifestLabel(m: Manifest): string {
  return `${m.file} (shader ${m.shaderRel})`;
}

class Where {
  constructor(
    readonly m: Manifest,
    readonly entry: string,
    readonly spec: KernelSpec | null,
  ) {}
  fail(path: string, what: string, param?: MslParam | MslKernel): never {
    const shader = `${relative(process.cwd(), this.m.shaderFile) || this.m.shaderFile}${param ? `:${param.line}` : ''}`;
    const spec = this.spec ? `spec ${this.spec.name}` : 'no spec';
    throw new UsageError(`manifest ${this.m.file} kernels[${JSON.stringify(this.entry)}]${path} (${spec}; shader ${shader}): ${what}`);
  }
  expr(path: string, text: ExprText, allowed: Set<string>, extra: string[] = []): Expr {
    if (/TODO/.test(String(text))) this.fail(path, `"${String(text)}" is a TODO of moe init: write the expression (docs/manifest.md)`);
    let e: Expr;
    try {
      e = parseExpr(text);
    } catch (err) {
      this.fail(path, (err as Error).message);
    }
    for (const n of e.names) {
      if (!allowed.has(n) && !extra.includes(n)) this.fail(path, `'${e.text}' reads '${n}', which is neither a param of the spec (${[...allowed].join(', ')}) nor one of its scalar or struct buffers`);
    }
    return e;
  }
}

function paramText(p: MslParam): string {
  return `'${p.name}' (${`${p.addressSpace ?? ''} ${p.cppType}`.trim()})`;
}

function scalarOf(t: string): 'uint' | 'int' | 'float' | null {
  const c = typeClass(t);
  return c === 'u32' ? 'uint' : c === 'i32' ? 'int' : c === 'f32' ? 'float' : null;
}

const FIELD_TYPES: Record<string, FieldType> = { u32: 'uint', i32: 'int', f32: 'float', u16: 'ushort', i16: 'short', u8: 'uchar', bool: 'bool' };

/** Values of the spec's params and of its scalar and struct buffers, for expressions. */
function scopeOf(spec: KernelSpec, p: Params): Scope {
  const s: Scope = { ...p };
  for (const b of spec.buffers) {
    if (b.kind === 'scalar') s[b.name] = b.value(p);
    else if (b.kind === 'struct') s[b.name] = Object.fromEntries(b.fields.map((f) => [f.name, f.value(p)]));
  }
  return s;
}

function wholeNumber(w: Where, path: string, e: Expr, scope: Scope, min: number): number {
  let v: number;
  try {
    v = e.evaluate(scope);
  } catch (err) {
    if (err instanceof ExprError) w.fail(path, err.message);
    throw err;
  }
  if (!Number.isInteger(v) || v < min) w.fail(path, `'${e.text}' = ${v} for ${JSON.stringify(scope)}: expected a whole number ≥ ${min} (use ceil(), floor() or //)`);
  return v;
}

function fillOf(w: Where, path: string, fill: Fill, allowed: Set<string>): (i: number, scope: Scope) => number {
  if (fill === 'zeros') return () => 0;
  if (fill === 'iota') return (i) => i;
  if ('constant' in fill) return () => fill.constant;
  const e = w.expr(`${path}.fill.expr`, fill.expr, allowed, ['i']);
  return (i, scope) => e.evaluate({ ...scope, i });
}

function allocateFor(type: 'uint' | 'int' | 'float', n: number): Uint32Array | Int32Array | Float32Array {
  return type === 'float' ? new Float32Array(n) : type === 'int' ? new Int32Array(n) : new Uint32Array(n);
}

/** Resolve one entry: its spec, its binding against the parsed signature, its launch. */
function resolveEntry(m: Manifest, entry: string, e: EntryJson, parsed: ParsedMsl): ManifestKernel {
  const kernel = parsed.kernels.find((k) => k.name === entry);
  let base: KernelSpec | null = null;
  if (e.spec !== undefined && e.spec !== null) {
    if (/TODO/.test(e.spec)) new Where(m, entry, null).fail('.spec', `"${e.spec}" is a TODO of moe init: name the catalog spec (moe kernels) or set null to compile it only`);
    try {
      base = findSpec(e.spec);
    } catch (err) {
      new Where(m, entry, null).fail('.spec', (err as Error).message);
    }
  }
  const w: Where = new Where(m, entry, base);
  if (!kernel) {
    w.fail('', `the shader has no kernel '${entry}' (its kernels: ${parsed.kernels.map((k) => k.name).join(', ') || 'none'})`);
  }
  if (!base) {
    if (e.buffers || e.launch || e.requires || e.omit) w.fail('', 'an entry without a spec is compiled only: buffers, launch, requires and omit need a spec');
    return { entry, base: null, spec: null, skip: () => null, extraInputs: () => ({}), note: e.note };
  }
  const spec = base;
  const allowed = new Set<string>([...spec.params.map((p) => p.name), ...spec.buffers.filter((b) => b.kind !== 'array').map((b) => b.name)]);
  const requires: { e: Expr; text: string }[] = (e.requires ?? []).map((r, i) => ({ e: w.expr(`.requires[${i}]`, r, allowed), text: r }));
  const lengthChecks: { name: string; lanes: number; decl: Extract<BufferDecl, { kind: 'array' }> }[] = [];

  const byIndex = new Map<number, MslParam>();
  const tgParams = new Map<number, MslParam>();
  for (const p of kernel.params) {
    if (p.attr.kind === 'buffer') byIndex.set(p.attr.index, p);
    if (p.attr.kind === 'threadgroup') tgParams.set(p.attr.index, p);
  }
  const sigText = [...byIndex].sort((a, b) => a[0] - b[0]).map(([i, p]) => `${i} ${paramText(p)}`).join(', ');

  let buffers: BufferDecl[];
  const extras: { name: string; type: 'uint' | 'int' | 'float'; length: Expr; fill: (i: number, s: Scope) => number; path: string }[] = [];
  if (!e.buffers) {
    buffers = spec.buffers;
    for (const b of spec.buffers) {
      const p = byIndex.get(b.index);
      if (p && b.kind === 'array') {
        const c = arrayCompat(b.mslType, p.baseType);
        if (c.ok && c.lanes > 1) lengthChecks.push({ name: b.name, lanes: c.lanes, decl: b });
      }
    }
    buffers = spec.buffers.map((b) => {
      const p = byIndex.get(b.index);
      if (p && b.kind === 'array') {
        const c = arrayCompat(b.mslType, p.baseType);
        if (c.ok && c.lanes > 1) return { ...b, mslType: p.baseType };
      }
      return b;
    });
  } else {
    buffers = [];
    const used = new Map<string, number>();
    const names = new Set<string>(spec.buffers.map((b) => b.name));
    const referenced = new Set<string>();
    for (const [key, bj] of Object.entries(e.buffers)) {
      const index = Number(key);
      const path = `.buffers[${JSON.stringify(key)}]`;
      const p = byIndex.get(index);
      if (!p) w.fail(path, `the shader's kernel '${entry}' has no [[buffer(${index})]] (its buffers: ${sigText || 'none'})`, kernel);
      if (typeof bj === 'string' || 'buffer' in bj) {
        const ref: { buffer: string; note?: string } = typeof bj === 'string' ? { buffer: bj } : bj;
        const b = spec.buffers.find((x) => x.name === ref.buffer);
        if (!b) w.fail(path, `'${ref.buffer}' is not a buffer of spec ${spec.name} (its buffers: ${spec.buffers.map((x) => x.name).join(', ')})`, p);
        if (used.has(b.name)) w.fail(path, `spec buffer '${b.name}' is bound twice (also at buffer(${used.get(b.name)}))`, p);
        used.set(b.name, index);
        const found = `the shader's buffer(${index}) ${paramText(p)}`;
        if (b.kind === 'array') {
          const c = arrayCompat(b.mslType, p.baseType);
          if (p.kind !== 'pointer') w.fail(path, `spec buffer '${b.name}' is an array of ${b.mslType}; ${found} is not a pointer`, p);
          if (!c.ok) w.fail(path, `layout: spec buffer '${b.name}' holds ${layoutText(b.mslType)} elements; ${found} reads ${layoutText(p.baseType)} elements`, p);
          if (c.raw16 && !ref.note) w.fail(path, `spec buffer '${b.name}' holds ${b.mslType} data, ${found} takes it as raw ${p.baseType} words: say so with {"buffer": "${b.name}", "note": "..."} (how the kernel decodes them)`, p);
          if (b.access !== 'read' && (p.isConst || p.addressSpace === 'constant')) w.fail(path, `spec buffer '${b.name}' is an output; ${found} is const`, p);
          if (c.lanes > 1) lengthChecks.push({ name: b.name, lanes: c.lanes, decl: b });
          buffers.push({ ...b, index, mslType: p.baseType });
        } else if (b.kind === 'scalar') {
          if (p.kind === 'value' || scalarOf(p.baseType) !== b.mslType) {
            w.fail(path, `layout: spec buffer '${b.name}' is one ${layoutText(b.mslType)} scalar; ${found} is not a constant ${b.mslType}& (bind it as {"value": ...} or {"struct": ...} instead)`, p);
          }
          buffers.push({ ...b, index });
        } else {
          const st = parsed.structs.find((s) => s.name === p.baseType);
          if (!st) w.fail(path, `layout: spec buffer '${b.name}' is the struct ${b.mslType} {${b.fields.map((f) => `${f.type} ${f.name}`).join('; ')}}; ${found} is not a struct: bind the fields one per index with {"value": "${b.name}.FIELD"} and list '${b.name}' in "omit"`, p);
          const mine = b.fields.map((f) => typeClass(f.type));
          const theirs = st.fields.flatMap((f) => Array<string>(f.arrayLength ?? 1).fill(typeClass(f.type)));
          if (mine.length !== theirs.length || mine.some((t, i) => t !== theirs[i])) {
            w.fail(path, `layout: spec buffer '${b.name}' is {${b.fields.map((f) => `${f.type} ${f.name}`).join('; ')}}; ${found} is ${shaderStructText(st)}: give its fields with {"struct": {FIELD: EXPR}}`, p);
          }
          buffers.push({ ...b, index, mslType: st.name });
        }
        continue;
      }
      const bindingName = (base: string): string => {
        let n = base;
        for (let k = 2; names.has(n); k++) n = `${base}#${k}`;
        names.add(n);
        return n;
      };
      if ('value' in bj) {
        const t = scalarOf(p.baseType);
        if (p.kind === 'value' || t === null) w.fail(path, `{"value": ...} binds one uint, int or float; the shader's buffer(${index}) is ${paramText(p)}`, p);
        if (bj.type && bj.type !== t) w.fail(path, `"type": "${bj.type}", but the shader's buffer(${index}) ${paramText(p)} is ${t}`, p);
        const ex = w.expr(`${path}.value`, bj.value, allowed);
        for (const n of ex.names) referenced.add(n);
        buffers.push({ index, name: bindingName(p.name), kind: 'scalar', mslType: t, value: (q) => ex.evaluate(scopeOf(spec, q)) });
      } else if ('struct' in bj) {
        const st = parsed.structs.find((s) => s.name === p.baseType);
        if (!st || p.kind === 'value') w.fail(path, `{"struct": ...} needs a struct passed by reference; the shader's buffer(${index}) is ${paramText(p)}`, p);
        const given = Object.keys(bj.struct);
        const missing = st.fields.filter((f) => !given.includes(f.name)).map((f) => f.name);
        const unknown = given.filter((g) => !st.fields.some((f) => f.name === g));
        if (missing.length > 0 || unknown.length > 0) {
          w.fail(`${path}.struct`, `the shader's ${shaderStructText(st)} ${missing.length ? `needs ${missing.join(', ')}` : ''}${missing.length && unknown.length ? ' and ' : ''}${unknown.length ? `has no field ${unknown.join(', ')}` : ''}`, p);
        }
        const fields = st.fields.map((f) => {
          const ft = FIELD_TYPES[typeClass(f.type)];
          if (!ft || f.arrayLength !== null) w.fail(`${path}.struct.${f.name}`, `field '${f.type} ${f.name}${f.arrayLength !== null ? `[${f.arrayLength}]` : ''}' of ${st.name} is not a scalar the harness packs (uint, int, float, ushort, short, uchar, bool)`, p);
          const ex = w.expr(`${path}.struct.${f.name}`, bj.struct[f.name] as ExprText, allowed);
          for (const n of ex.names) referenced.add(n);
          return { name: f.name, type: ft, value: (q: Params) => ex.evaluate(scopeOf(spec, q)) };
        });
        buffers.push({ index, name: bindingName(p.name), kind: 'struct', mslType: st.name, fields });
      } else {
        const t = scalarOf(p.baseType);
        if (p.kind !== 'pointer' || t === null) w.fail(path, `{"input": ...} binds an array of uint, int or float; the shader's buffer(${index}) is ${paramText(p)}`, p);
        if (bj.type && bj.type !== t) w.fail(path, `"type": "${bj.type}", but the shader's buffer(${index}) ${paramText(p)} holds ${t}`, p);
        if (names.has(bj.input)) w.fail(path, `input '${bj.input}' has the name of another buffer`, p);
        names.add(bj.input);
        const length = w.expr(`${path}.length`, bj.length, allowed);
        extras.push({ name: bj.input, type: t, length, fill: fillOf(w, path, bj.fill, allowed), path });
        buffers.push({ index, name: bj.input, kind: 'array', mslType: p.baseType, dtype: t === 'float' ? 'f32' : t === 'int' ? 'i32' : 'u32', access: 'read', length: (q) => wholeNumber(w, `${path}.length`, length, scopeOf(spec, q), 0) });
      }
    }
    for (const b of spec.buffers) {
      if (used.has(b.name)) continue;
      if (b.kind === 'array') w.fail('.buffers', `spec buffer '${b.name}' (${b.access === 'read' ? 'input' : 'output'}, ${b.mslType}[]) is bound to no index (the shader's buffers: ${sigText})`, kernel);
      if (!(e.omit ?? []).includes(b.name) && !referenced.has(b.name)) {
        w.fail('.buffers', `spec buffer '${b.name}' (${b.kind} ${b.mslType}) is bound to no index and no expression reads it: bind it, or list it in "omit" when its values reach the kernel another way`, kernel);
      }
    }
    for (const [i, p] of byIndex) {
      if (!(String(i) in e.buffers)) w.fail('.buffers', `the shader's buffer(${i}) ${paramText(p)} has no binding`, p);
    }
  }
  for (const o of e.omit ?? []) {
    const b = spec.buffers.find((x) => x.name === o);
    if (!b || b.kind === 'array') w.fail('.omit', `'${o}' is not a scalar or struct buffer of spec ${spec.name}`);
  }

  // Launch: the manifest's, or the spec's.
  let launch: (p: Params) => NativeLaunch = spec.launch;
  let threadgroup: ThreadgroupDecl[] = spec.threadgroup;
  if (e.launch) {
    const L = e.launch;
    const grid = L.grid.map((g, i) => w.expr(`.launch.grid[${i}]`, g, allowed));
    const tg = L.threadgroup.map((g, i) => w.expr(`.launch.threadgroup[${i}]`, g, allowed));
    const tgm = Object.entries(L.threadgroupMemory ?? {}).map(([k, v]) => ({ index: Number(k), e: w.expr(`.launch.threadgroupMemory[${JSON.stringify(k)}]`, v, allowed) }));
    for (const t of tgm) if (!tgParams.has(t.index)) w.fail(`.launch.threadgroupMemory[${JSON.stringify(String(t.index))}]`, `the shader's kernel '${entry}' has no [[threadgroup(${t.index})]] parameter`, kernel);
    threadgroup = tgm.map((t) => ({ index: t.index, name: (tgParams.get(t.index) as MslParam).name, bytes: (q) => wholeNumber(w, '.launch.threadgroupMemory', t.e, scopeOf(spec, q), 0) }));
    const dim3 = (list: Expr[], path: string, q: Params): [number, number, number] => {
      const s = scopeOf(spec, q);
      const v = list.map((x, i) => wholeNumber(w, `${path}[${i}]`, x, s, 1));
      return [v[0] ?? 1, v[1] ?? 1, v[2] ?? 1];
    };
    launch = (q) => {
      const maxTg = Math.max(-1, ...threadgroup.map((t) => t.index));
      const mem = new Array<number>(maxTg + 1).fill(0);
      for (const t of threadgroup) mem[t.index] = t.bytes(q);
      return { mode: L.mode, grid: dim3(grid, '.launch.grid', q), threadgroup: dim3(tg, '.launch.threadgroup', q), threadgroupMemory: mem };
    };
  }
  for (const [i, p] of tgParams) {
    if (!threadgroup.some((t) => t.index === i)) {
      w.fail(e.launch ? '.launch.threadgroupMemory' : '.launch', `the shader's [[threadgroup(${i})]] ${paramText(p)} gets no memory: give its bytes in "launch": {"threadgroupMemory": {"${i}": EXPR}}`, p);
    }
  }

  const extraInputs = (p: Params): Tensors => {
    const s = scopeOf(spec, p);
    const out: Tensors = {};
    for (const x of extras) {
      const n = wholeNumber(w, `${x.path}.length`, x.length, s, 0);
      const a = allocateFor(x.type, n);
      for (let i = 0; i < n; i++) a[i] = x.fill(i, s);
      out[x.name] = a;
    }
    return out;
  };
  const derived: KernelSpec = {
    ...spec,
    name: entry,
    entry,
    buffers,
    threadgroup,
    description: `${spec.description} (spec ${spec.name}, bound by ${m.file})`,
    inputs: (p, set, rng): Tensors => ({ ...spec.inputs(p, set, rng), ...extraInputs(p) }),
    launch,
  };
  return {
    entry,
    base: spec,
    spec: derived,
    note: e.note,
    extraInputs,
    skip(p) {
      const s = scopeOf(spec, p);
      for (const r of requires) {
        let v: number;
        try {
          v = r.e.evaluate(s);
        } catch (err) {
          return `manifest ${m.file}: requires "${r.text}": ${(err as Error).message}`;
        }
        if (v === 0) return `the manifest requires ${r.text} (kernels[${JSON.stringify(entry)}].requires)`;
      }
      for (const l of lengthChecks) {
        const n = l.decl.length(p);
        if (n % l.lanes !== 0) return `'${l.name}' has ${n} elements, not a whole number of ${l.lanes}-lane vectors as the shader reads them (${elementLayout(l.decl.mslType).scalar} × ${l.lanes})`;
      }
      return null;
    },
  };
}

/** Parse the manifest's shader and resolve every entry (or those named in `only`: entry or spec names). */
export function resolveManifest(m: Manifest, only?: string[]): { parsed: ParsedMsl; source: string; kernels: ManifestKernel[] } {
  const source = readShader(m.shaderFile);
  let parsed: ParsedMsl;
  try {
    parsed = parseMsl(source, m.shaderFile);
  } catch (e) {
    throw new UsageError(`manifest ${m.file}: shader ${m.shaderRel} does not parse: ${(e as Error).message}`);
  }
  let entries = Object.entries(m.json.kernels);
  if (only && only.length > 0) {
    for (const n of only) {
      if (!entries.some(([k, v]) => k === n || v.spec === n)) throw new UsageError(`manifest ${m.file}: no entry '${n}' (entries: ${entries.map(([k]) => k).join(', ')})`);
    }
    entries = entries.filter(([k, v]) => only.includes(k) || (typeof v.spec === 'string' && only.includes(v.spec)));
  }
  return { parsed, source, kernels: entries.map(([k, v]) => resolveEntry(m, k, v, parsed)) };
}


