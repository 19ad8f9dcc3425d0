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

/** The parsed source and its kernel `entry`; UsageError naming the kernels there are when it has none such. */
export function parseEntry(source: string, file: string, entry: string): { parsed: ParsedMsl; kernel: MslKernel } {
  const parsed = asCompileError(() => parseMsl(source, file));
  const kernel = parsed.kernels.find((k) => k.name === entry);
  if (!kernel) {
    const names = parsed.kernels.map((k) => k.name).join(', ') || 'none';
    throw new UsageError(`${file}: no kernel named '${entry}' (kernels in the file: ${names})`);
  }
  return { parsed, kernel };
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
