/**
 * The C++ emitter of the CPU backend. Output: the compat header's include, the
 * user's source rewritten site by site with its line structure kept (under
 * `#line 1 "<file>"`, so compiler messages point at the .metal lines), then one
 * generated entry per kernel and the kernel table (msl_cpu/abi.h).
 *
 * Contract with native/include/msl_cpu.h:
 *   ::moe_rt::tg_static<T>(slot)      → T&, storage shared by the threadgroup
 *   ::moe_rt::bi_<builtin>(const MoeThreadCtx*) and ::moe_rt::builtin_as<T>(v)
 *   vector swizzles as member functions: v.xy(), v.rgb() (single letters stay members)
 *   half, bfloat, metal::, mem_flags, threadgroup_barrier, simd_* ...
 *   __moe_bind_runtime (the module exports __moe_kernels itself)
 */
import type { Analysis, Range, Site, TgDeclSite } from './analyze.js';
import { analysisOf } from './parse.js';
import { loopEdits } from './loops.js';
import { applyEdits, type Edit, type Render } from './rewrite.js';
import type { EmitResult, EmittedKernel, MslKernel, MslParam, ParsedMsl } from './types.js';

export interface EmitCppOptions {
  /** The compat header to include (default "msl_cpu.h"). */
  headerName?: string;
  /** Poll the watchdog's abort flag in every loop (loops.ts; default true). */
  loopPolls?: boolean;
  /** Kernels (by name) to leave out: no entry, and their definitions blanked (lines kept). Failed kernels are always left out. */
  omit?: ReadonlySet<string>;
}

/** Scalar and vector types whose size the generated code may take outside the kernel's namespaces. */
const SIZED_TYPE = /^(const\s+)?(bool|char|uchar|short|ushort|int|uint|long|ulong|half|float|bfloat|(packed_)?(bool|char|uchar|short|ushort|int|uint|long|ulong|half|float|bfloat)[234]|atomic_(int|uint|float))$/;

/** The kernel's [[threadgroup(n)]] parameters as a MoeTgParamInfo table (names and element sizes for reports), or null. */
function tgParamTable(k: MslKernel, i: number): string | null {
  const rows = k.params
    .filter((p) => p.attr.kind === 'threadgroup')
    .map((p) => {
      const index = p.attr.kind === 'threadgroup' ? p.attr.index : 0;
      const base = p.baseType.trim();
      const size = SIZED_TYPE.test(base) ? `uint32_t(sizeof(${base.replace(/^const\s+/, '')}))` : '0u';
      return `{${index}u, ${size}, ${cString(p.name)}}`;
    });
  return rows.length ? `static const MoeTgParamInfo __moe_tg_params_${i}[] = {${rows.join(', ')}};\n` : null;
}

/**
 * What leaving kernels out means for one emission: which kernels get an
 * entry, and the edits that blank the definitions no kept kernel needs (a
 * template's only when all its instantiations are left out). Preprocessor
 * lines inside a blanked definition stay, so #if/#endif still pair up.
 */
export function omission(a: Analysis, omit: ReadonlySet<string> | undefined): { keep: boolean[]; blank: Edit[]; sites: Site[] } {
  const keep = a.kernels.map((k) => !omit?.has(k.name));
  const ranges: Range[] = a.failed.flatMap((f) => f.ranges);
  a.kernels.forEach((k, i) => {
    if (keep[i]) return;
    const inst = a.extras[i].inst;
    if (inst) ranges.push(inst);
    const def = a.extras[i].def;
    const shared = a.kernels.some((_, j) => keep[j] && a.extras[j].def[0] === def[0]);
    if (!shared) ranges.push(def);
  });
  if (ranges.length === 0) return { keep, blank: [], sites: a.sites };
  const segments: Range[] = [];
  for (const [s0, e0] of ranges) {
    let cur = s0;
    for (const [ps, pe] of a.ppLines) {
      if (pe <= cur || ps >= e0) continue;
      if (ps > cur) segments.push([cur, ps]);
      cur = Math.max(cur, pe);
    }
    if (cur < e0) segments.push([cur, e0]);
  }
  const inside = (x: number): boolean => segments.some(([s0, e0]) => x >= s0 && x < e0);
  return {
    keep,
    blank: segments.map(([start, end]) => ({ start, end, inPp: false, text: '' })),
    sites: a.sites.filter((site) => !inside(site.start)),
  };
}

/** The loop polls (loops.ts), but for the loops of definitions left out (blanked). */
export function loopEditsKept(a: Analysis, blank: Edit[]): Edit[] {
  const kept = blank.length ? a.loops.filter((l) => !blank.some((b) => l.open >= b.start && l.open < b.end)) : a.loops;
  return loopEdits(kept);
}

