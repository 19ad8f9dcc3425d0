/**
 * Optional device features (DeviceInfo.features) against what a shader
 * needs. Today one: MSL's bfloat type, which needs MSL 3.1 on Metal. A kernel
 * whose source needs a feature the device lacks is reported as SKIP with the
 * reason (verify, bench), never compiled and never PASS.
 */
import { relative } from 'node:path';
import { UsageError } from '../errors.js';
import { lex } from '../msl/lexer.js';
import type { DeviceInfo } from './types.js';

/** A shader needs a feature the device lacks (exit 2 where it cannot be a SKIP row, e.g. moe dispatch). */
export class FeatureMissingError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'FeatureMissingError';
  }
}

/** bfloat, bfloat2..4, bfloat16_t, and the bfloat SIMD-group matrix types. */
const BFLOAT_IDENT = /^(?:bfloat[234]?|bfloat16_t|simdgroup_bfloat\d+x\d+)$/;

/** Line of the first use of a bfloat type in the source (comments excluded), or null. */
export function bfloatLine(source: string, file: string): number | null {
  let tokens;
  try {
    tokens = lex(source, file).tokens;
  } catch {
    // Not lexable: the compile reports it; fall back to a plain search outside // comments.
    const i = source.split('\n').findIndex((l) => /\bbfloat/.test(l.replace(/\/\/.*$/, '')));
    return i < 0 ? null : i + 1;
  }
  const t = tokens.find((x) => x.kind === 'ident' && BFLOAT_IDENT.test(x.text));
  return t ? t.line : null;
}

/**
 * Why this source cannot run on this device, or null. The whole file is
 * compiled at once, so one bfloat kernel in a file keeps its f32 neighbours
 * from compiling too; the reason says which line needs it.
 */
export function featureSkip(device: DeviceInfo, source: string, file: string): string | null {
  const f = device.features;
  if (!f || f.bfloat) return null;
  const line = bfloatLine(source, file);
  if (line === null) return null;
  const rel = relative(process.cwd(), file);
  const shown = rel !== '' && !rel.startsWith('..') ? rel : file;
  return `${shown}:${line} uses bfloat, which ${device.name} cannot compile here: ${f.bfloatReason ?? 'no bfloat support'}`;
}
