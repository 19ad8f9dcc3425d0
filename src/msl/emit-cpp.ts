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
import type { Analysis, Site, TgDeclSite } from './analyze.js';
import { analysisOf } from './parse.js';
import { loopEdits } from './loops.js';
import { applyEdits, type Edit, type Render } from './rewrite.js';
import type { EmitResult, MslKernel, MslParam, ParsedMsl } from './types.js';

export interface EmitCppOptions {
  /** The compat header to include (default "msl_cpu.h"). */
  headerName?: string;
  /** Poll the watchdog's abort flag in every loop (loops.ts; default true). */
  loopPolls?: boolean;
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

export function sharedSiteText(site: SharedSite): string {
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

/** What each rewrite site becomes in C++. */
function cppEdit(site: Site): Edit {
  const base = { start: site.start, end: site.end, inPp: site.inPp };
  switch (site.kind) {
    case 'remove':
    case 'fnDecl':
      return { ...base, text: '' };
    case 'vecType':
      return { ...base, text: site.name };
    case 'swizzle':
    case 'half':
    case 'float':
    case 'metalInclude':
      return { ...base, text: sharedSiteText(site) };
    case 'tgDecl':
      return {
        ...base,
        text: tgDeclText(site, (type, d, dims) => {
          const a = dims.map((e) => `[${e.includes('>') ? `(${e})` : e}]`).join('');
          return `auto& ${d.name} = ::moe_rt::tg_array<${type}${a}, ${type}>(${d.slot}u, ${cString(d.name)});`;
        }),
      };
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
  const edits = a.sites.map(cppEdit);
  if (options.loopPolls !== false) edits.push(...loopEdits(a.loops));
  const user = applyEdits(a.source, edits);
  const parts: string[] = [`#include ${cString(header)}\n`, `#line 1 ${cString(a.file)}\n`, user.endsWith('\n') ? user : `${user}\n`];
  parts.push(`#line 1 ${cString(`${a.file}.entries.cpp`)}\n`);
  const table: string[] = [];
  a.kernels.forEach((k, i) => {
    const extra = a.extras[i];
    parts.push(`${entry(k, extra.ns, extra.bareName, i)}\n`);
    const qualified = [...extra.ns.filter((n) => n !== ''), entrySymbol(i)].join('::');
    const tg = tgParamTable(k, i);
    if (tg !== null) parts.push(tg);
    const tgCount = k.params.filter((p) => p.attr.kind === 'threadgroup').length;
    table.push(`  {${cString(k.name)}, &${qualified}, ${k.usesSync ? 1 : 0}u, ${tgCount}u, ${tg !== null ? `__moe_tg_params_${i}` : 'nullptr'}},`);
  });
  if (table.length) parts.push(`static const MoeKernelInfo __moe_kernel_table[] = {\n${table.join('\n')}\n};\n`);
  parts.push(
    `extern "C" __attribute__((visibility("default"))) const MoeKernelInfo* __moe_kernels(uint32_t* n) {\n` +
      `  *n = ${a.kernels.length}u;\n  return ${table.length ? '__moe_kernel_table' : 'nullptr'};\n}\n`,
  );
  return {
    code: parts.join(''),
    kernels: a.kernels.map((k, i) => ({ name: k.name, entrySymbol: entrySymbol(i), usesSync: k.usesSync })),
  };
}

/** C++17 for the CPU backend from a parsed MSL source. Throws MslError. */
export function emitCpp(parsed: ParsedMsl, options: EmitCppOptions = {}): EmitResult {
  return emitCppFromAnalysis(analysisOf(parsed), options);
}
