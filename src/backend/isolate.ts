/**
 * Whole shader files, kernel by kernel: a file that compiles is compiled
 * once, as one translation unit; only when it does not are its kernels
 * isolated, so that each kernel's result names its own error and the others
 * still compile.
 *
 * On failure: each error the compiler located at a line of a kernel's
 * definition (or of its generated entry, or where it instantiated a template)
 * fails that kernel, and the file is compiled again without them. Errors no
 * kernel can be blamed for (a helper function, the linker) are settled by
 * compiling the helpers alone (still failing: the file's error for every
 * kernel), else one translation unit per kernel.
 */
import type { EmittedKernel, MslKernel, ParsedMsl } from '../msl/index.js';

/** One compiler error: its message in MSL's terms and the lines it points at. */
export interface Diagnostic {
  message: string;
  /** .metal lines of the error and of its instantiation context. */
  userLines: number[];
  /** Lines in the generated entries part (`<file>.entries.*`). */
  entryLines: number[];
}

/** One compile of the file with some kernels left out. */
export type Attempt<M> =
  | { ok: true; module: M; kernels: EmittedKernel[] }
  | { ok: false; kernels: EmittedKernel[]; diagnostics: Diagnostic[]; message: string };

/** One translation unit compiled: its module, or the compiler's errors. */
export type UnitResult<M> = { ok: true; module: M } | { ok: false; diagnostics: Diagnostic[]; message: string };

/** An attempt from the kernels emitted into a translation unit and what compiling it gave. */
export function attemptOf<M>(kernels: EmittedKernel[], r: UnitResult<M>): Attempt<M> {
  return r.ok ? { ok: true, module: r.module, kernels } : { ok: false, kernels, diagnostics: r.diagnostics, message: r.message };
}

/** A translation unit that compiled but does not load: one error no line can be blamed for. */
export function unitLoadFailure(message: string): Extract<UnitResult<never>, { ok: false }> {
  return { ok: false, diagnostics: [{ message, userLines: [], entryLines: [] }], message };
}

export type KernelOutcome<M> =
  | { name: string; line: number; ok: true; module: M; emitted: EmittedKernel }
  | { name: string; line: number; ok: false; error: string; errorLine: number | null };

/** Which kernels of an attempt each diagnostic blames (none: an error outside every kernel). */
export function blame(diagnostics: Diagnostic[], kernels: EmittedKernel[]): Map<string, Diagnostic[]> {
  const out = new Map<string, Diagnostic[]>();
  for (const d of diagnostics) {
    let hit = kernels.filter((k) => d.entryLines.some((l) => l >= k.entryLines[0] && l <= k.entryLines[1]));
    if (hit.length === 0) hit = kernels.filter((k) => d.userLines.some((l) => l >= k.sourceLines[0] && l <= k.sourceLines[1]));
    for (const k of hit) out.set(k.name, [...(out.get(k.name) ?? []), d]);
  }
  return out;
}

function errorText(file: string, ds: Diagnostic[]): string {
  const msgs = [...new Set(ds.map((d) => d.message))];
  return `${file}: compile failed\n${[...msgs.slice(0, 10), ...(msgs.length > 10 ? [`(${msgs.length - 10} more errors)`] : [])].join('\n')}`;
}

/**
 * Compiles `parsed` (a perKernel parse) kernel by kernel through `attempt`,
 * which emits and compiles the file without the kernels it is given.
 * `label` prefixes compile-failure messages ("compile failed (NVRTC)").
 */
export async function compileKernelByKernel<M>(
  parsed: ParsedMsl,
  attempt: (omit: ReadonlySet<string>) => Promise<Attempt<M>>,
  label = 'compile failed',
): Promise<KernelOutcome<M>[]> {
  const file = parsed.file;
  const fix = (s: string): string => s.replace(/^([^\n]*): compile failed\n/, `$1: ${label}\n`);
  const byName = new Map<string, MslKernel>(parsed.kernels.map((k) => [k.name, k]));
  const results = new Map<string, KernelOutcome<M>>();
  for (const f of parsed.failed ?? []) results.set(f.name, { name: f.name, line: f.kernelLine, ok: false, error: f.message, errorLine: f.line });
  const lineOf = (name: string): number => byName.get(name)?.line ?? 0;
  const fail = (name: string, ds: Diagnostic[], fallbackText?: string): void => {
    const own = ds.flatMap((d) => d.userLines)[0];
    results.set(name, {
      name,
      line: lineOf(name),
      ok: false,
      error: fix(fallbackText ?? errorText(file, ds)),
      errorLine: own ?? lineOf(name),
    });
  };
  const omit = new Set<string>();
  const remaining = (): string[] => parsed.kernels.map((k) => k.name).filter((n) => !omit.has(n));
  for (let round = 0; round <= parsed.kernels.length; round++) {
    const a = await attempt(omit);
    if (a.ok) {
      for (const e of a.kernels) results.set(e.name, { name: e.name, line: lineOf(e.name), ok: true, module: a.module, emitted: e });
      return order(parsed, results);
    }
    const blamed = blame(a.diagnostics, a.kernels);
    if (blamed.size === 0) {
      await settleUnblamed(a, omit, remaining(), attempt, results, fail, lineOf);
      return order(parsed, results);
    }
    for (const [name, ds] of blamed) {
      fail(name, ds);
      omit.add(name);
    }
    if (remaining().length === 0) return order(parsed, results);
  }
  return order(parsed, results);
}

async function settleUnblamed<M>(
  failed: Extract<Attempt<M>, { ok: false }>,
  omit: Set<string>,
  rest: string[],
  attempt: (omit: ReadonlySet<string>) => Promise<Attempt<M>>,
  results: Map<string, KernelOutcome<M>>,
  fail: (name: string, ds: Diagnostic[], text?: string) => void,
  lineOf: (name: string) => number,
): Promise<void> {
  const all = new Set([...omit, ...rest]);
  const helpers = await attempt(all);
  if (!helpers.ok) {
    // the file fails without any kernel: its error is every kernel's
    for (const name of rest) fail(name, helpers.diagnostics, helpers.message);
    return;
  }
  for (const name of rest) {
    const others = new Set([...all].filter((n) => n !== name));
    const one = await attempt(others);
    if (one.ok) {
      const e = one.kernels.find((k) => k.name === name);
      if (e) results.set(name, { name, line: lineOf(name), ok: true, module: one.module, emitted: e });
    } else fail(name, one.diagnostics, one.message || failed.message);
  }
}

function order<M>(parsed: ParsedMsl, results: Map<string, KernelOutcome<M>>): KernelOutcome<M>[] {
  return [...results.values()].sort((a, b) => a.line - b.line);
}
