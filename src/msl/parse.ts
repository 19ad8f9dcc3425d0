/** parseMsl, and the analysis behind a ParsedMsl for the emitters. */
import { analyze, type Analysis } from './analyze.js';
import type { ParsedMsl } from './types.js';

const analyses = new WeakMap<ParsedMsl, Analysis>();

export interface ParseOptions {
  /**
   * An error inside one kernel (its signature, an unsupported feature in its
   * body) fails that kernel only: it is listed in `failed` and left out of
   * the emitted code. Errors outside kernels still throw.
   */
  perKernel?: boolean;
}

/** Parses an MSL compute source. Throws MslError (file:line:col) on malformed or unsupported input. */
export function parseMsl(source: string, file: string, options: ParseOptions = {}): ParsedMsl {
  const a = analyze(source, file, options);
  const parsed: ParsedMsl = { file, source, kernels: a.kernels, structs: a.structs };
  if (options.perKernel) parsed.failed = a.failed.map((f) => ({ name: f.name, kernelLine: f.defLines[0], line: f.line, message: f.error.message }));
  analyses.set(parsed, a);
  return parsed;
}

/** The analysis of a parsed source (computed again when the object did not come from parseMsl). */
export function analysisOf(parsed: ParsedMsl): Analysis {
  let a = analyses.get(parsed);
  if (!a || a.source !== parsed.source || a.file !== parsed.file) {
    a = analyze(parsed.source, parsed.file, { perKernel: parsed.failed !== undefined });
    analyses.set(parsed, a);
  }
  return a;
}
