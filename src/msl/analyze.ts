/**
 * The MSL front end's analysis: a token-level parser (not a full C++ parser)
 * that finds what the backends need — structs and their fields, functions and
 * their bodies, kernels (plain, [[kernel]], templates with [[host_name]]
 * instantiations) with each parameter's address space, type and attribute —
 * rejects features no backend supports, naming them, and records every place
 * where MSL differs from C++ as a rewrite site. The emitters (emit-cpp.ts,
 * and a CUDA one beside it) choose what each site becomes; the rest of the
 * source is kept byte for byte.
 */
import { MslError } from './errors.js';
import {
  ADDRESS_SPACES,
  BUILTIN_TYPE,
  BUILTINS,
  IGNORED_PARAM_ATTRS,
  SWIZZLE,
  SYNC_IDENT,
  UNSUPPORTED_ATTRS,
  UNSUPPORTED_IDENTS,
  UNSUPPORTED_QUALIFIERS,
  VECTOR_TYPE,
} from './features.js';
import { lex, lexDirectiveBody, type PpLine, type Token } from './lexer.js';
import { findLoops, type LoopSite } from './loops.js';
import type { AddressSpace, MslKernel, MslParam, MslStruct, MslStructField, ParamAttr } from './types.js';

export interface AttrItem {
  /** "buffer", "host_name", "metal::foo" ... */
  name: string;
  tok: Token;
  /** Tokens between the item's parentheses. */
  args: Token[];
}

interface Attr {
  /** Token index of the first '[' and of the last ']'. */
  open: number;
  close: number;
  items: AttrItem[];
}

/** A source range [start, end) (offsets). */
export type Range = [number, number];

/** `threadgroup T a[N], *p;` in a function body: storage shared by the threadgroup. */
export interface TgDeclSite {
  kind: 'tgDecl';
  start: number;
  end: number;
  /** Qualifiers written before `threadgroup` (const, volatile; static dropped). */
  prefix: Range | null;
  /** The declared element type (after `threadgroup`). */
  base: Range;
  decls: TgDeclarator[];
  line: number;
}

export type TgDeclarator =
  | { storage: true; name: string; dims: Range[]; slot: number }
  | { storage: false; range: Range };

export type Site =
  | {
      kind: 'remove';
      start: number;
      end: number;
      inPp: boolean;
      what: 'attribute' | 'kernel' | 'addressSpace' | 'instantiation';
      /** An address space of a variable declared at program (namespace) scope: `constant float k[4] = {...};`. */
      programScope?: boolean;
      /** The removed word (address spaces). */
      word?: string;
      /** Program scope: the declaration already says const or constexpr. */
      constQualified?: boolean;
      /** Program scope: the declaration says constexpr. */
      isConstexpr?: boolean;
      /** Program scope: one declarator of an integer (or bool) type with an initializer (`constant uint N = 4096;`). */
      scalarInit?: boolean;
    }
  /** Where a function is declared or defined (after any template header): CUDA marks it __device__. */
  | { kind: 'fnDecl'; start: number; end: number; inPp: false }
  /** An MSL vector type name (float4, packed_half3, ...). */
  | { kind: 'vecType'; start: number; end: number; inPp: boolean; name: string }
  | { kind: 'swizzle'; start: number; end: number; inPp: boolean; name: string }
  | { kind: 'half'; start: number; end: number; inPp: boolean; value: string }
  | { kind: 'float'; start: number; end: number; inPp: boolean; value: string }
  | { kind: 'metalInclude'; start: number; end: number; inPp: true; text: string }
  | (TgDeclSite & { inPp: false });

/** What the emitters need about a kernel beyond MslKernel. */
export interface KernelExtra {
  /** Namespaces enclosing the function ('' for an anonymous one). */
  ns: string[];
  /** The unqualified function name. */
  bareName: string;
  /** The function's definition (a template's, shared by its instantiations), attributes and template header included. */
  def: Range;
  /** Its first and last .metal lines. */
  defLines: [number, number];
  /** An explicit instantiation's statement (kernels of a template). */
  inst: Range | null;
}

/**
 * A kernel the front end could not take (a malformed signature, an
 * unsupported feature in its body) while the rest of the file parses: with
 * `perKernel`, it is reported here and left out of the emitted code.
 */
export interface FailedKernel {
  name: string;
  line: number;
  error: MslError;
  /** Source ranges to leave out of the emission (its definition, or its instantiation statement). */
  ranges: Range[];
  /** Its first and last .metal lines. */
  defLines: [number, number];
}

export interface AnalyzeOptions {
  /** Errors inside one kernel fail that kernel only (FailedKernel) instead of the file. */
  perKernel?: boolean;
}

export interface Analysis {
  file: string;
  source: string;
  kernels: MslKernel[];
  extras: KernelExtra[];
  structs: MslStruct[];
  sites: Site[];
  /** The loops of the code, for the watchdog's cooperative stop (loops.ts). */
  loops: LoopSite[];
  /** Kernels that failed in the front end (perKernel only; otherwise the first error is thrown). */
  failed: FailedKernel[];
  /** Offsets of the preprocessor lines [start, end), kept when a kernel's definition is left out. */
  ppLines: Range[];
  /** Per kernel (as `kernels`): identifiers its body uses, through the functions and macros of the file it calls. */
  idents: Set<string>[];
  /** Per kernel: the threadgroup arrays and variables declared in its body. */
  threadgroupDecls: ThreadgroupDecl[][];
}

/** `threadgroup float a[N];` in a kernel's body. */
export interface ThreadgroupDecl {
  name: string;
  /** The element type as written. */
  type: string;
  /** Each dimension's value, null where it is not an integer constant the front end can evaluate. */
  dims: (number | null)[];
  line: number;
}

interface Ctx {
  ns: string[];
  inStruct: boolean;
}

interface TemplateHeader {
  params: string[];
  /** Token index of `template`. */
  start: number;
}

interface KernelTemplate {
  tparams: string[];
  /** The template's definition, `template` to its closing brace (offsets). */
  def: Range;
  open: number;
  close: number;
  idents: Set<string>;
  ns: string[];
  line: number;
}

interface PTok {
  text: string;
  tok: Token;
  space: boolean;
}

const QUALIFIER_WORDS = new Set(['const', 'volatile', 'static']);
const SPECIAL_PAREN_PREV = new Set(['decltype', 'alignas', '__attribute__', 'sizeof', 'alignof', 'noexcept', 'static_assert', 'requires', 'throw']);
const NON_RETURN_WORDS = new Set(['kernel', 'static', 'inline', 'extern', 'constexpr', '__attribute__', 'METAL_FUNC', 'metal']);

