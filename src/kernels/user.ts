/**
 * Kernel specs written by users (`--spec FILE`): their shape checked field by
 * field with errors that name the file, the spec and the field; loaded from
 * ESM, CommonJS or TypeScript (through tsx where it is installed); merged
 * with the catalog without name clashes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UsageError } from '../errors.js';
import { FIELD_TYPES } from './pack.js';
import { hasTopKParam, type KernelCase, type KernelSpec } from './spec.js';

/**
 * A spec as a user writes it: the KernelSpec contract, where `shader` (a path
 * relative to the spec file; else `--shader` is needed), `group` (default
 * 'user'), `threadgroup` (default none) and `cases` (default: `defaults` with
 * every input set) may be left out.
 */
export type SpecDefinition = Omit<KernelSpec, 'hasTopK' | 'threadgroup' | 'shader' | 'group' | 'cases'> &
  Partial<Pick<KernelSpec, 'threadgroup' | 'shader' | 'group' | 'cases'>>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

/** Throws an Error naming every problem with a spec definition; returns the completed spec. */
export function normalizeSpec(raw: unknown, where = 'spec'): KernelSpec {
  if (!isObj(raw)) throw new Error(`${where}: a kernel spec must be an object, got ${typeOf(raw)}`);
  const label = typeof raw.name === 'string' ? `${where} '${raw.name}'` : where;
  const problems: string[] = [];
  const need = (field: string, ok: boolean, what: string): void => {
    if (!ok) problems.push(`${field}: ${what}, got ${field in raw ? typeOf(raw[field]) : 'nothing'}`);
  };
  const str = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';
  const fn = (v: unknown): boolean => typeof v === 'function';
  const int = (v: unknown, lo = 0): boolean => typeof v === 'number' && Number.isInteger(v) && v >= lo;

  need('name', str(raw.name) && NAME.test(raw.name as string), "a short name of letters, digits, '-', '_' or '.' (e.g. 'my-rms-norm')");
  need('entry', str(raw.entry) && IDENT.test(raw.entry as string), 'the kernel function name in the shader (an identifier)');
  if (raw.shader !== undefined) need('shader', typeof raw.shader === 'string', "a path to the .metal file, relative to the spec file ('' for none: --shader gives it)");
  if (raw.group !== undefined) need('group', str(raw.group), 'a string');
  need('description', typeof raw.description === 'string', 'a string');
  need('math', typeof raw.math === 'string', 'a string saying what the kernel computes');
  for (const f of ['validate', 'inputs', 'launch', 'reference', 'cost']) need(f, fn(raw[f]), 'a function');
  if (raw.cases !== undefined) need('cases', fn(raw.cases), 'a function returning the default cases');
  if (raw.presetParams !== undefined) need('presetParams', fn(raw.presetParams), 'a function');
  if (raw.launchText !== undefined) need('launchText', typeof raw.launchText === 'string', 'a string');

  const paramNames = new Set<string>();
  if (!Array.isArray(raw.params)) need('params', false, 'an array of { name, description, flag?, min?, max?, kind? }');
  else {
    raw.params.forEach((p: unknown, i) => {
      const at = `params[${i}]`;
      if (!isObj(p) || !str(p.name) || !IDENT.test(p.name as string)) return problems.push(`${at}: needs a name (an identifier)`);
      if (paramNames.has(p.name as string)) problems.push(`${at}: param '${String(p.name)}' is declared twice`);
      paramNames.add(p.name as string);
      if (typeof p.description !== 'string') problems.push(`${at} '${String(p.name)}': description must be a string`);
      if (p.flag !== undefined && !(str(p.flag) && /^[a-z][a-z0-9-]*$/.test(p.flag as string))) problems.push(`${at}: flag must be a lower-case flag name without dashes in front (e.g. 'rows')`);
      for (const k of ['min', 'max']) if (p[k] !== undefined && typeof p[k] !== 'number') problems.push(`${at}: ${k} must be a number`);
      if (p.kind !== undefined && p.kind !== 'int' && p.kind !== 'float') problems.push(`${at}: kind must be 'int' or 'float'`);
      return undefined;
    });
  }
  if (!isObj(raw.defaults)) need('defaults', false, 'an object giving a number for every param');
  else {
    for (const n of paramNames) if (typeof raw.defaults[n] !== 'number') problems.push(`defaults.${n}: a number is needed for every param`);
    for (const k of Object.keys(raw.defaults)) if (!paramNames.has(k)) problems.push(`defaults.${k}: not a declared param`);
  }
  if (raw.bench !== undefined && !isObj(raw.bench)) problems.push('bench: must be an object of param values');

  if (!Array.isArray(raw.inputSets) || raw.inputSets.length === 0) need('inputSets', false, 'a non-empty array of { name, description }');
  else raw.inputSets.forEach((s: unknown, i) => {
    if (!isObj(s) || !str(s.name) || typeof s.description !== 'string') problems.push(`inputSets[${i}]: needs a name and a description`);
  });

  if (!Array.isArray(raw.buffers) || raw.buffers.length === 0) need('buffers', false, 'a non-empty array of buffer declarations');
  else {
    const indices = new Set<number>();
    const names = new Set<string>();
    let outputs = 0;
    raw.buffers.forEach((b: unknown, i) => {
      const at = `buffers[${i}]`;
      if (!isObj(b)) return problems.push(`${at}: must be an object, got ${typeOf(b)}`);
      const label2 = `${at}${typeof b.name === 'string' ? ` '${b.name}'` : ''}`;
      if (!int(b.index) || (b.index as number) > 30) problems.push(`${label2}: index must be an integer 0..30 (the [[buffer(n)]] slot)`);
      else if (indices.has(b.index as number)) problems.push(`${label2}: buffer(${String(b.index)}) is declared twice`);
      else indices.add(b.index as number);
      if (!str(b.name)) problems.push(`${at}: needs a name`);
      else if (names.has(b.name as string)) problems.push(`${label2}: the name is used twice`);
      else names.add(b.name as string);
      if (b.kind === 'array') {
        if (!str(b.mslType)) problems.push(`${label2}: mslType must name the element type (float, uint, bfloat, ...)`);
        if (!['f32', 'u32', 'i32', 'u16', 'bf16', 'u8'].includes(b.dtype as string)) problems.push(`${label2}: dtype must be one of f32, u32, i32, u16, bf16, u8`);
        if (!['read', 'write', 'readwrite'].includes(b.access as string)) problems.push(`${label2}: access must be 'read', 'write' or 'readwrite'`);
        else if (b.access !== 'read') outputs++;
        if (!fn(b.length)) problems.push(`${label2}: length must be a function of the params (element count)`);
      } else if (b.kind === 'scalar') {
        if (!['uint', 'int', 'float'].includes(b.mslType as string)) problems.push(`${label2}: a scalar's mslType must be uint, int or float`);
        if (!fn(b.value)) problems.push(`${label2}: value must be a function of the params`);
      } else if (b.kind === 'struct') {
        if (!str(b.mslType)) problems.push(`${label2}: mslType must name the struct type`);
        if (!Array.isArray(b.fields) || b.fields.length === 0) problems.push(`${label2}: fields must be a non-empty array of { name, type, value }`);
        else b.fields.forEach((f: unknown, j) => {
          if (!isObj(f) || !str(f.name) || !FIELD_TYPES.includes(f.type as never) || !fn(f.value)) {
            problems.push(`${label2}.fields[${j}]: needs a name, a type (${FIELD_TYPES.join(', ')}) and a value function`);
          }
        });
      } else problems.push(`${label2}: kind must be 'array', 'scalar' or 'struct'`);
      return undefined;
    });
    if (Array.isArray(raw.buffers) && outputs === 0 && problems.length === 0) problems.push("buffers: no output (an array with access 'write' or 'readwrite'): there is nothing to verify");
  }
  if (raw.threadgroup !== undefined) {
    if (!Array.isArray(raw.threadgroup)) problems.push('threadgroup: must be an array of { index, name, bytes }');
    else raw.threadgroup.forEach((t: unknown, i) => {
      if (!isObj(t) || !int(t.index) || !str(t.name) || !fn(t.bytes)) problems.push(`threadgroup[${i}]: needs an index, a name and a bytes function`);
    });
  }
  if (problems.length > 0) throw new Error(`${label} is not a valid kernel spec:\n  - ${problems.join('\n  - ')}`);

  const def = raw as unknown as SpecDefinition;
  const spec: KernelSpec = {
    ...def,
    shader: def.shader ?? '',
    group: def.group ?? 'user',
    threadgroup: def.threadgroup ?? [],
    cases: def.cases ?? ((): KernelCase[] => def.inputSets.map((s) => ({ params: { ...def.defaults }, inputSet: s.name, origin: 'defaults' }))),
    hasTopK: hasTopKParam(def),
  };
  // The launch at the defaults must be a launch: caught here rather than in the first case.
  if (spec.validate({ ...spec.defaults }) === null) {
    const why = launchProblem(spec.launch({ ...spec.defaults }));
    if (why !== null) throw new Error(`${label} is not a valid kernel spec:\n  - launch(defaults): ${why}`);
  }
  return spec;
}