const newlines = (s: string): number => s.split('\n').length - 1;

/** Entries appended after `#line 1 "<file>.entries.*"`, each with its lines there. */
export function entryParts(a: Analysis, keep: boolean[], entryText: (k: MslKernel, i: number) => string): { text: string; kernels: EmittedKernel[] } {
  let line = 1;
  let text = '';
  const kernels: EmittedKernel[] = [];
  a.kernels.forEach((k, i) => {
    if (!keep[i]) return;
    const t = `${entryText(k, i)}\n`;
    const n = newlines(t);
    kernels.push({ name: k.name, entrySymbol: entrySymbol(i), usesSync: k.usesSync, sourceLines: a.extras[i].defLines, entryLines: [line, line + n - 1] });
    line += n;
    text += t;
  });
  return { text, kernels };
}

export function cString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** One line of code from a source range: comments dropped, whitespace collapsed. */
const collapse = (s: string): string =>
  s
    .replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();

/**
 * A `threadgroup T a[N], *p;` declaration rewritten: pointer declarators as
 * plain declarations of the type (address space gone), each storage
 * declarator as `storage(type, declarator, dims)` gives it (each emitter its own).
 */
export function tgDeclText(site: TgDeclSite, storage: (type: string, decl: { name: string; slot: number }, dims: string[]) => string): (render: Render) => string {
  return (render: Render): string => {
    const prefix = site.prefix ? collapse(render(site.prefix[0], site.prefix[1])).replace(/\bstatic\b/g, '').trim() : '';
    const type = collapse(`${prefix} ${render(site.base[0], site.base[1])}`);
    return site.decls
      .map((d) => (d.storage ? storage(type, d, d.dims.map(([a, b]) => collapse(render(a, b)))) : `${type} ${collapse(render(d.range[0], d.range[1]))};`))
      .join(' ');
  };
}

/** The sites both emitters rewrite the same way: swizzles, literals, the Metal include. */
export type SharedSite = Extract<Site, { kind: 'swizzle' | 'half' | 'float' | 'metalInclude' }>;

function sharedSiteText(site: SharedSite): string {
  switch (site.kind) {
    case 'swizzle':
      return `${site.name}()`;
    case 'half':
      return `half(${site.value}f)`;
    case 'float':
      // MSL has no double: an unsuffixed floating literal is a float
      return `${site.value}f`;
    case 'metalInclude':
      return `// ${site.text}`;
  }
}

/** The sites each emitter rewrites its own way. */
export type OwnSite = Exclude<Site, SharedSite>;

const isShared = (site: Site): site is SharedSite => site.kind === 'swizzle' || site.kind === 'half' || site.kind === 'float' || site.kind === 'metalInclude';

/** A rewrite site's edit: the shared sites as sharedSiteText writes them, the others as the emitter's `own` does. */
export function siteEdit(site: Site, own: (site: OwnSite) => Edit['text']): Edit {
  return { start: site.start, end: site.end, inPp: site.inPp, text: isShared(site) ? sharedSiteText(site) : own(site) };
}

/** What each of the other rewrite sites becomes in C++. */
function cppText(site: OwnSite): Edit['text'] {
  switch (site.kind) {
    case 'remove':
      // a program-scope `constant` integer: const, so that it is a constant expression (array bounds, template arguments)
      if (site.what === 'addressSpace' && site.programScope && site.word === 'constant' && site.scalarInit && !site.constQualified) return 'const';
      return '';
    case 'fnDecl':
      return '';
    case 'vecType':
      return site.name;
    case 'tgDecl':
      return tgDeclText(site, (type, d, dims) => {
        const a = dims.map((e) => `[${e.includes('>') ? `(${e})` : e}]`).join('');
        return `auto& ${d.name} = ::moe_rt::tg_array<${type}${a}, ${type}>(${d.slot}u, ${cString(d.name)});`;
      });
  }
}

function bufferAt(arr: string, count: string, n: number): string {
  return `(${n}u < ${count} ? ${arr}[${n}] : nullptr)`;
}

/** The entry's argument for one kernel parameter. */
function cppArg(p: MslParam): string {
  const noRef = p.cppType.replace(/\s*&\s*$/, '');
  switch (p.attr.kind) {
    case 'buffer': {
      const src = bufferAt('__t->d->buffers', '__t->d->n_buffers', p.attr.index);
      return p.kind === 'pointer' ? `reinterpret_cast<${p.cppType}>(${src})` : `*reinterpret_cast<${noRef} *>(${src})`;
    }
    case 'threadgroup': {
      const src = bufferAt('__t->g->tg_dyn', '__t->g->n_tg_dyn', p.attr.index);
      return p.kind === 'pointer' ? `reinterpret_cast<${p.cppType}>(${src})` : `*reinterpret_cast<${noRef} *>(${src})`;
    }
    case 'builtin':
      return `::moe_rt::builtin_as<${p.baseType}>(::moe_rt::bi_${p.attr.name}(__t))`;
    case 'none':
      throw new Error(`kernel parameter '${p.name}' has no binding`); // rejected by the parser
  }
}

