/**
 * The CPU backend (DESIGN.md, "The CPU backend"): MSL → C++ (src/msl), compiled
 * by the system compiler into a shared object cached by content hash, loaded
 * and executed by the native runtime with Metal's semantics.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KernelRuntimeError, UsageError } from '../errors.js';
import { emitCpp } from '../msl/index.js';
import { cacheDir, NATIVE_INCLUDE_DIR } from '../util/paths.js';
import { loadAddon } from './addon.js';
import type { NativeLaunch, NativeModule, NativeRunOptions, NativeTimeOptions } from './addon-types.js';
import type { Backend, Buffers, DeviceInfo, FileCompileResult, KernelCompileResult, Pipeline } from './types.js';
import { defaultTimeoutMs } from './limits.js';
import { asCompileError, FileCompileMemo, parseFile, pickEntry, sourceHashOf, unitHash } from './shader.js';
import { attemptOf, compileKernelByKernel, unitLoadFailure, type Diagnostic, type UnitResult } from './isolate.js';

const run = promisify(execFile);

export const CXX_FLAGS = ['-std=c++17', '-O2', '-fPIC', '-shared', '-fno-strict-aliasing', '-fvisibility=hidden'];

/**
 * Flags used when the compiler takes them (probed once per process):
 * -fno-finite-loops keeps a kernel's endless loop an endless loop (C++ lets
 * the optimiser assume forward progress and delete it, or worse; a GPU just
 * spins, and the watchdog ends it); -fstack-clash-protection makes a frame
 * larger than a page touch every page, so a huge local array hits the stack's
 * guard instead of jumping over it.
 */
export const OPTIONAL_CXX_FLAGS = ['-fno-finite-loops', '-fstack-clash-protection'];

/**
 * Link flags: a function declared but never defined is a link error (with
 * the user's words for it, see mapCompilerOutput), not a module that fails
 * to load. (GNU ld, gold and lld; ld64 refuses undefined symbols already.)
 */
export const LINK_FLAGS = process.platform === 'linux' ? ['-Wl,--no-undefined'] : [];

const probed = new Map<string, Promise<string[]>>();

/** The optional flags `cxx` accepts (cached per compiler). */
export function optionalFlags(cxx: string): Promise<string[]> {
  let p = probed.get(cxx);
  if (!p) {
    p = (async () => {
      const ok: string[] = [];
      for (const f of OPTIONAL_CXX_FLAGS) {
        try {
          await run(cxx, ['-x', 'c++', '-std=c++17', '-Werror', f, '-fsyntax-only', '/dev/null']);
          ok.push(f);
        } catch {
          // not supported by this compiler: go without
        }
      }
      return ok;
    })();
    probed.set(cxx, p);
  }
  return p;
}

export function compilerCommand(): string {
  return process.env.CXX && process.env.CXX.trim() !== '' ? process.env.CXX.trim() : 'c++';
}

interface CpuPipeline extends Pipeline {
  module: NativeModule;
}

/** Names of the compat header's types in compiler messages → their MSL spelling. */
const SCALAR_MSL: Record<string, string> = {
  _Float16: 'half',
  'unsigned int': 'uint',
  'unsigned short': 'ushort',
  'unsigned char': 'uchar',
  'long unsigned int': 'ulong',
  'long int': 'long',
};

/** A compiler message in MSL's words: no `{aka ...}` notes about the compat header's types, no -f flag tags. */
function cleanMessage(msg: string): string {
  return msg
    .replace(/\s*\{aka [^}]*\}/g, '')
    .replace(/\s*\[-f[\w-]+\]$/, '')
    .replace(/\b(?:vec|vec_swz|packed_vec)<\s*([\w ]+?)\s*,\s*([234])\s*>/g, (_m, t: string, n: string) => `${SCALAR_MSL[t] ?? t}${n}`);
}

const LOCATED = /^(.*?):(\d+):(\d+): (fatal error|error|warning|note): (.*)$/;
// Where a template instantiation was asked for: GCC's "FILE:L:C:   required from here"
// (before the error), clang's "FILE:L:C: note: in instantiation of ... requested here" (after it).
const INSTANTIATED = /^(.*?):(\d+):(\d+):\s+(?:note: )?.*(?:required from|requested here)/;

/**
 * The compiler's errors, located in the user's .metal file: errors in their
 * lines as they are (the emitted C++ keeps the .metal line structure under
 * `#line`); errors inside the compat header (a template instantiated with
 * the wrong types, a static_assert) at the user's line that led there; errors
 * in the generated entry points named as such. Never a dump of generated C++.
 */
export function mapCompilerOutput(stderr: string, file: string): string {
  return joinMessages(compilerDiagnostics(stderr, file), stderr);
}