function collapse(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Canonical spelling of a type from its words: spaces only between identifier characters, and after commas. */
function canonical(words: string[]): string {
  let s = '';
  for (const w of words) {
    if (s && /[A-Za-z0-9_]$/.test(s) && /^[A-Za-z0-9_]/.test(w)) s += ' ';
    s += w;
  }
  return s.replace(/,(?=\S)/g, ', ');
}

class Analyzer {
  readonly toks: Token[];
  readonly pp: PpLine[];
  readonly match: Int32Array;
  readonly attrAt = new Map<number, Attr>();
  readonly inAttr: Uint8Array;
  readonly sites: Site[] = [];
  readonly structs: MslStruct[] = [];
  readonly fieldNames = new Set<string>();
  /** Function (and macro) name → identifiers of its body, for usesSync. */
  readonly graph = new Map<string, Set<string>>();
  readonly fnMacros = new Set<string>();
  readonly constants = new Map<string, number>();
  readonly kernelTemplates = new Map<string, KernelTemplate>();
  readonly kernels: { k: MslKernel; extra: KernelExtra; idents: Set<string>; nameTok: Token }[] = [];
  tgSlot = 0;
  readonly failed: FailedKernel[] = [];
  /** Kernel templates that failed: their instantiations fail with the same error. */
  readonly failedTemplates = new Map<string, FailedKernel>();
  /** Unsupported features found before parsing (perKernel): failed kernels if inside one, else file errors. */
  readonly unsupported: { tok: number; msg: string }[] = [];

  constructor(
    readonly source: string,
    readonly file: string,
    readonly perKernel = false,
  ) {
    const lexed = lex(source, file);
    // code in `#if 0` (or the #else of `#if 1`) is not seen by the compiler: nor by us
    const dead = inactiveRanges(lexed.pp, source);
    const live = (offset: number): boolean => !dead.some(([a, b]) => offset >= a && offset < b);
    this.toks = dead.length ? lexed.tokens.filter((t) => live(t.start)) : lexed.tokens;
    this.pp = dead.length ? lexed.pp.filter((p) => live(p.start)) : lexed.pp;
    this.match = new Int32Array(this.toks.length).fill(-1);
    this.inAttr = new Uint8Array(this.toks.length);
  }

  // ---------------------------------------------------------------- helpers

  fail(tok: Token | undefined, msg: string): never {
    if (!tok) {
      const last = this.toks[this.toks.length - 1];
      throw new MslError(this.file, last ? last.line : 1, last ? last.col : 1, msg);
    }
    throw new MslError(this.file, tok.line, tok.col, msg);
  }

  text(i: number): string {
    return i >= 0 && i < this.toks.length ? this.toks[i].text : '';
  }

  isMemberOrScoped(i: number): boolean {
    const p = this.text(i - 1);
    return p === '.' || p === '->' || p === '::' || p === '.*' || p === '->*';
  }

  // ------------------------------------------------------------ pre-passes

  matchBrackets(): void {
    const stack: number[] = [];
    const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
    for (let i = 0; i < this.toks.length; i++) {
      const x = this.toks[i].text;
      if (this.toks[i].kind !== 'punct') continue;
      if (x === '(' || x === '[' || x === '{') stack.push(i);
      else if (x === ')' || x === ']' || x === '}') {
        const o = stack.pop();
        if (o === undefined) this.fail(this.toks[i], `unbalanced '${x}'`);
        if (this.toks[o].text !== pairs[x]) this.fail(this.toks[i], `'${this.toks[o].text}' at line ${this.toks[o].line} is closed by '${x}'`);
        this.match[o] = i;
        this.match[i] = o;
      }
    }
    const o = stack.pop();
    if (o !== undefined) this.fail(this.toks[o], `'${this.toks[o].text}' is never closed`);
  }

  findAttributes(): void {
    for (let i = 0; i + 1 < this.toks.length; i++) {
      if (this.text(i) !== '[' || this.text(i + 1) !== '[') continue;
      const innerClose = this.match[i + 1];
      const outerClose = this.match[i];
      if (outerClose !== innerClose + 1) continue;
      const items = this.attrItems(i + 2, innerClose);
      this.attrAt.set(i, { open: i, close: outerClose, items });
      for (let k = i; k <= outerClose; k++) this.inAttr[k] = 1;
      i = outerClose;
    }
  }

  attrItems(a: number, b: number): AttrItem[] {
    const items: AttrItem[] = [];
    let k = a;
    while (k < b) {
      const tok = this.toks[k];
      let name = '';
      while (k < b && (this.toks[k].kind === 'ident' || this.text(k) === '::')) name += this.toks[k++].text;
      if (!name) this.fail(tok, `malformed attribute '${this.text(k)}'`);
      let args: Token[] = [];
      if (this.text(k) === '(') {
        const close = this.match[k];
        args = this.toks.slice(k + 1, close);
        k = close + 1;
      }
      items.push({ name, tok, args });
      if (k < b && this.text(k) !== ',') this.fail(this.toks[k], `unexpected '${this.text(k)}' in attribute`);
      k++;
    }
    return items;
  }

  checkUnsupported(): void {
    for (let i = 0; i < this.toks.length; i++) {
      const t = this.toks[i];
      if (t.kind !== 'ident' || this.inAttr[i]) continue;
      const p = this.text(i - 1);
      if (p === '.' || p === '->') continue;
      for (const [re, msg] of UNSUPPORTED_IDENTS) if (re.test(t.text)) this.unsupportedAt(i, msg(t.text));
    }
    for (const attr of this.attrAt.values()) {
      for (const it of attr.items) {
        const msg = UNSUPPORTED_ATTRS.get(it.name.replace(/^metal::/, ''));
        if (msg) this.unsupportedAt(this.toks.indexOf(it.tok, attr.open), msg);
      }
    }
  }

  unsupportedAt(tok: number, msg: string): void {
    if (!this.perKernel) this.fail(this.toks[tok], msg);
    this.unsupported.push({ tok, msg });
  }

  /** Deferred unsupported features (perKernel): the kernels whose definition holds one fail; elsewhere the file does. */
  settleUnsupportedInKernels(): void {
    for (const u of this.unsupported) {
      const t = this.toks[u.tok];
      const e = new MslError(this.file, t.line, t.col, u.msg);
      const inside = (r: Range): boolean => t.start >= r[0] && t.start < r[1];
      if (this.failed.some((f) => f.ranges.some(inside))) continue;
      const hit = this.kernels.filter((x) => inside(x.extra.def));
      if (hit.length === 0) throw e;
      for (const x of hit) {
        this.failed.push({ name: x.k.name, line: e.line, error: e, ranges: x.extra.inst ? [x.extra.inst, x.extra.def] : [x.extra.def], defLines: x.extra.defLines });
      }
      this.kernels.splice(0, this.kernels.length, ...this.kernels.filter((x) => !hit.includes(x)));
    }
  }

  /** Macros: names for the call graph; bodies get the same rewrites as code. */
  scanDirectives(): void {
    for (const pp of this.pp) {
      if (pp.directive === 'include') {
        if (/^\s*<metal_\w*>/.test(this.source.slice(pp.bodyStart, pp.end))) {
          this.sites.push({ kind: 'metalInclude', start: pp.start, end: pp.end, inPp: true, text: pp.text });
        }
        continue;
      }
      if (pp.directive !== 'define') continue;
      const body = lexDirectiveBody(this.source, this.file, pp);
      const name = body[0];
      if (!name || name.kind !== 'ident') continue;
      let from = 1;
      if (body[1]?.text === '(' && body[1].start === name.end) {
        this.fnMacros.add(name.text);
        while (from < body.length && body[from].text !== ')') from++;
        from++;
      }
      const rest = body.slice(from);
      this.graph.set(name.text, new Set(rest.filter((t, q) => t.kind === 'ident' && this.counts(t.text, rest[q + 1]?.text ?? '(')).map((t) => t.text)));
      if (from === 1) {
        const v = this.evalTokens(rest);
        if (v !== null) this.constants.set(name.text, v);
      }
      this.macroSites(rest);
    }
  }

  macroSites(body: Token[]): void {
    for (let i = 0; i < body.length; i++) {
      const t = body[i];
      if (t.text === '[' && body[i + 1]?.text === '[') {
        // [[ ... ]] within the macro
        let depth = 0;
        let j = i;
        for (; j < body.length; j++) {
          if (body[j].text === '[') depth++;
          else if (body[j].text === ']' && --depth === 0) break;
        }
        if (j < body.length) {
          this.sites.push({ kind: 'remove', start: t.start, end: body[j].end, inPp: true, what: 'attribute' });
          i = j;
          continue;
        }
      }
      const prev = body[i - 1]?.text ?? '';
      const member = prev === '.' || prev === '->';
      if (t.kind === 'ident' && !member && prev !== '#' && prev !== '##' && VECTOR_TYPE.test(t.text)) {
        this.sites.push({ kind: 'vecType', start: t.start, end: t.end, inPp: true, name: t.text });
      } else if (t.kind === 'ident' && !member && prev !== '::' && prev !== '#' && prev !== '##') {
        if (t.text === 'kernel') this.sites.push({ kind: 'remove', start: t.start, end: t.end, inPp: true, what: 'kernel' });
        else if (ADDRESS_SPACES.has(t.text)) {
          if (t.text === 'threadgroup' && !body.slice(i + 1).some((x) => x.text === '*' || x.text === '&')) {
            this.fail(t, 'a threadgroup variable declared through a macro is not supported by the cpu backend: declare it in the kernel body');
          }
          this.sites.push({ kind: 'remove', start: t.start, end: t.end, inPp: true, what: 'addressSpace', word: t.text });
        }
      } else if (t.kind === 'ident' && prev === '.' && SWIZZLE.test(t.text) && body[i + 1]?.text !== '(') {
        // field names are known only after the structs are parsed: filtered in finish()
        this.sites.push({ kind: 'swizzle', start: t.start, end: t.end, inPp: true, name: t.text });
      } else if (t.kind === 'number' && t.half !== undefined) {
        this.sites.push({ kind: 'half', start: t.start, end: t.end, inPp: true, value: t.half });
      } else if (t.kind === 'number' && t.float !== undefined) {
        this.sites.push({ kind: 'float', start: t.start, end: t.end, inPp: true, value: t.float });
      }
    }
  }

  // ------------------------------------------------------------- structure

  /** Index of the '>' closing the '<' at i, and how many of that token's characters are inside. */
  matchAngle(i: number): { idx: number; inner: number } {
    let depth = 0;
    for (let j = i; j < this.toks.length; j++) {
      const x = this.text(j);
      if (this.toks[j].kind !== 'punct') continue;
      if (x === '(' || x === '[' || x === '{') {
        if (x === '{') break;
        j = this.match[j];
        continue;
      }
      if (x === '<') depth++;
      else if (x === '>') {
        if (--depth === 0) return { idx: j, inner: 0 };
      } else if (x === '>>') {
        if (depth === 1) return { idx: j, inner: 0 };
        depth -= 2;
        if (depth === 0) return { idx: j, inner: 1 };
      } else if (x === ';' || x === '}' || x === ')') break;
    }
    this.fail(this.toks[i], "unbalanced '<'");
  }

  /** Index of the '<' opening the template arguments that end at the '>' token at i (walking back). */
  matchAngleBack(i: number): number {
    let depth = 0;
    for (let j = i; j >= 0; j--) {
      const x = this.text(j);
      if (x === ')' || x === ']') {
        j = this.match[j];
        continue;
      }
      if (x === '>') depth++;
      else if (x === '>>') depth += 2;
      else if (x === '<') {
        if (--depth === 0) return j;
      } else if (x === ';' || x === '{' || x === '}') break;
    }
    this.fail(this.toks[i], "unbalanced '>'");
  }

  /**
   * Scans a declaration from i: to its ';' (end, body=false) or to the '{' of
   * a function body (end, body=true, paren = the parameter list's '(').
   */
  scanDecl(i: number, to: number): { end: number; body: boolean; paren: number } {
    let paren = -1;
    let eq = false;
    let ctorInit = false;
    for (let j = i; j < to; j++) {
      const x = this.text(j);
      if (this.toks[j].kind !== 'punct') continue;
      if (x === ':' && paren >= 0 && !eq) ctorInit = true;
      if (x === '[') {
        j = this.match[j];
        continue;
      }
      if (x === '(') {
        if (paren < 0 && !eq && !SPECIAL_PAREN_PREV.has(this.text(j - 1))) paren = j;
        j = this.match[j];
        continue;
      }
      if (x === '=') eq = true;
      else if (x === ';') return { end: j, body: false, paren };
      else if (x === '{') {
        // a constructor's member initialiser `b{0}` is not its body
        const memberInit = ctorInit && (this.toks[j - 1].kind === 'ident' || this.text(j - 1) === '>');
        if (paren >= 0 && !eq && !memberInit) return { end: j, body: true, paren };
        j = this.match[j];
      } else if (x === '}' || x === ')' || x === ']') this.fail(this.toks[j], `unexpected '${x}'`);
    }
    this.fail(this.toks[i], "expected ';' after this declaration");
  }

  parseSeq(from: number, to: number, ctx: Ctx): void {
    let i = from;
    let tmpl: TemplateHeader | null = null;
    while (i < to) {
      const t = this.toks[i];
      const x = t.text;
      if (x === ';') {
        i++;
        tmpl = null;
        continue;
      }
      if (t.kind === 'punct' && (x === '}' || x === ')' || x === ']')) this.fail(t, `unexpected '${x}'`);
      if (t.kind === 'ident') {
        if (x === 'namespace' || (x === 'inline' && this.text(i + 1) === 'namespace')) {
          i = this.namespaceDecl(x === 'inline' ? i + 1 : i, ctx);
          continue;
        }
        if (x === 'template') {
          if (this.text(i + 1) === '<') {
            const close = this.matchAngle(i + 1);
            tmpl = { params: this.templateParamNames(i + 2, close.idx), start: i };
            i = close.idx + 1;
          } else {
            i = this.instantiationOrFail(i, to, ctx);
            tmpl = null;
          }
          continue;
        }
        if (x === 'extern' && this.toks[i + 1]?.kind === 'string') {
          if (this.text(i + 2) === '{') {
            const close = this.match[i + 2];
            this.parseSeq(i + 3, close, ctx);
            i = close + 1;
          } else i += 2;
          continue;
        }
        if (x === 'typedef' && /^(struct|class|union)$/.test(this.text(i + 1)) && this.isStructDef(i + 1)) {
          i = this.structDecl(i + 1, to, ctx, true);
          tmpl = null;
          continue;
        }
        if ((x === 'struct' || x === 'class' || x === 'union') && this.isStructDef(i)) {
          i = this.structDecl(i, to, ctx, false);
          tmpl = null;
          continue;
        }
        if (ctx.inStruct && (x === 'public' || x === 'private' || x === 'protected') && this.text(i + 1) === ':') {
          i += 2;
          continue;
        }
      }
      i = this.declaration(i, to, ctx, tmpl);
      tmpl = null;
    }
  }

  namespaceDecl(i: number, ctx: Ctx): number {
    let j = i + 1;
    const names: string[] = [];
    while (this.toks[j] && (this.toks[j].kind === 'ident' || this.text(j) === '::')) {
      if (this.toks[j].kind === 'ident' && this.text(j) !== 'inline') names.push(this.text(j));
      j++;
    }
    while (this.attrAt.has(j)) j = this.attrAt.get(j)!.close + 1;
    if (this.text(j) === '=') {
      while (j < this.toks.length && this.text(j) !== ';') j++;
      return j + 1;
    }
    if (this.text(j) !== '{') this.fail(this.toks[j] ?? this.toks[i], "expected '{' after namespace");
    const close = this.match[j];
    this.parseSeq(j + 1, close, { ns: [...ctx.ns, ...(names.length ? names : [''])], inStruct: false });
    return close + 1;
  }

  templateParamNames(a: number, b: number): string[] {
    const names: string[] = [];
    let start = a;
    let depth = 0;
    const piece = (s: number, e: number): void => {
      let last = '';
      for (let k = s; k < e; k++) {
        if (this.text(k) === '=') break;
        if (this.toks[k].kind === 'ident') last = this.text(k);
        if (this.text(k) === '<') {
          k = this.matchAngle(k).idx;
        }
      }
      if (last && !/^(typename|class|int|uint|bool|short|ushort|unsigned|size_t|long)$/.test(last)) names.push(last);
      else names.push('');
    };
    for (let k = a; k < b; k++) {
      const x = this.text(k);
      if (x === '(' || x === '[') k = this.match[k];
      else if (x === '<') depth++;
      else if (x === '>') depth--;
      else if (x === '>>') depth -= 2;
      else if (x === ',' && depth === 0) {
        piece(start, k);
        start = k + 1;
      }
    }
    if (start < b) piece(start, b);
    return names;
  }

  isStructDef(i: number): boolean {
    let j = i + 1;
    for (; j < this.toks.length; j++) {
      const x = this.text(j);
      if (this.attrAt.has(j)) {
        j = this.attrAt.get(j)!.close;
        continue;
      }
      if (x === 'alignas' && this.text(j + 1) === '(') {
        j = this.match[j + 1];
        continue;
      }
      if (x === '{') return true;
      if (x === ';' || x === '(' || x === '=' || x === ')' || x === '}' || x === '*' || x === '&') return false;
      if (x === '<') j = this.matchAngle(j).idx;
    }
    return false;
  }

  structDecl(i: number, to: number, ctx: Ctx, isTypedef: boolean, record = true): number {
    let j = i + 1;
    let name = '';
    let nameTok = this.toks[i];
    for (; this.text(j) !== '{'; j++) {
      if (this.attrAt.has(j)) j = this.attrAt.get(j)!.close;
      else if (this.text(j) === 'alignas') j = this.match[j + 1];
      else if (this.text(j) === ':') {
        while (this.text(j + 1) !== '{') j++;
      } else if (this.toks[j].kind === 'ident' && !name && this.text(j) !== 'final') {
        name = this.text(j);
        nameTok = this.toks[j];
      }
    }
    const open = j;
    const close = this.match[open];
    const fields: MslStructField[] = [];
    this.members(open + 1, close, fields, ctx);
    // declarators after the closing brace: a typedef's name, or variables
    let k = close + 1;
    let lastIdent = '';
    for (; k < to && this.text(k) !== ';'; k++) {
      const x = this.text(k);
      if (x === '(' || x === '[' || x === '{') k = this.match[k];
      else if (this.toks[k].kind === 'ident') lastIdent = x;
    }
    if (isTypedef && lastIdent) name = lastIdent;
    if (name && record) this.structs.push({ name, fields, line: nameTok.line });
    for (const f of fields) this.fieldNames.add(f.name);
    if (k >= to) this.fail(this.toks[close], "expected ';' after struct");
    return k + 1;
  }

  members(from: number, to: number, fields: MslStructField[], ctx: Ctx): void {
    let i = from;
    const inner: Ctx = { ns: ctx.ns, inStruct: true };
    while (i < to) {
      const x = this.text(i);
      if (x === ';') {
        i++;
        continue;
      }
      if ((x === 'public' || x === 'private' || x === 'protected') && this.text(i + 1) === ':') {
        i += 2;
        continue;
      }
      if (x === 'template' && this.text(i + 1) === '<') {
        i = this.matchAngle(i + 1).idx + 1;
        continue;
      }
      if ((x === 'struct' || x === 'class' || x === 'union') && this.isStructDef(i)) {
        i = this.structDecl(i, to, inner, false);
        continue;
      }
      const r = this.scanDecl(i, to);
      if (r.body) {
        const close = this.match[r.end];
        const fn = this.functionHead(i, r.paren);
        this.fnDeclSite(i, r.end);
        this.addFunction(fn.name, this.body(r.end, close));
        i = close + 1;
        continue;
      }
      if (this.isPrototype(i, r.end, r.paren)) this.fnDeclSite(i, r.end);
      const first = this.firstNonAttr(i, r.end);
      const skip = /^(static|using|typedef|friend|enum|static_assert|constexpr)$/.test(this.text(first));
      if (!skip && r.paren < 0) this.fieldDecl(i, r.end, fields);
      i = r.end + 1;
    }
  }

  firstNonAttr(i: number, end: number): number {
    while (i < end && this.attrAt.has(i)) i = this.attrAt.get(i)!.close + 1;
    return i;
  }

  /** `T a, b[4], *c;` (tokens [a, b)) → fields. */
  fieldDecl(a: number, b: number, fields: MslStructField[]): void {
    const idx: number[] = [];
    for (let k = a; k < b; k++) {
      if (this.attrAt.has(k)) {
        k = this.attrAt.get(k)!.close;
        continue;
      }
      idx.push(k);
    }
    if (idx.length < 2) return;
    // the first declarator's name: the identifier before the first of [ = : { , at angle depth 0
    let angle = 0;
    let f = idx.length;
    for (let q = 0; q < idx.length; q++) {
      const x = this.text(idx[q]);
      if (x === '<') angle++;
      else if (x === '>') angle--;
      else if (x === '>>') angle -= 2;
      else if (x === '(' && angle > 0) {
        const m = this.match[idx[q]];
        while (q + 1 < idx.length && idx[q + 1] <= m) q++;
      } else if (angle <= 0 && (x === '[' || x === '=' || x === ':' || x === '{' || x === ',')) {
        f = q;
        break;
      }
    }
    let d = f - 1;
    if (d < 1 || this.toks[idx[d]].kind !== 'ident') return;
    while (d - 1 >= 1 && /^(\*|&|&&)$/.test(this.text(idx[d - 1]))) d--;
    const baseWords = idx.slice(0, d).map((k) => this.text(k)).filter((w) => !ADDRESS_SPACES.has(w));
    const base = canonical(baseWords);
    // declarators: split the rest at depth-0 commas
    const decls: number[][] = [];
    let cur: number[] = [];
    angle = 0;
    for (let q = d; q < idx.length; q++) {
      const k = idx[q];
      const x = this.text(k);
      if (x === '(' || x === '[' || x === '{') {
        const m = this.match[k];
        cur.push(k);
        while (q + 1 < idx.length && idx[q + 1] <= m) cur.push(idx[++q]);
        continue;
      }
      if (x === '<') angle++;
      else if (x === '>') angle--;
      if (x === ',' && angle <= 0) {
        decls.push(cur);
        cur = [];
      } else cur.push(k);
    }
    decls.push(cur);
    for (const dk of decls) {
      let q = 0;
      let ptr = '';
      while (q < dk.length && /^(\*|&|&&|const|volatile)$/.test(this.text(dk[q]))) {
        if (this.text(dk[q]) !== 'const' && this.text(dk[q]) !== 'volatile') ptr += this.text(dk[q]);
        q++;
      }
      const nameK = dk[q];
      if (nameK === undefined || this.toks[nameK].kind !== 'ident') continue;
      q++;
      let dims = 0;
      let product: number | null = 1;
      while (q < dk.length && this.text(dk[q]) === '[') {
        const close = this.match[dk[q]];
        const v = this.evalRange(dk[q] + 1, close);
        product = v === null || product === null ? null : product * v;
        dims++;
        while (q < dk.length && dk[q] <= close) q++;
      }
      const arrayLength = dims > 0 ? product : null;
      fields.push({ name: this.text(nameK), type: ptr ? `${base}${ptr}` : base, arrayLength });
    }
  }

  /** A declaration or definition at namespace (or struct) scope starting at i. */
  declaration(i: number, to: number, ctx: Ctx, tmpl: TemplateHeader | null): number {
    const t = this.toks[i];
    // a function-like macro invoked at namespace scope: NAME(...) [;]
    if (t.kind === 'ident' && this.fnMacros.has(t.text) && this.text(i + 1) === '(') {
      const close = this.match[i + 1];
      if (this.text(close + 1) === '{') {
        const bclose = this.match[close + 1];
        this.addFunction(t.text, this.body(close + 1, bclose));
        return bclose + 1;
      }
      return this.text(close + 1) === ';' ? close + 2 : close + 1;
    }
    const r = this.scanDecl(i, to);
    const headEnd = r.paren >= 0 ? r.paren : r.end;
    this.checkQualifiers(i, headEnd);
    const first = this.firstNonAttr(i, r.end);
    if (r.body) {
      const close = this.match[r.end];
      const defStart = tmpl ? tmpl.start : i;
      const def: Range = [this.toks[defStart].start, this.toks[close].end];
      const defLines: [number, number] = [this.toks[defStart].line, this.toks[close].line];
      const kernelLike = this.perKernel && !ctx.inStruct && this.looksLikeKernel(i, r.paren);
      try {
        const fn = this.functionHead(i, r.paren);
        this.fnDeclSite(i, r.end);
        const idents = this.body(r.end, close);
        this.addFunction(fn.name, idents);
        const kw = this.kernelWords(i, r.paren);
        if (kw.isKernel && !ctx.inStruct) {
          this.checkReturnsVoid(i, fn.nameIdx, fn.name);
          const pclose = this.match[r.paren];
          if (tmpl) {
            this.kernelTemplates.set(fn.name, { tparams: tmpl.params, def, open: r.paren, close: pclose, idents, ns: ctx.ns, line: this.toks[fn.nameIdx].line });
          } else {
            const params = this.paramList(r.paren, pclose, null);
            const targs = fn.targs ? this.angleText(fn.targs[0], fn.targs[1]) : null;
            this.addKernel(kw.hostName ?? fn.name, fn.name, targs, params, ctx.ns, idents, this.toks[fn.nameIdx], { def, defLines, inst: null });
          }
        }
      } catch (e) {
        if (!kernelLike || !(e instanceof MslError)) throw e;
        const name = this.kernelNameOf(i, r.paren);
        const fk: FailedKernel = { name, line: e.line, error: e, ranges: [def], defLines };
        if (tmpl) this.failedTemplates.set(name, fk);
        else this.failed.push(fk);
      }
      return close + 1;
    }
    if (this.isPrototype(i, r.end, r.paren)) this.fnDeclSite(i, r.end);
    else if (!ctx.inStruct && r.paren < 0) this.programScope.push([i, r.end]);
    if (!ctx.inStruct && this.text(first) === 'threadgroup' && r.paren < 0) {
      this.fail(this.toks[first], 'threadgroup variables must be declared inside a kernel function, not at program scope');
    }
    // an integer constant at namespace scope: for array sizes of struct fields
    if (!ctx.inStruct && r.paren < 0) this.recordConstant(i, r.end);
    return r.end + 1;
  }

  /** Whether the function declared at i (parameter list at paren) is a kernel, without failing on anything malformed. */
  looksLikeKernel(i: number, paren: number): boolean {
    for (let k = i; k < paren; k++) {
      const attr = this.attrAt.get(k);
      if (attr) {
        if (attr.items.some((it) => it.name === 'kernel')) return true;
        k = attr.close;
      } else if (this.text(k) === 'kernel' && !this.isMemberOrScoped(k)) return true;
    }
    return false;
  }

  /** A kernel's name for an error report: its [[host_name]], else the identifier before its parameter list. */
  kernelNameOf(i: number, paren: number): string {
    try {
      const kw = this.kernelWords(i, paren);
      if (kw.hostName !== null) return kw.hostName;
    } catch {
      // a malformed host_name: the function's name then
    }
    for (let k = paren - 1; k >= i; k--) {
      if (this.text(k) === '>' || this.text(k) === '>>') {
        let depth = 0;
        for (; k >= i; k--) {
          if (this.text(k) === '>') depth++;
          else if (this.text(k) === '>>') depth += 2;
          else if (this.text(k) === '<' && --depth <= 0) break;
        }
        continue;
      }
      if (this.toks[k].kind === 'ident') return this.text(k);
    }
    return `<kernel at line ${this.toks[i].line}>`;
  }

  /** Token ranges [first, ';'] of variables declared at program (namespace) scope. */
  readonly programScope: [number, number][] = [];

  /**
   * A function declaration without a body (`float f(float);`, `T get() const;`):
   * a parameter list, no `=` after it (`= default`, `= delete`, an initialiser),
   * and not a typedef, using or friend declaration of another kind.
   */
  isPrototype(i: number, end: number, paren: number): boolean {
    if (paren < 0) return false;
    const first = this.firstNonAttr(i, end);
    if (/^(typedef|using|static_assert|friend|extern|template|return)$/.test(this.text(first))) return false;
    if (this.functionHead(i, paren).name === '') return false;
    for (let k = this.match[paren] + 1; k < end; k++) if (this.text(k) === '=') return false;
    return true;
  }

  /** Marks where the function declared at tokens [i, end) begins (after its attributes). */
  fnDeclSite(i: number, end: number): void {
    const first = this.firstNonAttr(i, end);
    const t = this.toks[first];
    if (t) this.sites.push({ kind: 'fnDecl', start: t.start, end: t.start, inPp: false });
  }

  recordConstant(a: number, b: number): void {
    let eq = -1;
    for (let k = a; k < b; k++) {
      const x = this.text(k);
      if (x === ',' || x === '[' || x === '{' || x === '(') return;
      if (x === '=') {
        eq = k;
        break;
      }
    }
    if (eq < 1 || this.toks[eq - 1].kind !== 'ident') return;
    const v = this.evalRange(eq + 1, b);
    if (v !== null) this.constants.set(this.text(eq - 1), v);
  }

  checkQualifiers(a: number, b: number): void {
    const first = this.firstNonAttr(a, b);
    for (let k = a; k < b; k++) {
      if (this.attrAt.has(k)) {
        k = this.attrAt.get(k)!.close;
        continue;
      }
      const msg = UNSUPPORTED_QUALIFIERS.get(this.text(k));
      if (!msg || this.toks[k + 1]?.kind !== 'ident') continue;
      if (k === first || /^(vertex|fragment|visible)$/.test(this.text(k))) this.fail(this.toks[k], msg);
    }
  }

  kernelWords(a: number, b: number): { isKernel: boolean; hostName: string | null; hostTok: Token | null } {
    let isKernel = false;
    let hostName: string | null = null;
    let hostTok: Token | null = null;
    for (let k = a; k < b; k++) {
      const attr = this.attrAt.get(k);
      if (attr) {
        for (const it of attr.items) {
          if (it.name === 'kernel') isKernel = true;
          if (it.name === 'host_name') {
            if (it.args.length === 0 || it.args.some((a) => a.kind !== 'string')) this.fail(it.tok, '[[host_name(...)]] needs a string literal');
            hostName = it.args.map((a) => unescapeC(a.text.replace(/^(u8|u|U|L)/, '').slice(1, -1))).join('');
            hostTok = it.tok;
          }
        }
        k = attr.close;
        continue;
      }
      if (this.text(k) === 'kernel' && !this.isMemberOrScoped(k)) isKernel = true;
    }
    return { isKernel, hostName, hostTok };
  }

  checkReturnsVoid(a: number, nameIdx: number, name: string): void {
    const words: number[] = [];
    for (let k = a; k < nameIdx; k++) {
      if (this.attrAt.has(k)) {
        k = this.attrAt.get(k)!.close;
        continue;
      }
      if (this.text(k) === '__attribute__' && this.text(k + 1) === '(') {
        k = this.match[k + 1];
        continue;
      }
      if (this.text(k) === '::') {
        words.pop();
        continue;
      }
      if (!NON_RETURN_WORDS.has(this.text(k))) words.push(k);
    }
    if (words.length !== 1 || this.text(words[0]) !== 'void') {
      this.fail(this.toks[words[0] ?? nameIdx], `kernel function '${name}' must return void`);
    }
  }

  /** The function's name before its '(' (and the template arguments of `name<...>(`). */
  functionHead(a: number, paren: number): { name: string; nameIdx: number; targs: [number, number] | null } {
    let p = paren - 1;
    let targs: [number, number] | null = null;
    if ((this.text(p) === '>' || this.text(p) === '>>') && p > a) {
      const lt = this.matchAngleBack(p);
      targs = [lt, p];
      p = lt - 1;
    }
    if (p < a) return { name: '', nameIdx: paren, targs };
    if (this.toks[p].kind !== 'ident') {
      // operator+ (...), operator() (...)
      for (let k = p; k >= a && k >= p - 3; k--) if (this.text(k) === 'operator') return { name: 'operator', nameIdx: k, targs: null };
      return { name: '', nameIdx: p, targs };
    }
    return { name: this.text(p), nameIdx: p, targs };
  }

  /** Source text between the '<' at lt and its closing '>' (token index gt), collapsed. */
  angleText(lt: number, gt: number): string {
    const end = this.text(gt) === '>>' ? this.toks[gt].start + 1 : this.toks[gt].start;
    return collapse(this.source.slice(this.toks[lt].end, end));
  }

  addFunction(name: string, idents: Set<string>): void {
    if (!name) return;
    const s = this.graph.get(name);
    if (s) for (const id of idents) s.add(id);
    else this.graph.set(name, new Set(idents));
  }

  addKernel(
    name: string,
    bareName: string,
    templateArgs: string | null,
    params: MslParam[],
    ns: string[],
    idents: Set<string>,
    nameTok: Token,
    where: { def: Range; defLines: [number, number]; inst: Range | null },
  ): void {
    const qualified = ns.filter((n) => n !== '');
    const k: MslKernel = {
      name,
      functionName: [...qualified, bareName].join('::'),
      templateArgs,
      params,
      line: nameTok.line,
      usesSync: false,
    };
    this.kernels.push({ k, extra: { ns, bareName, ...where }, idents, nameTok });
  }

  /** `template [[host_name("x")]] kernel void foo<float>(...);` or `... decltype(foo<float>) foo<float>;` */
  instantiation(i: number, to: number, ctx: Ctx): number {
    const r = this.scanDecl(i, to);
    if (r.body) return this.match[r.end] + 1; // not an instantiation after all; leave it
    const end = r.end;
    const kw = this.kernelWords(i + 1, end);
    let params: MslParam[];
    let bareName: string;
    let targs: string;
    let nameTok: Token;
    let tpl: KernelTemplate | undefined;
    if (r.paren >= 0) {
      const fn = this.functionHead(i + 1, r.paren);
      tpl = this.kernelTemplates.get(fn.name);
      if (this.failedFrom(fn.name, kw, i, end)) return end + 1;
      if (!kw.isKernel && !(kw.hostName !== null && tpl)) return end + 1; // some other explicit instantiation
      nameTok = this.toks[fn.nameIdx];
      if (!fn.targs) this.fail(nameTok, `explicit instantiation of kernel '${fn.name}' needs template arguments (${fn.name}<...>)`);
      this.checkReturnsVoid(i + 1, fn.nameIdx, fn.name);
      bareName = fn.name;
      targs = this.angleText(fn.targs[0], fn.targs[1]);
      params = this.paramList(r.paren, this.match[r.paren], null);
    } else {
      // `decltype(foo<T>) foo<T>;` or `kernel_t foo<T>;` (a typedef of the function type)
      const gt = end - 1;
      if (this.text(gt) !== '>' && this.text(gt) !== '>>') {
        if (kw.isKernel) this.fail(this.toks[i], 'cannot parse this kernel instantiation: expected `template [[host_name("name")]] kernel void f<T>(...);`');
        return end + 1;
      }
      const lt = this.matchAngleBack(gt);
      nameTok = this.toks[lt - 1];
      tpl = nameTok.kind === 'ident' ? this.kernelTemplates.get(nameTok.text) : undefined;
      if (this.failedFrom(nameTok.text, kw, i, end)) return end + 1;
      if (!kw.isKernel && !(kw.hostName !== null && tpl)) return end + 1;
      if (!tpl) this.fail(nameTok, `kernel template '${nameTok.text}' is not defined before this instantiation`);
      targs = this.angleText(lt, gt);
      bareName = nameTok.text;
      const args = this.splitArgs(lt + 1, gt, this.text(gt) === '>>' ? 1 : 0);
      const subst = new Map<string, string>();
      tpl.tparams.forEach((p, q) => {
        if (p && args[q] !== undefined) subst.set(p, args[q]);
      });
      params = this.paramList(tpl.open, tpl.close, subst);
    }
    this.sites.push({ kind: 'remove', start: this.toks[i].start, end: this.toks[end].end, inPp: false, what: 'instantiation' });
    const idents = tpl ? tpl.idents : (this.graph.get(bareName) ?? new Set<string>());
    const ns = tpl ? tpl.ns : ctx.ns;
    const inst: Range = [this.toks[i].start, this.toks[end].end];
    const def = tpl ? tpl.def : inst;
    const defLines: [number, number] = tpl ? [this.lineAt(def[0]), this.lineAt(def[1] - 1)] : [this.toks[i].line, this.toks[end].line];
    this.addKernel(kw.hostName ?? `${bareName}<${targs}>`, bareName, targs, params, ns, idents, nameTok, { def, defLines, inst });
    return end + 1;
  }

  /** 1-based line of a source offset. */
  lineAt(offset: number): number {
    let n = 1;
    for (let k = 0; k < offset && k < this.source.length; k++) if (this.source.charCodeAt(k) === 10) n++;
    return n;
  }

  /** An instantiation (tokens i..end) of a kernel template that failed: a failed kernel with the template's error. */
  failedFrom(template: string, kw: { isKernel: boolean; hostName: string | null }, i: number, end: number): boolean {
    const ft = this.failedTemplates.get(template);
    if (!ft || !(kw.isKernel || kw.hostName !== null)) return false;
    const inst: Range = [this.toks[i].start, this.toks[end].end];
    this.failed.push({ ...ft, name: kw.hostName ?? template, ranges: [inst, ...ft.ranges] });
    this.usedFailedTemplates.add(template);
    return true;
  }

  readonly usedFailedTemplates = new Set<string>();

  /** `instantiation`, where a malformed one fails that kernel only (perKernel). */
  instantiationOrFail(i: number, to: number, ctx: Ctx): number {
    if (!this.perKernel) return this.instantiation(i, to, ctx);
    try {
      return this.instantiation(i, to, ctx);
    } catch (e) {
      if (!(e instanceof MslError)) throw e;
      const r = this.scanDecl(i, to);
      if (r.body || !this.looksLikeKernel(i + 1, r.paren >= 0 ? r.paren : r.end)) throw e;
      const name = this.kernelNameOf(i + 1, r.paren >= 0 ? r.paren : r.end);
      const range: Range = [this.toks[i].start, this.toks[r.end].end];
      this.failed.push({ name, line: e.line, error: e, ranges: [range], defLines: [this.toks[i].line, this.toks[r.end].line] });
      return r.end + 1;
    }
  }

  /** Template arguments between token a and the closing token b, split at depth-0 commas (source text). */
  splitArgs(a: number, b: number, inner: number): string[] {
    const out: string[] = [];
    let s = this.toks[a]?.start ?? 0;
    let depth = 0;
    for (let k = a; k < b; k++) {
      const x = this.text(k);
      if (x === '(' || x === '[' || x === '{') k = this.match[k];
      else if (x === '<') depth++;
      else if (x === '>') depth--;
      else if (x === '>>') depth -= 2;
      else if (x === ',' && depth === 0) {
        out.push(collapse(this.source.slice(s, this.toks[k].start)));
        s = this.toks[k].end;
      }
    }
    out.push(collapse(this.source.slice(s, this.toks[b].start + inner)));
    return out;
  }

  // ------------------------------------------------------------ parameters

  paramList(open: number, close: number, subst: Map<string, string> | null): MslParam[] {
    const ranges: [number, number][] = [];
    let s = open + 1;
    let angle = 0;
    for (let k = open + 1; k < close; k++) {
      const x = this.text(k);
      if (x === '(' || x === '[' || x === '{') k = this.match[k];
      else if (x === '<') angle++;
      else if (x === '>') angle = Math.max(0, angle - 1);
      else if (x === '>>') angle = Math.max(0, angle - 2);
      else if (x === ',' && angle === 0) {
        ranges.push([s, k]);
        s = k + 1;
      }
    }
    if (s < close) ranges.push([s, close]);
    const params: MslParam[] = [];
    const attrToks = new Map<MslParam, Token>();
    for (const [a, b] of ranges) {
      const p = this.param(a, b, subst, attrToks);
      if (p) params.push(p);
    }
    // Indices left unspecified: the first free one, in order (as Metal's compiler assigns them)
    for (const kind of ['buffer', 'threadgroup'] as const) {
      const used = new Set(params.flatMap((p) => (p.attr.kind === kind ? [p.attr.index] : [])));
      let next = 0;
      for (const p of params) {
        const wants = kind === 'buffer' ? p.addressSpace === 'device' || p.addressSpace === 'constant' : p.addressSpace === 'threadgroup';
        if (p.attr.kind !== 'none' || !wants) continue;
        while (used.has(next)) next++;
        if (next > 30) this.fail(attrToks.get(p), `parameter '${p.name}': no ${kind} index left (at most 31)`);
        p.attr = { kind, index: next };
        used.add(next);
      }
    }
    // duplicate indices
    const seen = new Map<string, MslParam>();
    for (const p of params) {
      if (p.attr.kind !== 'buffer' && p.attr.kind !== 'threadgroup') continue;
      const key = `${p.attr.kind}(${p.attr.index})`;
      const prev = seen.get(key);
      if (prev) this.fail(attrToks.get(p), `duplicate [[${key}]]: parameters '${prev.name}' (line ${prev.line}) and '${p.name}' are bound to the same index`);
      seen.set(key, p);
    }
    return params;
  }

  param(a: number, b: number, subst: Map<string, string> | null, attrToks: Map<MslParam, Token>): MslParam | null {
    const items: AttrItem[] = [];
    const pt: PTok[] = [];
    let prevEnd = -1;
    for (let k = a; k < b; k++) {
      const attr = this.attrAt.get(k);
      if (attr) {
        // an attribute between two parameters' tokens: a ',' is missing after it
        if (k > a && attr.close + 1 < b && !this.attrAt.has(attr.close + 1)) this.missingComma(attr.close + 1, k - 1, attr);
        items.push(...attr.items);
        prevEnd = -2; // an attribute counts as a space
        k = attr.close;
        continue;
      }
      const tok = this.toks[k];
      let text = tok.text;
      if (subst && tok.kind === 'ident' && subst.has(text) && !this.isMemberOrScoped(k)) text = subst.get(text)!;
      pt.push({ text, tok, space: prevEnd === -2 || (prevEnd >= 0 && tok.start > prevEnd) });
      prevEnd = tok.end;
    }
    if (pt.length === 0 || (pt.length === 1 && pt[0].text === 'void')) return null;
    // after a pointer's '*' (or a reference's '&') and its qualifiers comes the name, and nothing else
    const ind = pt.findIndex((q) => q.text === '*' || q.text === '&');
    if (ind >= 0) {
      let n = ind + 1;
      while (n < pt.length && /^(\*|&|const|volatile|restrict|__restrict|__restrict__)$/.test(pt[n].text)) n++;
      if (n + 1 < pt.length && pt[n].tok.kind === 'ident') {
        const at = this.toks.indexOf(pt[n + 1].tok, a);
        this.missingComma(at, this.toks.indexOf(pt[n].tok, a), null);
      }
    }
    const first = pt[0].tok;
    const last = pt[pt.length - 1];
    if (last.text === ']') this.fail(last.tok, 'array kernel parameters are not supported by the cpu backend (bind each buffer at its own index)');
    if (last.tok.kind !== 'ident' || pt.length < 2) this.fail(last.tok, 'kernel parameters must be named');
    if (pt.some((q) => q.text === '=')) this.fail(first, 'default arguments are not allowed on kernel parameters');
    const name = last.text;
    const typeToks = pt.slice(0, -1);
    let addressSpace: AddressSpace | null = null;
    const kept: PTok[] = [];
    for (const q of typeToks) {
      if (q.tok.kind === 'ident' && q.text === q.tok.text && ADDRESS_SPACES.has(q.text)) {
        if (addressSpace) this.fail(q.tok, `parameter '${name}' has two address spaces (${addressSpace} and ${q.text})`);
        addressSpace = q.text as AddressSpace;
      } else kept.push(q);
    }
    let cppType = '';
    kept.forEach((q, n) => {
      cppType += (n > 0 && q.space ? ' ' : '') + q.text;
    });
    const words = kept.map((q) => q.text);
    const stars = words.filter((w) => w === '*').length;
    const amps = words.filter((w) => w === '&').length;
    const nameTok = last.tok;
    if (words.includes('&&')) this.fail(nameTok, `parameter '${name}': rvalue references are not allowed on kernel parameters`);
    if (stars > 1 || amps > 1 || (stars && amps)) {
      this.fail(nameTok, `parameter '${name}': pointers to pointers (and references to pointers) are not supported on kernel parameters`);
    }
    const kind: MslParam['kind'] = stars ? 'pointer' : amps ? 'reference' : 'value';
    const firstInd = words.findIndex((w) => w === '*' || w === '&');
    const isConst = (kind === 'value' ? words : words.slice(0, firstInd)).includes('const');
    const baseType = canonical(words.filter((w) => !/^(const|volatile|restrict|__restrict|__restrict__|\*|&)$/.test(w)));
    let attr: ParamAttr = { kind: 'none' };
    let attrTok: Token | null = null;
    for (const it of items) {
      const nm = it.name.replace(/^metal::/, '');
      let a2: ParamAttr;
      if (nm === 'buffer' || nm === 'threadgroup') {
        const n = it.args[0];
        if (it.args.length !== 1 || n.kind !== 'number' || !/^\d+[uU]?$/.test(n.text)) {
          this.fail(it.tok, `[[${nm}(n)]] needs an integer literal index`);
        }
        const index = parseInt(n.text, 10);
        const max = 30;
        if (index > max) this.fail(n, `[[${nm}(${index})]]: the index must be at most ${max}`);
        a2 = { kind: nm, index };
      } else if (BUILTINS.has(nm)) {
        if (it.args.length) this.fail(it.tok, `[[${nm}]] takes no arguments`);
        a2 = { kind: 'builtin', name: nm };
      } else if (IGNORED_PARAM_ATTRS.has(nm)) {
        continue;
      } else {
        this.fail(it.tok, `unknown attribute [[${it.name}]] on kernel parameter '${name}'`);
      }
      if (attr.kind !== 'none') this.fail(it.tok, `parameter '${name}' has two bindings ([[${attrName(attr)}]] and [[${nm}]])`);
      attr = a2;
      attrTok = it.tok;
    }
    const at = attrTok ?? nameTok;
    switch (attr.kind) {
      case 'buffer':
        if (addressSpace !== 'device' && addressSpace !== 'constant') {
          this.fail(at, `[[buffer(${attr.index})]] parameter '${name}' needs an address space: device or constant${addressSpace ? `, not ${addressSpace}` : ''}`);
        }
        if (kind === 'value') this.fail(nameTok, `[[buffer(${attr.index})]] parameter '${name}' must be a pointer or a reference`);
        break;
      case 'threadgroup':
        if (addressSpace !== 'threadgroup') this.fail(at, `[[threadgroup(${attr.index})]] parameter '${name}' needs the threadgroup address space`);
        if (kind === 'value') this.fail(nameTok, `[[threadgroup(${attr.index})]] parameter '${name}' must be a pointer or a reference`);
        break;
      case 'builtin': {
        if (addressSpace) this.fail(first, `builtin parameter '${name}' [[${attr.name}]] takes no address space`);
        if (kind !== 'value') this.fail(nameTok, `builtin parameter '${name}' [[${attr.name}]] must be passed by value`);
        const m = BUILTIN_TYPE.exec(baseType);
        if (!m) this.fail(first, `builtin [[${attr.name}]] needs an integer type (uint, ushort, uint2, uint3, ...), not '${baseType}'`);
        if (m[2] && !BUILTINS.get(attr.name)) this.fail(first, `builtin [[${attr.name}]] is a scalar: declare it uint or ushort, not '${baseType}'`);
        break;
      }
      case 'none':
        // device/constant and threadgroup parameters without an index get one (paramList)
        if (addressSpace === 'device' || addressSpace === 'constant' || addressSpace === 'threadgroup') {
          if (kind === 'value') this.fail(nameTok, `${addressSpace} parameter '${name}' must be a pointer or a reference`);
          break;
        }
        this.fail(nameTok, `kernel parameter '${name}' needs an attribute: a builtin such as [[thread_position_in_grid]], or a device or constant address space for a buffer`);
    }
    const p: MslParam = { name, addressSpace, cppType, baseType, isConst, kind, attr, line: nameTok.line };
    attrToks.set(p, at);
    return p;
  }

  /** A parameter list with two parameters run together: names the token where a ',' (or ')') was expected. */
  missingComma(at: number, prev: number, attr: Attr | null): never {
    const after = attr
      ? `the attribute ${collapse(this.source.slice(this.toks[attr.open].start, this.toks[attr.close].end))}${this.toks[prev]?.kind === 'ident' ? ` of parameter '${this.text(prev)}'` : ''}`
      : `parameter '${this.text(prev)}'`;
    this.fail(this.toks[at], `expected ',' or ')' after ${after} (line ${this.toks[prev]?.line ?? this.toks[at].line}), found '${this.text(at)}': a comma is missing between two kernel parameters`);
  }

  // ---------------------------------------------------------------- bodies

  /** A function body (tokens open..close are its braces): identifiers used, threadgroup declarations. */
  body(open: number, close: number): Set<string> {
    const ids = new Set<string>();
    let stmtStart = true;
    for (let j = open + 1; j < close; j++) {
      const attr = this.attrAt.get(j);
      if (attr) {
        j = attr.close;
        continue;
      }
      const t = this.toks[j];
      if (stmtStart && (t.text === 'struct' || t.text === 'class' || t.text === 'union') && this.isStructDef(j)) {
        // a local struct: its field names matter for swizzles; its methods for the call graph
        j = this.structDecl(j, close, { ns: [], inStruct: false }, false, false) - 1;
        stmtStart = true;
        continue;
      }
      if (stmtStart && t.kind === 'ident') {
        let k = j;
        while (QUALIFIER_WORDS.has(this.text(k))) k++;
        if (this.text(k) === 'threadgroup') {
          const semi = this.statementEnd(k, close);
          this.tgDecl(j, k, semi);
          for (let q = j; q <= semi; q++) if (this.toks[q].kind === 'ident' && this.counts(this.text(q), this.text(q + 1))) ids.add(this.text(q));
          j = semi;
          stmtStart = true;
          continue;
        }
      }
      if (t.kind === 'ident' && this.counts(t.text, this.text(j + 1))) ids.add(t.text);
      stmtStart = t.kind === 'punct' && (t.text === '{' || t.text === '}' || t.text === ';');
    }
    return ids;
  }

  /**
   * Whether an identifier of a body goes into its call-graph set: all do,
   * except SIMD/quad-group names that are not called (a variable `simd_lid`).
   */
  counts(name: string, next: string): boolean {
    return !SYNC_IDENT.test(name) || next === '(' || next === '<' || name === 'threadgroup_barrier' || name === 'simdgroup_barrier';
  }

  statementEnd(k: number, close: number): number {
    for (let j = k; j < close; j++) {
      const x = this.text(j);
      if (x === '(' || x === '[' || x === '{') j = this.match[j];
      else if (x === ';') return j;
    }
    this.fail(this.toks[k], "expected ';' after this declaration");
  }

  /** `[const] threadgroup T a[N], b, *p = q;` — tokens: j statement start, k `threadgroup`, semi `;`. */
  tgDecl(j: number, k: number, semi: number): void {
    // first declarator's name: the identifier before the first of [ , = ; ( { at angle depth 0
    let angle = 0;
    let f = -1;
    for (let q = k + 1; q <= semi; q++) {
      const x = this.text(q);
      if (x === '<') angle++;
      else if (x === '>') angle--;
      else if (x === '>>') angle -= 2;
      else if ((x === '(' || x === '[') && angle > 0) q = this.match[q];
      else if (angle <= 0 && /^(\[|,|=|;|\(|\{)$/.test(x)) {
        f = q;
        break;
      }
    }
    const nameIdx = f - 1;
    if (f < 0 || this.toks[nameIdx].kind !== 'ident' || nameIdx <= k + 1) return; // not a plain declaration: leave it to the token rewrites
    let d = nameIdx;
    while (d - 1 > k + 1 && (/^(\*|&|&&)$/.test(this.text(d - 1)) || (/^(const|volatile)$/.test(this.text(d - 1)) && /^(\*|&)$/.test(this.text(d - 2))))) d--;
    const decls: TgDeclarator[] = [];
    let s = d;
    angle = 0;
    const declarator = (a: number, b: number): void => {
      if (b <= a) this.fail(this.toks[a], 'empty declarator');
      if (/^(\*|&|&&|\()$/.test(this.text(a))) {
        decls.push({ storage: false, range: [this.toks[a].start, this.toks[b - 1].end] });
        return;
      }
      const nameTok = this.toks[a];
      if (nameTok.kind !== 'ident') this.fail(nameTok, 'cannot parse this threadgroup declaration');
      const dims: Range[] = [];
      let m = a + 1;
      while (m < b && this.text(m) === '[') {
        const c = this.match[m];
        if (c === m + 1) this.fail(this.toks[m], `threadgroup array '${nameTok.text}' needs a size`);
        dims.push([this.toks[m + 1].start, this.toks[c - 1].end]);
        m = c + 1;
      }
      if (m < b) {
        if (/^(=|\{|\()$/.test(this.text(m))) this.fail(this.toks[m], `threadgroup variable '${nameTok.text}' cannot have an initializer`);
        this.fail(this.toks[m], `unexpected '${this.text(m)}' in threadgroup declaration`);
      }
      decls.push({ storage: true, name: nameTok.text, dims, slot: -1 });
    };
    for (let q = d; q < semi; q++) {
      const x = this.text(q);
      if (x === '(' || x === '[' || x === '{') q = this.match[q];
      else if (x === '<') angle++;
      else if (x === '>') angle--;
      else if (x === ',' && angle <= 0) {
        declarator(s, q);
        s = q + 1;
      }
    }
    declarator(s, semi);
    if (!decls.some((x) => x.storage)) return; // only pointers/references to threadgroup memory
    for (const x of decls) if (x.storage) x.slot = this.tgSlot++;
    const prefix: Range | null = j < k ? [this.toks[j].start, this.toks[k - 1].end] : null;
    this.sites.push({
      kind: 'tgDecl',
      start: this.toks[j].start,
      end: this.toks[semi].end,
      prefix,
      base: [this.toks[k + 1].start, this.toks[d - 1].end],
      decls,
      line: this.toks[k].line,
      inPp: false,
    });
  }

  // ------------------------------------------------------ constant values

  /** The integer value of the source range [a, b) (tokens fully inside it), or null. */
  evalSource(a: number, b: number): number | null {
    return this.evalTokens(this.toks.filter((t) => t.start >= a && t.end <= b));
  }

  evalRange(a: number, b: number): number | null {
    return this.evalTokens(this.toks.slice(a, b));
  }

  /** Integer value of a simple constant expression (literals, known constants, + - * / % << >> and parentheses). */
  evalTokens(ts: Token[]): number | null {
    let p = 0;
    const peek = (): string => ts[p]?.text ?? '';
    const primary = (): number | null => {
      const t = ts[p];
      if (!t) return null;
      if (t.text === '(') {
        p++;
        const v = expr();
        if (peek() !== ')') return null;
        p++;
        return v;
      }
      if (t.text === '-' || t.text === '+') {
        p++;
        const v = primary();
        return v === null ? null : t.text === '-' ? -v : v;
      }
      if (t.kind === 'number') {
        p++;
        const m = /^(0[xX][0-9a-fA-F]+|\d+)[uUlL]*$/.exec(t.text.replace(/'/g, ''));
        return m ? Number(m[1]) : null;
      }
      if (t.kind === 'ident') {
        p++;
        if (peek() === '(') {
          // uint(4): a functional cast
          p++;
          const v = expr();
          if (peek() !== ')') return null;
          p++;
          return /^(u?int|u?short|size_t|unsigned|u?long|int\d+_t|uint\d+_t)$/.test(t.text) ? v : null;
        }
        return this.constants.get(t.text) ?? null;
      }
      return null;
    };
    const binary = (next: () => number | null, ops: string[]): (() => number | null) => {
      return () => {
        let v = next();
        while (v !== null && ops.includes(peek())) {
          const op = ts[p++].text;
          const r = next();
          if (r === null) return null;
          if (op === '*') v *= r;
          else if (op === '/') v = r === 0 ? NaN : Math.trunc(v / r);
          else if (op === '%') v = r === 0 ? NaN : v % r;
          else if (op === '+') v += r;
          else if (op === '-') v -= r;
          else if (op === '<<') v = v * 2 ** r;
          else if (op === '>>') v = Math.floor(v / 2 ** r);
        }
        return v;
      };
    };
    const mul = binary(primary, ['*', '/', '%']);
    const add = binary(mul, ['+', '-']);
    const expr = binary(add, ['<<', '>>']);
    const v = expr();
    if (v === null || p !== ts.length || !Number.isFinite(v)) return null;
    return v;
  }

  // --------------------------------------------------------- token rewrites

  tokenSites(): void {
    const atProgramScope = new Uint8Array(this.toks.length);
    const declOf = new Map<number, { constQualified: boolean; isConstexpr: boolean; scalarInit: boolean }>();
    for (const [a, b] of this.programScope) {
      let depth = 0;
      const top: number[] = [];
      for (let k = a; k <= b && k < this.toks.length; k++) {
        if (this.attrAt.has(k)) {
          k = this.attrAt.get(k)!.close;
          continue;
        }
        const x = this.text(k);
        if (x === '(' || x === '[' || x === '{') {
          if (depth === 0) top.push(k);
          depth++;
        } else if (x === ')' || x === ']' || x === '}') depth--;
        else if (depth === 0) {
          atProgramScope[k] = 1;
          top.push(k);
        }
      }
      const info = programScopeDecl(top.map((k) => this.text(k)));
      for (const k of top) if (this.text(k) === 'constant' || this.text(k) === 'device') declOf.set(k, info);
    }
    for (const attr of this.attrAt.values()) {
      this.sites.push({ kind: 'remove', start: this.toks[attr.open].start, end: this.toks[attr.close].end, inPp: false, what: 'attribute' });
    }
    for (let i = 0; i < this.toks.length; i++) {
      if (this.inAttr[i]) continue;
      const t = this.toks[i];
      if (t.kind === 'number' && t.half !== undefined) {
        this.sites.push({ kind: 'half', start: t.start, end: t.end, inPp: false, value: t.half });
        continue;
      }
      if (t.kind === 'number' && t.float !== undefined) {
        this.sites.push({ kind: 'float', start: t.start, end: t.end, inPp: false, value: t.float });
        continue;
      }
      if (t.kind !== 'ident') continue;
      const prev = this.text(i - 1);
      const member = prev === '.' || prev === '->';
      if (!member && VECTOR_TYPE.test(t.text)) {
        this.sites.push({ kind: 'vecType', start: t.start, end: t.end, inPp: false, name: t.text });
        continue;
      }
      if (member) {
        if (SWIZZLE.test(t.text) && this.text(i + 1) !== '(' && !this.fieldNames.has(t.text)) {
          this.sites.push({ kind: 'swizzle', start: t.start, end: t.end, inPp: false, name: t.text });
        }
        continue;
      }
      if (prev === '::') continue;
      if (t.text === 'kernel') this.sites.push({ kind: 'remove', start: t.start, end: t.end, inPp: false, what: 'kernel' });
      else if (ADDRESS_SPACES.has(t.text)) {
        const site: Site = { kind: 'remove', start: t.start, end: t.end, inPp: false, what: 'addressSpace', word: t.text, programScope: atProgramScope[i] === 1 };
        const info = declOf.get(i);
        if (site.programScope && info) Object.assign(site, info);
        this.sites.push(site);
      }
    }
  }

  // ------------------------------------------------------------------ run

  run(): Analysis {
    this.matchBrackets();
    this.findAttributes();
    this.checkUnsupported();
    this.scanDirectives();
    this.parseSeq(0, this.toks.length, { ns: [], inStruct: false });
    for (const [name, ft] of this.failedTemplates) if (!this.usedFailedTemplates.has(name)) this.failed.push(ft);
    this.settleUnsupportedInKernels();
    this.tokenSites();
    // swizzles inside macros that name struct fields stay member accesses
    const sites = this.sites.filter((s) => !(s.kind === 'swizzle' && this.fieldNames.has(s.name)));
    // usesSync through the call graph (functions and macros of this file)
    const memo = new Map<string, boolean>();
    const syncOf = (name: string): boolean => {
      const known = memo.get(name);
      if (known !== undefined) return known;
      memo.set(name, false); // cycles
      const r = anySync(this.graph.get(name) ?? new Set<string>());
      memo.set(name, r);
      return r;
    };
    const anySync = (ids: Set<string>): boolean => {
      for (const id of ids) if (SYNC_IDENT.test(id) || (this.graph.has(id) && syncOf(id))) return true;
      return false;
    };
    // in source order, failed ones too (their lines)
    this.failed.sort((a, b) => a.ranges[0][0] - b.ranges[0][0]);
    const closure = (ids: Set<string>): Set<string> => {
      const out = new Set<string>();
      const stack = [...ids];
      while (stack.length) {
        const id = stack.pop()!;
        if (out.has(id)) continue;
        out.add(id);
        for (const x of this.graph.get(id) ?? []) if (!out.has(x)) stack.push(x);
      }
      return out;
    };
    const tgSites = this.sites.filter((x): x is TgDeclSite & { inPp: false } => x.kind === 'tgDecl');
    const threadgroupDecls = this.kernels.map(({ extra }) =>
      tgSites
        .filter((x) => x.start >= extra.def[0] && x.start < extra.def[1])
        .flatMap((x) =>
          x.decls.flatMap((d) =>
            d.storage
              ? [{ name: d.name, type: collapse(this.source.slice(x.base[0], x.base[1])), dims: d.dims.map(([a, b]) => this.evalSource(a, b)), line: x.line }]
              : [],
          ),
        ),
    );
    const names = new Map<string, Token>();
    for (const { k, idents, nameTok } of this.kernels) {
      k.usesSync = anySync(idents);
      const prev = names.get(k.name);
      if (prev) this.fail(nameTok, `two kernels are named '${k.name}' (the other at line ${prev.line})`);
      names.set(k.name, nameTok);
    }
    return {
      file: this.file,
      source: this.source,
      kernels: this.kernels.map((x) => x.k),
      extras: this.kernels.map((x) => x.extra),
      structs: this.structs,
      sites,
      loops: findLoops(this.toks, this.match, this.pp),
      failed: this.failed,
      ppLines: this.pp.map((p) => [p.start, p.end] as Range),
      idents: this.kernels.map((x) => closure(x.idents)),
      threadgroupDecls,
    };
  }
}

const INTEGER_WORDS = new Set([
  'bool', 'char', 'uchar', 'short', 'ushort', 'int', 'uint', 'long', 'ulong', 'size_t', 'ptrdiff_t', 'unsigned', 'signed',
  'int8_t', 'int16_t', 'int32_t', 'int64_t', 'uint8_t', 'uint16_t', 'uint32_t', 'uint64_t',
]);
const DECL_QUALIFIERS = new Set(['static', 'const', 'constexpr', 'constant', 'device', 'inline', 'volatile', 'metal', '::']);

/**
 * What the emitters need of a program-scope declaration (its tokens at
 * bracket depth 0, a bracketed group as its opening token): whether it is
 * const already, and whether it declares a single integer with an
 * initializer, which both emitters make a constant expression (array bounds,
 * template arguments). Floats and arrays stay as they were: their address is
 * passed to `constant T*` parameters, which the emitters leave non-const.
 */
function programScopeDecl(words: string[]): { constQualified: boolean; isConstexpr: boolean; scalarInit: boolean } {
  const eq = words.indexOf('=');
  const head = eq < 0 ? words : words.slice(0, eq);
  const constQualified = head.includes('const') || head.includes('constexpr');
  const single = !words.includes(',');
  const name = head[head.length - 1];
  const type = head.slice(0, -1).filter((w) => !DECL_QUALIFIERS.has(w));
  const scalarInit = eq > 0 && single && name !== undefined && /^[A-Za-z_]\w*$/.test(name) && type.length > 0 && type.every((w) => INTEGER_WORDS.has(w));
  return { constQualified, isConstexpr: head.includes('constexpr'), scalarInit };
}

/** The value of a C string literal's body (common escapes). */
function unescapeC(body: string): string {
  const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '0': '\0', '\\': '\\', '"': '"', "'": "'", '?': '?', a: '\x07', b: '\b', f: '\f', v: '\v' };
  return body.replace(/\\(x[0-9a-fA-F]+|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return simple[e] ?? e;
  });
}

/**
 * Source ranges the preprocessor drops for certain: `#if 0` blocks, and the
 * other branches of an `#if 1`. Other conditions are unknown: all branches stay.
 */
export function inactiveRanges(pp: PpLine[], source: string): Range[] {
  interface Frame {
    parentActive: boolean;
    active: boolean;
    taken: 'yes' | 'no' | 'maybe';
  }
  const cond = (p: PpLine): boolean | null => {
    const body = source.slice(p.bodyStart, p.end).replace(/\/\*.*?\*\/|\/\/.*$/gs, '').trim();
    if (/^0+$/.test(body) || body === 'false') return false;
    if (/^[1-9]\d*$/.test(body) || body === 'true') return true;
    return null;
  };
  const stack: Frame[] = [];
  const out: Range[] = [];
  let deadFrom = -1;
  const activeNow = (): boolean => (stack.length ? stack[stack.length - 1].active : true);
  for (const p of pp) {
    const before = activeNow();
    switch (p.directive) {
      case 'if': {
        const c = cond(p);
        stack.push({ parentActive: before, active: before && c !== false, taken: c === true ? 'yes' : c === false ? 'no' : 'maybe' });
        break;
      }
      case 'ifdef':
      case 'ifndef':
        stack.push({ parentActive: before, active: before, taken: 'maybe' });
        break;
      case 'elif': {
        const f = stack[stack.length - 1];
        if (!f) break;
        const c = cond(p);
        f.active = f.parentActive && f.taken !== 'yes' && c !== false;
        if (f.taken === 'no') f.taken = c === true ? 'yes' : c === false ? 'no' : 'maybe';
        break;
      }
      case 'else': {
        const f = stack[stack.length - 1];
        if (f) f.active = f.parentActive && f.taken !== 'yes';
        break;
      }
      case 'endif':
        stack.pop();
        break;
      default:
        continue;
    }
    const after = activeNow();
    if (before && !after) deadFrom = p.end;
    else if (!before && after && deadFrom >= 0) {
      out.push([deadFrom, p.start]);
      deadFrom = -1;
    }
  }
  if (deadFrom >= 0) out.push([deadFrom, source.length]);
  return out;
}

function attrName(a: ParamAttr): string {
  switch (a.kind) {
    case 'buffer':
    case 'threadgroup':
      return `${a.kind}(${a.index})`;
    case 'builtin':
      return a.name;
    case 'none':
      return '';
  }
}

export function analyze(source: string, file: string, options: AnalyzeOptions = {}): Analysis {
  return new Analyzer(source, file, options.perKernel === true).run();
}