/** null when `l` has the shape of a launch, else what is wrong. */
export function launchProblem(l: unknown): string | null {
  if (!isObj(l)) return `must return { mode, grid, threadgroup, threadgroupMemory }, got ${typeOf(l)}`;
  if (l.mode !== 'threads' && l.mode !== 'threadgroups') return "mode must be 'threads' (dispatchThreads) or 'threadgroups' (dispatchThreadgroups)";
  for (const k of ['grid', 'threadgroup']) {
    const v = l[k];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isInteger(x) && x >= 1)) return `${k} must be three positive integers [x, y, z], got ${JSON.stringify(v)}`;
  }
  if (!Array.isArray(l.threadgroupMemory) || !l.threadgroupMemory.every((x) => Number.isInteger(x) && x >= 0)) {
    return 'threadgroupMemory must be an array of byte counts (one per [[threadgroup(i)]]; [] when none)';
  }
  return null;
}

/** A spec as users define it (checked, with its defaults filled); throws on any problem. */
export function defineSpec(def: SpecDefinition): KernelSpec {
  return normalizeSpec(def, 'defineSpec');
}

/** Whether an exported value looks meant as a spec (then it must be a valid one). */
function specLike(v: unknown): boolean {
  return isObj(v) && ('entry' in v || 'reference' in v) && ('launch' in v || 'buffers' in v);
}