export function entrySymbol(i: number): string {
  return `__moe_entry_${i}`;
}

/**
 * One generated entry: `head` (the entry's signature, up to its body) calling
 * the kernel with one argument per parameter, inside the kernel's namespaces
 * so that its unqualified types resolve as in its signature.
 */
export function entryFunction(k: MslKernel, ns: string[], bareName: string, head: string, arg: (p: MslParam) => string, prologue = ''): string {
  const call = `${bareName}${k.templateArgs !== null ? `<${k.templateArgs}>` : ''}`;
  const args = k.params.map((p) => `\n    ${arg(p)}`).join(',');
  let s = `${head} {\n${prologue}  ${call}(${args});\n}`;
  for (const n of [...ns].reverse()) s = `namespace ${n ? `${n} ` : ''}{\n${s}\n}`;
  return s;
}

function entry(k: MslKernel, ns: string[], bareName: string, i: number): string {
  return entryFunction(k, ns, bareName, `extern "C" void ${entrySymbol(i)}(const MoeThreadCtx* __t)`, cppArg, '  (void)__t;\n');
}

export function emitCppFromAnalysis(a: Analysis, options: EmitCppOptions = {}): EmitResult {
  const header = options.headerName ?? 'msl_cpu.h';
  const om = omission(a, options.omit);
  const edits = [...om.sites.map((site) => siteEdit(site, cppText)), ...om.blank];
  if (options.loopPolls !== false) edits.push(...loopEditsKept(a, om.blank));
  const user = applyEdits(a.source, edits);
  const parts: string[] = [`#include ${cString(header)}\n`, `#line 1 ${cString(a.file)}\n`, user.endsWith('\n') ? user : `${user}\n`];
  parts.push(`#line 1 ${cString(`${a.file}.entries.cpp`)}\n`);
  const entries = entryParts(a, om.keep, (k, i) => entry(k, a.extras[i].ns, a.extras[i].bareName, i));
  parts.push(entries.text);
  const table: string[] = [];
  a.kernels.forEach((k, i) => {
    if (!om.keep[i]) return;
    const qualified = [...a.extras[i].ns.filter((n) => n !== ''), entrySymbol(i)].join('::');
    const tg = tgParamTable(k, i);
    if (tg !== null) parts.push(tg);
    const tgCount = k.params.filter((p) => p.attr.kind === 'threadgroup').length;
    table.push(`  {${cString(k.name)}, &${qualified}, ${k.usesSync ? 1 : 0}u, ${tgCount}u, ${tg !== null ? `__moe_tg_params_${i}` : 'nullptr'}},`);
  });
  if (table.length) parts.push(`static const MoeKernelInfo __moe_kernel_table[] = {\n${table.join('\n')}\n};\n`);
  parts.push(
    `extern "C" __attribute__((visibility("default"))) const MoeKernelInfo* __moe_kernels(uint32_t* n) {\n` +
      `  *n = ${table.length}u;\n  return ${table.length ? '__moe_kernel_table' : 'nullptr'};\n}\n`,
  );
  return { code: parts.join(''), kernels: entries.kernels };
}

/** C++17 for the CPU backend from a parsed MSL source. Throws MslError. */
export function emitCpp(parsed: ParsedMsl, options: EmitCppOptions = {}): EmitResult {
  return emitCppFromAnalysis(analysisOf(parsed), options);
}

/**
 * The MSL source itself with kernels left out (failed ones always): their
 * definitions blanked, lines kept, for a compiler that takes MSL as it is
 * (Metal). No entries are generated: `entryLines` are empty ([0, -1]).
 */
export function emitMsl(parsed: ParsedMsl, options: { omit?: ReadonlySet<string> } = {}): EmitResult {
  const a = analysisOf(parsed);
  const om = omission(a, options.omit);
  const code = om.blank.length ? applyEdits(a.source, om.blank) : a.source;
  const kernels: EmittedKernel[] = [];
  a.kernels.forEach((k, i) => {
    if (om.keep[i]) kernels.push({ name: k.name, entrySymbol: k.name, usesSync: k.usesSync, sourceLines: a.extras[i].defLines, entryLines: [0, -1] });
  });
  return { code, kernels };
}