/** The messages of the diagnostics, at most 10; the compiler's own last words when none was located. */
function joinMessages(ds: Diagnostic[], stderr: string): string {
  let picked = [...new Set(ds.map((d) => d.message))];
  if (picked.length === 0) {
    // No located error (a crashed or misconfigured compiler, a linker error): its own words.
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    const errs = lines.filter((l) => /error/i.test(l)).map(cleanMessage);
    picked = errs.length > 0 ? errs : lines.slice(-10);
  }
  const max = 10;
  const more = picked.length > max ? [`(${picked.length - max} more errors)`] : [];
  return [...picked.slice(0, max), ...more].join('\n');
}

/** The compiler's errors as diagnostics: messages as mapCompilerOutput prints them, with the lines each points at. */
export function compilerDiagnostics(stderr: string, file: string): Diagnostic[] {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const base = file.split('/').pop() ?? file;
  const isUser = (path: string): boolean => path === file || path === base || path.endsWith(`/${base}`);
  const isEntries = (path: string): boolean => path.endsWith(`${base}.entries.cpp`);
  const isError = (l: string): boolean => {
    const m = LOCATED.exec(l);
    return m !== null && (m[4] as string).includes('error');
  };
  const userSite = (l: string): string | null => {
    const m = INSTANTIATED.exec(l);
    return m && isUser(m[1] as string) ? `${m[1]}:${m[2]}:${m[3]}` : null;
  };
  const out: Diagnostic[] = [];
  const errorIdx = lines.map((l, i) => (isError(l) ? i : -1)).filter((i) => i >= 0);
  for (let i = 0; i < lines.length; i++) {
    const m = LOCATED.exec(lines[i] as string);
    if (!m || !(m[4] as string).includes('error')) continue;
    const [, path, line, col, , rawMsg] = m as unknown as [string, string, string, string, string, string];
    const msg = cleanMessage(rawMsg);
    // where this error was instantiated from: GCC's "required from" lines before it, clang's "requested here" notes after it
    const d: Diagnostic = { message: '', userLines: [], entryLines: [] };
    const at = (l: string): void => {
      const c = INSTANTIATED.exec(l);
      if (!c) return;
      if (isUser(c[1] as string)) d.userLines.push(Number(c[2]));
      else if (isEntries(c[1] as string)) d.entryLines.push(Number(c[2]));
    };
    if (isUser(path)) d.userLines.push(Number(line));
    if (isEntries(path)) d.entryLines.push(Number(line));
    const prevErr = errorIdx.filter((k) => k < i).pop() ?? -1;
    const nextErr = errorIdx.find((k) => k > i) ?? lines.length;
    for (let j = prevErr + 1; j < i; j++) if (/required from/.test(lines[j] as string)) at(lines[j] as string);
    for (let j = i + 1; j < nextErr; j++) if (/requested here/.test(lines[j] as string)) at(lines[j] as string);
    out.push(d);
    if (isUser(path)) {
      d.message = `${path}:${line}:${col}: error: ${msg}`;
    } else if (isEntries(path)) {
      d.message = `${file}: error: ${msg} (in the entry point generated for a kernel of this file: check the kernel's parameter types)`;
    } else {
      let site: string | null = null;
      for (let j = i - 1; j >= 0 && site === null && !isError(lines[j] as string); j--) site = userSite(lines[j] as string);
      for (let j = i + 1; j < lines.length && site === null && !isError(lines[j] as string); j++) site = userSite(lines[j] as string);
      if (site !== null) d.userLines.unshift(Number(site.split(':')[site.split(':').length - 2]));
      const header = `${path.split('/').pop() ?? path}:${line}`;
      d.message =
        site !== null
          ? `${site}: error: ${msg} (raised in ${header})`
          : `${file}: error: ${msg} (in ${header} of the MSL compat header, not at a line of this file)`;
    }
  }
  // The linker: "undefined reference to `helper(float)'" (a function declared but never defined).
  for (const l of lines) {
    const m = /undefined reference to [`‘']([^'’]+)['’]/.exec(l);
    if (m) out.push({ message: `${file}: error: '${m[1]}' is declared but never defined (undefined reference at link time)`, userLines: [], entryLines: [] });
  }
  return out;
}

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly clock = 'host steady_clock around each dispatch (all worker threads)';
  private modules = new Map<string, NativeModule>();

  device(): DeviceInfo {
    const c = cpus();
    const addon = loadAddon();
    return {
      backend: 'cpu',
      name: c[0]?.model.trim() ?? 'unknown CPU',
      details: {
        threads: addon.hardwareConcurrency(),
        compiler: compilerCommand(),
        cache: cacheDir(),
        arch: process.arch,
      },
    };
  }

  private readonly files = new FileCompileMemo();

  async compile(source: string, file: string, entry: string): Promise<Pipeline> {
    return pickEntry(await this.compileFile(source, file), entry);
  }

  compileFile(source: string, file: string): Promise<FileCompileResult> {
    return this.files.get([], source, file, () => this.compileKernels(source, file));
  }

  private async compileKernels(source: string, file: string): Promise<FileCompileResult> {
    loadAddon();
    const parsed = parseFile(source, file);
    const outcomes = await compileKernelByKernel<NativeModule>(parsed, async (omit) => {
      const emitted = asCompileError(() => emitCpp(parsed, { omit }));
      return attemptOf(emitted.kernels, await this.compileUnit(emitted.code, file));
    });
    const sourceHash = sourceHashOf(source);
    const kernels: KernelCompileResult[] = outcomes.map((o) => {
      if (!o.ok) return o;
      const kernel = parsed.kernels.find((k) => k.name === o.name)!;
      const info = o.module.kernels().find((k) => k.name === o.name);
      if (!info) return { name: o.name, line: o.line, ok: false, error: `${file}: compiled module has no kernel '${o.name}'`, errorLine: null };
      const p: CpuPipeline = { backend: 'cpu', entry: o.name, file, kernel, structs: parsed.structs, usesSync: info.usesSync, sourceHash, module: o.module };
      return { name: o.name, line: o.line, ok: true, pipeline: p };
    });
    return { file, backend: 'cpu', kernels };
  }

  /** One translation unit: its module (cached by content hash on disk and here), or the compiler's errors. */
  private async compileUnit(code: string, file: string): Promise<UnitResult<NativeModule>> {
    const addon = loadAddon();
    const cxx = compilerCommand();
    const flags = await optionalFlags(cxx);
    const hash = unitHash(code, [cxx, ...CXX_FLAGS, ...flags, ...LINK_FLAGS, process.arch].join(' '));
    const dir = cacheDir();
    const so = join(dir, `${hash}.so`);
    let module = this.modules.get(hash);
    if (module) return { ok: true, module };
    if (!existsSync(so)) {
      mkdirSync(dir, { recursive: true });
      const cpp = join(dir, `${hash}.cpp`);
      writeFileSync(cpp, code);
      const tmp = join(dir, `${hash}.${process.pid}.${Date.now()}.tmp.so`);
      try {
        await run(cxx, [...CXX_FLAGS, ...flags, `-I${NATIVE_INCLUDE_DIR}`, `-I${dirname(resolve(file))}`, '-o', tmp, cpp, ...LINK_FLAGS], {
          maxBuffer: 16 * 1024 * 1024,
        });
      } catch (e) {
        rmSync(tmp, { force: true });
        const err = e as { stderr?: string; code?: string | number; message: string };
        if (err.code === 'ENOENT') {
          throw new UsageError(`the C++ compiler '${cxx}' was not found: install g++ or clang++, or set CXX`);
        }
        const stderr = err.stderr ?? err.message;
        return { ok: false, diagnostics: compilerDiagnostics(stderr, file), message: `${file}: compile failed\n${mapCompilerOutput(stderr, file)}` };
      }
      renameSync(tmp, so);
    }
    try {
      module = addon.loadModule(so);
    } catch (e) {
      rmSync(so, { force: true }); // (not cached: the next run compiles again)
      const m = /undefined symbol: (\S+)/.exec((e as Error).message);
      const message = m ? `${file}: error: '${m[1]}' is declared but never defined` : `${file}: the compiled kernel module does not load: ${(e as Error).message}`;
      return unitLoadFailure(message);
    }
    this.modules.set(hash, module);
    return { ok: true, module };
  }

  async run(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeRunOptions = {}): Promise<void> {
    try {
      await loadAddon().run((p as CpuPipeline).module, p.entry, buffers, launch, withDefaults(launch, options));
    } catch (e) {
      throw new KernelRuntimeError((e as Error).message);
    }
  }

  async time(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeTimeOptions): Promise<Float64Array> {
    try {
      return await loadAddon().time((p as CpuPipeline).module, p.entry, buffers, launch, withDefaults(launch, options));
    } catch (e) {
      throw new KernelRuntimeError((e as Error).message);
    }
  }
}

/** The watchdog is always on: a budget scaled to the grid when the caller gave none. */
function withDefaults<O extends NativeRunOptions>(launch: NativeLaunch, options: O): O {
  return options.timeoutMs === undefined ? { ...options, timeoutMs: defaultTimeoutMs(launch) } : options;
}
