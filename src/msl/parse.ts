/** parseMsl, and the analysis behind a ParsedMsl for the emitters. */
import { analyze, type Analysis } from './analyze.js';
import type { ParsedMsl } from './types.js';

const analyses = new WeakMap<ParsedMsl, Analysis>();

/** Parses an MSL compute source. Throws MslError (file:line:col) on malformed or unsupported input. */
export function parseMsl(source: string, file: string): ParsedMsl {
  const a = analyze(source, file);
  const parsed: ParsedMsl = { file, source, kernels: a.kernels, structs: a.structs };
  analyses.set(parsed, a);
  return parsed;
}

/** The analysis of a parsed source (computed again when the object did not come from parseMsl). */
export function analysisOf(parsed: ParsedMsl): Analysis {
  let a = analyses.get(parsed);
  if (!a || a.source !== parsed.source || a.file !== parsed.file) {
    a = analyze(parsed.source, parsed.file);
    analyses.set(parsed, a);
  }
  return a;
}
