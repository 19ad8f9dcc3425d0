/**
 * MSL front end: a token-level parser of compute sources. Not a full C++
 * parser: it finds what the backends need — structs and their fields, the
 * functions and their bodies, kernels (plain, [[kernel]], templates with
 * [[host_name]] instantiations) and each kernel parameter's address space,
 * type and attribute — and rejects features no backend supports, naming them.
 */
import { lex, LexError, type Token } from './lexer.js';

export class MslError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}:${column}: error: ${detail}`);
    this.name = 'MslError';
  }
}

export type AddressSpace = 'device' | 'constant' | 'threadgroup' | 'thread';

export type ParamAttr =
  | { kind: 'buffer'; index: number }
  | { kind: 'threadgroup'; index: number }
  | { kind: 'builtin'; name: string }
  | { kind: 'none' };

export interface MslParam {
  name: string;
  addressSpace: AddressSpace | null;
  /** Type with the address space removed, as written (e.g. "const float *", "Params &", "uint3"). */
  cppType: string;
  /** Element type without const, * or & (e.g. "float", "Params"). */
  baseType: string;
  isConst: boolean;
  kind: 'pointer' | 'reference' | 'value';
  attr: ParamAttr;
  line: number;
}

export interface MslKernel {
  /** Host name: the function's name, or its [[host_name("...")]]. */
  name: string;
  functionName: string;
  /** Template arguments of an instantiation ("float" for foo<float>), else null. */
  templateArgs: string | null;
  params: MslParam[];
  line: number;
  usesSync: boolean;
}

export interface MslStruct {
  name: string;
  fields: { name: string; type: string; arrayLength: number | null }[];
  line: number;
}

export interface ParsedMsl {
  file: string;
  source: string;
  tokens: Token[];
  kernels: MslKernel[];
  structs: MslStruct[];
  /** Function bodies as [first, last] token indices (the braces), for the emitters. */
  bodies: [number, number][];
}

export const ADDRESS_SPACES = new Set(['device', 'constant', 'threadgroup', 'thread']);

export const BUILTINS = new Set([
  'thread_position_in_grid',
  'thread_position_in_threadgroup',
  'threadgroup_position_in_grid',
  'threads_per_threadgroup',
  'threadgroups_per_grid',
  'threads_per_grid',
  'grid_size',
  'grid_origin',
  'dispatch_threads_per_threadgroup',
  'thread_index_in_threadgroup',
  'thread_index_in_simdgroup',
  'simdgroup_index_in_threadgroup',
  'threads_per_simdgroup',
  'thread_execution_width',
  'simdgroups_per_threadgroup',
  'dispatch_simdgroups_per_threadgroup',
  'thread_index_in_quadgroup',
  'quadgroup_index_in_threadgroup',
  'quadgroups_per_threadgroup',
]);

const INTEGER_TYPES = /^(uint|ushort|int|short|uchar|char|uint32_t|uint16_t|int32_t|int16_t|unsigned|unsigned int|unsigned short)([234])?$/;

/** Features named precisely when met (first match wins). */
const UNSUPPORTED: [RegExp, string][] = [
  [/^simdgroup_(matrix|float8x8|half8x8|bfloat8x8|multiply|multiply_accumulate|load|store)$/, 'simdgroup_matrix is not supported by the cpu backend yet'],
  [/^(texture[123]d|texture[123]d_array|texturecube|texturecube_array|texture2d_ms|texture_buffer|depth2d|depth2d_array|depthcube)$/, 'textures are not supported (compute kernels over buffers only)'],
  [/^sampler$/, 'samplers are not supported (compute kernels over buffers only)'],
  [/^(imageblock|threadgroup_imageblock)$/, 'imageblocks are not supported'],
  [/^(intersector|acceleration_structure|intersection_function_table|visible_function_table|ray)$/, 'ray tracing is not supported'],
  [/^(vertex|fragment)$/, 'vertex and fragment functions are not supported: only compute kernels'],
  [/^(visible|intersection)$/, 'visible and intersection functions are not supported'],
  [/^(mesh|object)$/, 'mesh and object shaders are not supported'],
];

const SYNC = /^(threadgroup_barrier|simdgroup_barrier|simd_\w+|quad_\w+)$/;

interface Cursor {
  /** indices of significant (non-trivia) tokens */
  sig: number[];
  toks: Token[];
}

export function isTrivia(t: Token): boolean {
  return t.kind === 'ws' || t.kind === 'comment' || t.kind === 'pp';
}

/** Index in `sig` of the bracket matching the opener at sig[i]. */
export function matchBracket(c: Cursor, i: number, file: string): number {
  const open = c.toks[c.sig[i] as number]!.text;
  const close = open === '(' ? ')' : open === '[' ? ']' : open === '{' ? '}' : '>';
  let depth = 0;
  for (let j = i; j < c.sig.length; j++) {
    const t = c.toks[c.sig[j] as number]!.text;
    if (t === open) depth++;
    else if (t === close) {
      depth--;
      if (depth === 0) return j;
    } else if (open === '<' && (t === ';' || t === '{')) break;
  }
  const t = c.toks[c.sig[i] as number]!;
  throw new MslError(file, t.line, t.column, `unbalanced '${open}'`);
}

/** If sig[i] starts an attribute `[[...]]`, the index of its closing `]`, else -1. */
export function attributeEnd(c: Cursor, i: number): number {
  const a = c.toks[c.sig[i] as number];
  const b = c.toks[c.sig[i + 1] as number];
  if (!a || !b || a.text !== '[' || b.text !== '[') return -1;
  if (c.sig[i + 1] !== (c.sig[i] as number) + 1) return -1; // `[ [` with trivia between: not an attribute
  let depth = 0;
  for (let j = i; j < c.sig.length; j++) {
    const t = c.toks[c.sig[j] as number]!.text;
    if (t === '[') depth++;
    else if (t === ']') {
      depth--;
      if (depth === 0) return j;
    }
  }
  return -1;
}

function text(c: Cursor, from: number, to: number): string {
  // significant tokens from..to inclusive, joined with single spaces where the source had trivia
  let s = '';
  for (let j = from; j <= to; j++) {
    const k = c.sig[j] as number;
    if (j > from && (c.sig[j - 1] as number) + 1 !== k) s += ' ';
    s += c.toks[k]!.text;
  }
  return s;
}

function parseAttr(c: Cursor, from: number, to: number, file: string): ParamAttr {
  // tokens between [[ and ]]: from = first token inside, to = last inside
  const t0 = c.toks[c.sig[from] as number]!;
  const name = t0.text;
  if (name === 'buffer' || name === 'threadgroup') {
    const n = c.toks[c.sig[from + 2] as number];
    if (!n || n.kind !== 'number' || !/^\d+[uU]?$/.test(n.text)) {
      throw new MslError(file, t0.line, t0.column, `[[${name}(n)]] needs an integer index`);
    }
    const index = parseInt(n.text, 10);
    if (index > 30) throw new MslError(file, n.line, n.column, `[[${name}(${index})]]: index above 30`);
    return { kind: name, index };
  }
  if (BUILTINS.has(name)) return { kind: 'builtin', name };
  if (name === 'stage_in') throw new MslError(file, t0.line, t0.column, '[[stage_in]] is not supported: only compute kernels');
  if (name === 'function_constant') throw new MslError(file, t0.line, t0.column, 'function constants ([[function_constant(n)]]) are not supported yet');
  throw new MslError(file, t0.line, t0.column, `unknown kernel parameter attribute [[${text(c, from, to)}]]`);
}

function parseParams(c: Cursor, open: number, close: number, file: string, isKernel: boolean): MslParam[] {
  const params: MslParam[] = [];
  let start = open + 1;
  const ranges: [number, number][] = [];
  let depth = 0;
  for (let j = open + 1; j < close; j++) {
    const t = c.toks[c.sig[j] as number]!.text;
    if (t === '(' || t === '[' || t === '<' || t === '{') depth++;
    else if (t === ')' || t === ']' || t === '>' || t === '}') depth--;
    else if (t === ',' && depth === 0) {
      ranges.push([start, j - 1]);
      start = j + 1;
    }
  }
  if (start <= close - 1) ranges.push([start, close - 1]);
  for (const [a, b] of ranges) {
    let end = b;
    let attr: ParamAttr = { kind: 'none' };
    // trailing attribute
    for (let j = a; j <= b; j++) {
      const e = attributeEnd(c, j);
      if (e >= 0) {
        attr = parseAttr(c, j + 2, e - 2, file);
        end = j - 1;
        break;
      }
    }
    if (end < a) continue;
    const first = c.toks[c.sig[a] as number]!;
    if (first.text === 'void' && end === a) continue;
    const nameTok = c.toks[c.sig[end] as number]!;
    if (nameTok.kind !== 'ident') {
      if (isKernel) throw new MslError(file, nameTok.line, nameTok.column, 'kernel parameters must be named');
      continue;
    }
    const typeToks: Token[] = [];
    for (let j = a; j < end; j++) typeToks.push(c.toks[c.sig[j] as number]!);
    let addressSpace: AddressSpace | null = null;
    const kept: string[] = [];
    for (const t of typeToks) {
      if (t.kind === 'ident' && ADDRESS_SPACES.has(t.text)) addressSpace = t.text as AddressSpace;
      else kept.push(t.text);
    }
    const cppType = kept.join(' ').replace(/ ([*&])/g, ' $1');
    const isPtr = kept.includes('*');
    const isRef = kept.includes('&');
    const isConst = kept.includes('const') || addressSpace === 'constant';
    const baseType = kept.filter((t) => t !== 'const' && t !== 'volatile' && t !== '*' && t !== '&' && t !== 'restrict' && t !== '__restrict').join(' ');
    const p: MslParam = {
      name: nameTok.text,
      addressSpace,
      cppType,
      baseType,
      isConst,
      kind: isPtr ? 'pointer' : isRef ? 'reference' : 'value',
      attr,
      line: nameTok.line,
    };
    if (isKernel) {
      if (attr.kind === 'buffer' && addressSpace !== 'device' && addressSpace !== 'constant') {
        throw new MslError(file, nameTok.line, nameTok.column, `buffer parameter '${p.name}' needs the device or constant address space`);
      }
      if (attr.kind === 'buffer' && p.kind === 'value') {
        throw new MslError(file, nameTok.line, nameTok.column, `buffer parameter '${p.name}' must be a pointer or a reference`);
      }
      if (attr.kind === 'threadgroup' && (addressSpace !== 'threadgroup' || p.kind !== 'pointer')) {
        throw new MslError(file, nameTok.line, nameTok.column, `[[threadgroup(n)]] parameter '${p.name}' must be a threadgroup pointer`);
      }
      if (attr.kind === 'builtin' && !INTEGER_TYPES.test(baseType)) {
        throw new MslError(file, nameTok.line, nameTok.column, `builtin [[${attr.name}]] must have an integer scalar or vector type, not '${baseType}'`);
      }
      if (attr.kind === 'none' && addressSpace !== null) {
        throw new MslError(file, nameTok.line, nameTok.column, `kernel parameter '${p.name}' has no [[buffer(n)]] or [[threadgroup(n)]] attribute`);
      }
      if (attr.kind === 'none' && addressSpace === null) {
        throw new MslError(file, nameTok.line, nameTok.column, `kernel parameter '${p.name}' needs an attribute (a buffer or a builtin such as [[thread_position_in_grid]])`);
      }
    }
    params.push(p);
  }
  if (isKernel) {
    const seen = new Map<string, string>();
    for (const p of params) {
      if (p.attr.kind === 'buffer' || p.attr.kind === 'threadgroup') {
        const key = `${p.attr.kind}(${p.attr.index})`;
        const prev = seen.get(key);
        if (prev) throw new MslError(file, p.line, 1, `[[${key}]] is used by both '${prev}' and '${p.name}'`);
        seen.set(key, p.name);
      }
    }
  }
  return params;
}

interface FnInfo {
  name: string;
  bodyIdents: Set<string>;
}

export function parseMsl(source: string, file: string): ParsedMsl {
  let toks: Token[];
  try {
    toks = lex(source);
  } catch (e) {
    if (e instanceof LexError) throw new MslError(file, e.line, e.column, e.message);
    throw e;
  }
  const sig: number[] = [];
  toks.forEach((t, i) => {
    if (!isTrivia(t)) sig.push(i);
  });
  const c: Cursor = { sig, toks };
  const tok = (j: number): Token | undefined => (j >= 0 && j < sig.length ? toks[sig[j] as number] : undefined);

  // Unsupported features, named precisely.
  for (let j = 0; j < sig.length; j++) {
    const t = tok(j)!;
    if (t.kind !== 'ident') continue;
    const prev = tok(j - 1)?.text;
    if (prev === '.' || prev === '->') continue;
    for (const [re, msg] of UNSUPPORTED) {
      if (re.test(t.text)) {
        // vertex/fragment/visible/... are only keywords in front of a function
        if (/^(vertex|fragment|visible|intersection|mesh|object)$/.test(t.text)) {
          const next = tok(j + 1);
          if (!next || next.kind !== 'ident') continue;
        }
        throw new MslError(file, t.line, t.column, msg);
      }
    }
  }

  const structs: MslStruct[] = [];
  const structFields = new Set<string>();
  const fns: FnInfo[] = [];
  const kernels: MslKernel[] = [];
  const templateKernels = new Map<string, number>();
  const bodies: [number, number][] = [];

  let j = 0;
  // Walk the namespace scope. Braces of namespaces are entered; function and struct bodies are skipped.
  while (j < sig.length) {
    const t = tok(j)!;
    if (t.text === 'namespace') {
      // namespace N { ... } : enter
      let k = j + 1;
      while (k < sig.length && tok(k)!.text !== '{' && tok(k)!.text !== ';') k++;
      j = k + 1;
      continue;
    }
    if (t.text === '}' || t.text === ';') {
      j++;
      continue;
    }
    if ((t.text === 'struct' || t.text === 'class' || t.text === 'union') && tok(j + 1)?.kind === 'ident') {
      const name = tok(j + 1)!.text;
      let k = j + 2;
      if (tok(k)?.text === ':') while (k < sig.length && tok(k)!.text !== '{' && tok(k)!.text !== ';') k++;
      if (tok(k)?.text === '{') {
        const close = matchBracket(c, k, file);
        const fields: MslStruct['fields'] = [];
        let start = k + 1;
        let depth = 0;
        for (let m = k + 1; m < close; m++) {
          const x = tok(m)!.text;
          if (x === '{' || x === '(') depth++;
          else if (x === '}' || x === ')') depth--;
          else if (x === ';' && depth === 0) {
            parseField(start, m - 1);
            start = m + 1;
          }
        }
        structs.push({ name, fields, line: t.line });
        for (const f of fields) structFields.add(f.name);
        j = close + 1;
        continue;

        function parseField(a: number, b: number): void {
          if (b < a) return;
          // skip member functions and static members
          for (let m = a; m <= b; m++) if (tok(m)!.text === '(' || tok(m)!.text === 'static' || tok(m)!.text === 'using') return;
          // declarators split by top-level commas: first carries the type
          const decls: [number, number][] = [];
          let s = a;
          for (let m = a; m <= b; m++) {
            if (tok(m)!.text === ',') {
              decls.push([s, m - 1]);
              s = m + 1;
            }
          }
          decls.push([s, b]);
          const [fa, fb] = decls[0] as [number, number];
          let nameIdx = fb;
          let arrayLength: number | null = null;
          if (tok(fb)!.text === ']') {
            const open = fb - 2;
            const n = tok(fb - 1)!;
            arrayLength = /^\d+[uU]?$/.test(n.text) ? parseInt(n.text, 10) : null;
            nameIdx = open - 1;
          }
          const type = text(c, fa, nameIdx - 1);
          const add = (nm: Token, len: number | null): void => {
            fields.push({ name: nm.text, type, arrayLength: len });
          };
          add(tok(nameIdx)!, arrayLength);
          for (const [da, db] of decls.slice(1)) {
            let len: number | null = null;
            if (tok(db)!.text === ']') len = /^\d+/.test(tok(db - 1)!.text) ? parseInt(tok(db - 1)!.text, 10) : null;
            add(tok(da)!, len);
          }
        }
      }
    }
    // A declaration or definition at namespace scope: collect up to `;` or a body `{...}`.
    let k = j;
    let isTemplate = false;
    let templateParamsEnd = -1;
    if (tok(k)?.text === 'template') {
      isTemplate = true;
      if (tok(k + 1)?.text === '<') {
        templateParamsEnd = matchBracket(c, k + 1, file);
        k = templateParamsEnd + 1;
      } else k = k + 1; // explicit instantiation: template [[host_name(...)]] kernel void f<T>(...);
    }
    let hostName: string | null = null;
    let isKernel = false;
    let nameIdx = -1;
    let parenOpen = -1;
    let m = k;
    for (; m < sig.length; m++) {
      const x = tok(m)!;
      const ae = attributeEnd(c, m);
      if (ae >= 0) {
        const inner = tok(m + 2)!;
        if (inner.text === 'host_name') {
          const s = tok(m + 4);
          if (s?.kind === 'string') hostName = s.text.slice(1, -1);
        }
        if (inner.text === 'kernel') isKernel = true;
        m = ae;
        continue;
      }
      if (x.text === 'kernel' && x.kind === 'ident') isKernel = true;
      if (x.text === '(') {
        parenOpen = m;
        break;
      }
      if (x.text === '{' || x.text === ';' || x.text === '=') break;
      if (x.kind === 'ident') nameIdx = m;
      if (x.text === '<' && nameIdx === m - 1) {
        // template arguments of an instantiation: f<float>(...)
        m = matchBracket(c, m, file);
      }
    }
    if (parenOpen < 0 || nameIdx < 0) {
      // not a function: skip the statement (a variable, a using, a typedef)
      let d = 0;
      while (m < sig.length) {
        const x = tok(m)!.text;
        if (x === '{' || x === '(' || x === '[') d++;
        else if (x === '}' || x === ')' || x === ']') d--;
        if (d <= 0 && x === ';') break;
        if (d < 0) break;
        m++;
      }
      j = m + 1;
      continue;
    }
    const fname = tok(nameIdx)!.text;
    let templateArgs: string | null = null;
    if (tok(nameIdx + 1)?.text === '<') {
      const e = matchBracket(c, nameIdx + 1, file);
      templateArgs = text(c, nameIdx + 2, e - 1);
    }
    const close = matchBracket(c, parenOpen, file);
    // after ): maybe qualifiers then { body } or ;
    let after = close + 1;
    while (after < sig.length && tok(after)!.text !== '{' && tok(after)!.text !== ';') after++;
    const hasBody = tok(after)?.text === '{';
    const bodyEnd = hasBody ? matchBracket(c, after, file) : after;
    if (hasBody) {
      bodies.push([sig[after] as number, sig[bodyEnd] as number]);
      const ids = new Set<string>();
      for (let q = after; q <= bodyEnd; q++) if (tok(q)!.kind === 'ident') ids.add(tok(q)!.text);
      fns.push({ name: fname, bodyIdents: ids });
    }
    if (isKernel) {
      const line = tok(nameIdx)!.line;
      if (isTemplate && templateParamsEnd >= 0) {
        templateKernels.set(fname, line); // a template: only its instantiations are kernels
      } else {
        const params = parseParams(c, parenOpen, close, file, true);
        kernels.push({ name: hostName ?? fname, functionName: fname, templateArgs, params, line, usesSync: false });
      }
    }
    j = bodyEnd + 1;
  }

  // usesSync through the call graph of functions defined in the file
  const byName = new Map<string, Set<string>>();
  for (const f of fns) {
    const s = byName.get(f.name) ?? new Set<string>();
    for (const id of f.bodyIdents) s.add(id);
    byName.set(f.name, s);
  }
  const syncMemo = new Map<string, boolean>();
  const usesSync = (name: string): boolean => {
    const known = syncMemo.get(name);
    if (known !== undefined) return known;
    syncMemo.set(name, false);
    const ids = byName.get(name);
    let r = false;
    if (ids) for (const id of ids) if (SYNC.test(id) || (id !== name && byName.has(id) && usesSync(id))) r = true;
    syncMemo.set(name, r);
    return r;
  };
  for (const k of kernels) k.usesSync = usesSync(k.functionName);
  const seen = new Set<string>();
  for (const k of kernels) {
    if (seen.has(k.name)) throw new MslError(file, k.line, 1, `two kernels are named '${k.name}'`);
    seen.add(k.name);
  }
  return { file, source, tokens: toks, kernels, structs, bodies };
}
