/**
 * Emitters: the parsed MSL as C++ (CPU backend). The user's source is
 * rewritten token by token with its line structure kept, so the compiler's
 * messages point at the .metal file's own lines; generated entries follow.
 * A CUDA emitter shares the same rewriting with another prologue and entries.
 */
import { ADDRESS_SPACES, attributeEnd, isTrivia, MslError, type MslKernel, type MslParam, type ParsedMsl } from './parser.js';
import type { Token } from './lexer.js';

export interface EmitResult {
  code: string;
  kernels: { name: string; entrySymbol: string; usesSync: boolean }[];
}

const SWIZZLE = /^([xyzw]{2,4}|[rgba]{1,4})$/;
const HALF_LITERAL = /^((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[hH]$/;

const newlinesOf = (s: string): string => s.replace(/[^\n]/g, '');

function cString(s: string): string {
  return JSON.stringify(s);
}

/** The rewritten user source (same number of lines as the input). */
export function rewriteSource(parsed: ParsedMsl): string {
  const toks = parsed.tokens;
  const out: string[] = toks.map((t) => t.text);
  const sig: number[] = [];
  toks.forEach((t, i) => {
    if (!isTrivia(t)) sig.push(i);
  });
  const c = { sig, toks };
  const pos = new Map<number, number>(); // token index → sig index
  sig.forEach((k, j) => pos.set(k, j));
  const tok = (j: number): Token | undefined => (j >= 0 && j < sig.length ? toks[sig[j] as number] : undefined);
  const blank = (from: number, to: number): void => {
    for (let k = from; k <= to; k++) out[k] = newlinesOf(toks[k]!.text);
  };
  const inBody = (k: number): boolean => parsed.bodies.some(([a, b]) => k > a && k < b);
  const fieldNames = new Set(parsed.structs.flatMap((s) => s.fields.map((f) => f.name)));
  let slot = 0;

  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    if (t.kind === 'pp') {
      if (/^#\s*include\s*<metal_\w+>/.test(t.text)) out[k] = `// ${t.text}`;
      continue;
    }
    if (isTrivia(t)) continue;
    const j = pos.get(k) as number;
    // [[attributes]]
    const ae = attributeEnd(c, j);
    if (ae >= 0) {
      blank(k, sig[ae] as number);
      k = sig[ae] as number;
      continue;
    }
    if (t.kind === 'ident') {
      const prev = tok(j - 1)?.text;
      const next = tok(j + 1);
      const member = prev === '.' || prev === '->';
      if (t.text === 'kernel' && !member && (next?.text === 'void' || next?.text === '[')) {
        out[k] = '';
        continue;
      }
      if (ADDRESS_SPACES.has(t.text) && !member && prev !== '::' && next && (next.kind === 'ident' || next.text === '::')) {
        if (t.text === 'threadgroup' && inBody(k) && (prev === ';' || prev === '{' || prev === '}' || prev === ':')) {
          const end = rewriteThreadgroupDecl(j);
          if (end >= 0) {
            k = sig[end] as number;
            continue;
          }
        }
        out[k] = '';
        continue;
      }
      if (member && prev === '.' && SWIZZLE.test(t.text) && next?.text !== '(' && !fieldNames.has(t.text)) {
        out[k] = `${t.text}()`;
        continue;
      }
    }
    if (t.kind === 'number') {
      const m = HALF_LITERAL.exec(t.text);
      if (m) out[k] = `half(${m[1]}f)`;
    }
  }
  return out.join('');

  /**
   * `threadgroup T a[N], b;` at statement start → per declarator
   * `auto& a = ::moe_rt::tg_static<T[N]>(slot);`. Pointers and references to
   * threadgroup memory are ordinary variables: returns -1 for those.
   */
  function rewriteThreadgroupDecl(j: number): number {
    let end = j + 1;
    let depth = 0;
    while (end < sig.length) {
      const x = tok(end)!.text;
      if (x === '(' || x === '[' || x === '{') depth++;
      else if (x === ')' || x === ']' || x === '}') depth--;
      if (depth === 0 && x === ';') break;
      if (depth < 0 || x === '=') return -1;
      end++;
    }
    if (end >= sig.length) return -1;
    // split declarators at top-level commas (template args may hold commas: track <>)
    const parts: [number, number][] = [];
    let s = j + 1;
    depth = 0;
    for (let q = j + 1; q < end; q++) {
      const x = tok(q)!.text;
      if (x === '<' || x === '(' || x === '[') depth++;
      else if (x === '>' || x === ')' || x === ']') depth--;
      else if (x === ',' && depth === 0) {
        parts.push([s, q - 1]);
        s = q + 1;
      }
    }
    parts.push([s, end - 1]);
    const words = (a: number, b: number): string[] => {
      const w: string[] = [];
      for (let q = a; q <= b; q++) w.push(tok(q)!.text);
      return w;
    };
    // first declarator: type tokens then name then dims
    const [fa, fb] = parts[0] as [number, number];
    const first = words(fa, fb);
    if (first.includes('*') || first.includes('&')) return -1;
    const split = (w: string[]): { name: string; dims: string } | null => {
      let i = w.length - 1;
      let dims = '';
      while (i >= 0 && w[i] === ']') {
        let d = 0;
        let q = i;
        for (; q >= 0; q--) {
          if (w[q] === ']') d++;
          else if (w[q] === '[') {
            d--;
            if (d === 0) break;
          }
        }
        const inner = w.slice(q + 1, i).join(' ');
        dims = `[${inner.includes('>') ? `(${inner})` : inner}]` + dims;
        i = q - 1;
      }
      const name = w[i];
      if (!name || !/^[A-Za-z_]\w*$/.test(name)) return null;
      return { name, dims };
    };
    const d0 = split(first);
    if (!d0) return -1;
    const typeWords = first.slice(0, first.lastIndexOf(d0.name));
    const type = typeWords.filter((w) => !ADDRESS_SPACES.has(w)).join(' ');
    const decls = [d0];
    for (const [a, b] of parts.slice(1)) {
      const w = words(a, b);
      if (w.includes('*') || w.includes('&')) return -1;
      const d = split(w);
      if (!d) return -1;
      decls.push(d);
    }
    const text = decls.map((d) => `auto& ${d.name} = ::moe_rt::tg_static<${type}${d.dims}>(${slot++}u);`).join(' ');
    const from = sig[j] as number;
    const to = sig[end] as number;
    let nl = '';
    for (let q = from; q <= to; q++) nl += newlinesOf(toks[q]!.text);
    out[from] = text + nl;
    for (let q = from + 1; q <= to; q++) out[q] = '';
    return end;
  }
}

function paramArg(p: MslParam, target: 'cpp' | 'cuda'): string {
  const ptrType = p.cppType.replace(/\s*&\s*$/, '').trim();
  const bufAt = (arr: string, count: string, n: number): string => `(${n}u < ${count} ? ${arr}[${n}] : nullptr)`;
  void target;
  switch (p.attr.kind) {
    case 'buffer': {
      const src = bufAt('__t->d->buffers', '__t->d->n_buffers', p.attr.index);
      return p.kind === 'pointer' ? `reinterpret_cast<${ptrType}>(${src})` : `*reinterpret_cast<${ptrType} *>(${src})`;
    }
    case 'threadgroup':
      return `reinterpret_cast<${ptrType}>(${bufAt('__t->g->tg_dyn', '__t->g->n_tg_dyn', p.attr.index)})`;
    case 'builtin':
      return `::moe_rt::builtin_as<${p.baseType}>(::moe_rt::bi_${p.attr.name}(__t))`;
    case 'none':
      throw new Error(`parameter ${p.name} has no attribute`);
  }
}

export function entrySymbol(i: number): string {
  return `__moe_entry_${i}`;
}

export function emitCpp(parsed: ParsedMsl, options: { headerName?: string } = {}): EmitResult {
  if (parsed.kernels.length === 0) {
    throw new MslError(parsed.file, 1, 1, 'no kernel functions found (a compute kernel is declared `kernel void name(...)`)');
  }
  const header = options.headerName ?? 'moe_metal.h';
  const file = parsed.file.replace(/\\/g, '/');
  const parts: string[] = [`#include "${header}"`, `#line 1 ${cString(file)}`, rewriteSource(parsed), '', `#line 1 ${cString(`${file} (generated entries)`)}`];
  const table: string[] = [];
  parsed.kernels.forEach((k: MslKernel, i) => {
    const call = `${k.functionName}${k.templateArgs !== null ? `<${k.templateArgs}>` : ''}`;
    const args = k.params.map((p) => paramArg(p, 'cpp'));
    parts.push(`extern "C" void ${entrySymbol(i)}(const MoeThreadCtx* __t) {`);
    parts.push(`  ${call}(${args.join(',\n    ')});`);
    parts.push('}');
    table.push(`  {${cString(k.name)}, &${entrySymbol(i)}, ${k.usesSync ? 1 : 0}u, 0u}`);
  });
  parts.push(`static const MoeKernelInfo __moe_kernel_table[] = {\n${table.join(',\n')}\n};`);
  parts.push(
    `extern "C" __attribute__((visibility("default"))) const MoeKernelInfo* __moe_kernels(uint32_t* n) { *n = ${parsed.kernels.length}u; return __moe_kernel_table; }`,
  );
  return {
    code: parts.join('\n') + '\n',
    kernels: parsed.kernels.map((k, i) => ({ name: k.name, entrySymbol: entrySymbol(i), usesSync: k.usesSync })),
  };
}