/** The spec candidates among a module's exports: a default (spec, array, or object of specs) and named exports. */
function candidates(mod: Obj): unknown[] {
  const out: unknown[] = [];
  const take = (v: unknown): void => {
    if (Array.isArray(v)) {
      if (v.length > 0 && v.some(specLike)) out.push(...v);
    } else if (specLike(v)) out.push(v);
  };
  for (const [key, v] of Object.entries(mod)) {
    if (key === 'default' && isObj(v) && !specLike(v)) for (const x of Object.values(v)) take(x);
    else take(v);
  }
  return [...new Set(out)];
}

const TS_EXT = new Set(['.ts', '.mts', '.cts']);

/** The ESM file of tsx's programmatic API as resolved from `from`, or null when tsx is not installed there. */
function tsxApi(from: string): string | null {
  let pkgFile: string;
  try {
    pkgFile = createRequire(from).resolve('tsx/package.json');
  } catch {
    return null;
  }
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports?: Record<string, unknown> };
  const entry = pkg.exports?.['./esm/api'];
  const target = typeof entry === 'string' ? entry : isObj(entry) ? (isObj(entry.import) ? entry.import.default : entry.import) : undefined;
  return typeof target === 'string' ? join(dirname(pkgFile), target) : null;
}

async function importFile(abs: string): Promise<Obj> {
  const url = pathToFileURL(abs).href;
  if (!TS_EXT.has(extname(abs)) || (process.features as { typescript?: unknown }).typescript) return (await import(url)) as Obj;
  // TypeScript on a Node that does not strip types: through tsx, from the spec's project or this package.
  let api: string | null = null;
  for (const from of [abs, fileURLToPath(import.meta.url)]) {
    api = tsxApi(from);
    if (api !== null) break;
  }
  if (api === null) {
    throw new UsageError(`--spec ${abs}: a TypeScript spec needs a TypeScript loader: install tsx beside it (npm install --save-dev tsx), or compile it to .js`);
  }
  const { tsImport } = (await import(pathToFileURL(api).href)) as { tsImport: (specifier: string, parent: string) => Promise<Obj> };
  return tsImport(url, import.meta.url);
}

/** The specs a --spec file exports, checked, with shader paths made absolute (relative to the file). */
export async function loadUserSpecs(file: string): Promise<KernelSpec[]> {
  const abs = resolve(file);
  if (!existsSync(abs)) throw new UsageError(`--spec: file not found: ${file}`);
  let mod: Obj;
  try {
    mod = await importFile(abs);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const msg = (e as Error).message;
    const hint = /moe-kernels/.test(msg) && /Cannot find (package|module)/.test(msg) ? " (a spec imports 'moe-kernels': install it in the spec's project, npm install --save-dev moe-kernels)" : '';
    throw new UsageError(`--spec ${file}: cannot load it: ${msg}${hint}`);
  }
  const found = candidates(mod);
  if (found.length === 0) {
    throw new UsageError(`--spec ${file}: exports no kernel spec (export default defineSpec({...}), an array of specs, or named specs)`);
  }
  const specs: KernelSpec[] = [];
  found.forEach((raw, i) => {
    let spec: KernelSpec;
    try {
      spec = normalizeSpec(raw, `${file}: spec #${i + 1}`);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (spec.shader !== '' && !isAbsolute(spec.shader)) spec = { ...spec, shader: resolve(dirname(abs), spec.shader) };
    if (specs.some((s) => s.name === spec.name)) throw new UsageError(`--spec ${file}: two specs are named '${spec.name}'`);
    specs.push(spec);
  });
  return specs;
}

/**
 * The catalog with the user's specs after it; a user spec whose name (or entry
 * point) is a catalog spec's name is an error, so `--kernel` stays unambiguous.
 */
export function withUserSpecs(catalog: KernelSpec[], user: KernelSpec[], file: string): KernelSpec[] {
  for (const u of user) {
    const clash = catalog.find((c) => c.name === u.name || c.entry === u.name || c.name === u.entry);
    if (clash) {
      throw new UsageError(
        `--spec ${file}: spec '${u.name}' (entry ${u.entry}) clashes with the catalog's '${clash.name}' (entry ${clash.entry}): rename it, so --kernel names one spec`,
      );
    }
  }
  return [...catalog, ...user];
}
