/**
 * What every backend does with a shader before its own compiler sees it:
 * parse the MSL, find the entry, name the source's version; and, for the
 * backends that compile our headers with it, the headers' text for their
 * caches' keys.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShaderCompileError, UsageError } from '../errors.js';
import { MslError, parseMsl, type MslKernel, type ParsedMsl } from '../msl/index.js';
import type { Backend, FileCompileResult, KernelCompileResult, Pipeline } from './types.js';
import { NATIVE_INCLUDE_DIR } from '../util/paths.js';

/** The front end's MslError as a ShaderCompileError (exit 2); anything else as it is. */
export function asCompileError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof MslError) throw new ShaderCompileError(e.message);
    throw e;
  }
}

/** The file parsed kernel by kernel (an error inside one kernel fails that kernel only). */
export function parseFile(source: string, file: string): ParsedMsl {
  return asCompileError(() => parseMsl(source, file, { perKernel: true }));
}

function noSuchKernel(file: string, entry: string, names: string[]): UsageError {
  return new UsageError(`${file}: no kernel named '${entry}' (kernels in the file: ${names.join(', ') || 'none'})`);
}

/**
 * The parsed source and its kernel `entry`: UsageError naming the kernels
 * there are when it has none such, ShaderCompileError with the kernel's own
 * error when that kernel does not parse.
 */
export function parseEntry(source: string, file: string, entry: string): { parsed: ParsedMsl; kernel: MslKernel } {
  const parsed = parseFile(source, file);
  const kernel = parsed.kernels.find((k) => k.name === entry);
  if (!kernel) {
    const failed = parsed.failed?.find((f) => f.name === entry);
    if (failed) throw new ShaderCompileError(failed.message);
    throw noSuchKernel(file, entry, [...parsed.kernels.map((k) => k.name), ...(parsed.failed ?? []).map((f) => f.name)]);
  }
  return { parsed, kernel };
}

/** One kernel of a file compiled kernel by kernel: its pipeline, or a ShaderCompileError with its own error. */
export function pickEntry(r: FileCompileResult, entry: string): Pipeline {
  const k = r.kernels.find((x) => x.name === entry);
  if (!k) throw noSuchKernel(r.file, entry, r.kernels.map((x) => x.name));
  if (!k.ok) throw new ShaderCompileError(k.error);
  return k.pipeline;
}

/**
 * compileFile for a backend without isolation of its own (Metal compiles the
 * source as it is): each kernel compiled on its own, its error kept.
 */
export async function compileEachEntry(
  source: string,
  file: string,
  backend: FileCompileResult['backend'],
  compile: (entry: string) => Promise<Pipeline>,
): Promise<FileCompileResult> {
  const parsed = parseFile(source, file);
  const kernels: KernelCompileResult[] = (parsed.failed ?? []).map((f) => ({ name: f.name, line: f.kernelLine, ok: false, error: f.message, errorLine: f.line }));
  for (const k of parsed.kernels) {
    try {
      kernels.push({ name: k.name, line: k.line, ok: true, pipeline: await compile(k.name) });
    } catch (e) {
      if (!(e instanceof ShaderCompileError)) throw e;
      const at = e.message.indexOf(`${file}:`);
      const m = at >= 0 ? /^:(\d+)/.exec(e.message.slice(at + file.length)) : null;
      kernels.push({ name: k.name, line: k.line, ok: false, error: e.message, errorLine: m ? Number(m[1]) : null });
    }
  }
  kernels.sort((a, b) => a.line - b.line);
  return { file, backend, kernels };
}

/** sha256 of the source, reported as the shader's version. */
export function sourceHashOf(source: string): string {
  return createHash('sha256').update(source).digest('hex').slice(0, 16);
}

/** Every header under native/include (recursively): any change invalidates the compile caches. */
export function headerText(dir = NATIVE_INCLUDE_DIR): string {
  let all = '';
  if (!existsSync(dir)) return all;
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) all += headerText(p);
    else if (/\.(h|hpp|inc)$/.test(e.name)) all += `\0${e.name}\0${readFileSync(p, 'utf8')}`;
  }
  return all;
}

/**
 * The cache key of one translation unit compiled with our headers: its code,
 * the headers' text and `settings` (compiler, flags, target), hashed.
 */
export function unitHash(code: string, settings: string): string {
  return createHash('sha256').update(code).update('\0').update(headerText()).update('\0').update(settings).digest('hex').slice(0, 32);
}

/**
 * A backend's compileFile done once per file: the compile of a (settings,
 * file, source) is shared by every caller, while it runs and after; one that
 * rejects is forgotten, so that the next call tries again. `settings` name
 * what else changes the compiled code (CUDA's loop polls).
 */
export class FileCompileMemo {
  private readonly files = new Map<string, Promise<FileCompileResult>>();

  get(settings: readonly string[], source: string, file: string, compile: () => Promise<FileCompileResult>): Promise<FileCompileResult> {
    const h = createHash('sha256');
    for (const part of [...settings, file]) h.update(part).update('\0');
    const key = h.update(source).digest('hex');
    let r = this.files.get(key);
    if (!r) {
      r = compile();
      this.files.set(key, r);
      r.catch(() => this.files.delete(key));
    }
    return r;
  }
}

/** Every kernel of a file through `backend`: its compileFile, or compile kernel after kernel where it has none. */
export function compileFileWith(backend: Backend, source: string, file: string): Promise<FileCompileResult> {
  return backend.compileFile ? backend.compileFile(source, file) : compileEachEntry(source, file, backend.name, (e) => backend.compile(source, file, e));
}
