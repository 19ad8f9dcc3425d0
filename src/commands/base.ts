/** Shared flags and error handling of the moe commands. */
import { Command, Errors, Flags } from '@oclif/core';
import { UsageError } from '../errors.js';

export const backendFlag = Flags.string({
  description: 'backend to run on: metal, cuda or cpu (default: the best available)',
  env: 'MOE_BACKEND',
  options: ['metal', 'cuda', 'cpu'],
});

export const seedFlag = Flags.integer({
  description: 'seed of the random inputs (printed in every report)',
  env: 'MOE_SEED',
  default: 42,
});

export abstract class MoeCommand extends Command {
  static override enableJsonFlag = true;

  /** Bad usage and environment errors exit 2 with their message and no stack trace. */
  override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    if (err.oclif !== undefined && !(err instanceof UsageError)) return super.catch(err);
    const text = err instanceof UsageError ? err.message : `internal error: ${process.env.MOE_DEBUG ? (err.stack ?? err.message) : err.message}`;
    const cli = new Errors.CLIError(text, { exit: 2 });
    return super.catch(Object.assign(cli, { exitCode: 2 }));
  }
}

/**
 * Parse "1,16,256" into numbers; UsageError on anything else. Integers by
 * default, at least `min` (default 1); `float` accepts decimals and signs.
 */
export function parseList(flag: string, value: string | undefined, opts: { min?: number; float?: boolean } = {}): number[] | undefined {
  if (value === undefined) return undefined;
  const min = opts.min ?? 1;
  const out: number[] = [];
  for (const s of value.split(',').map((x) => x.trim())) {
    const ok = opts.float ? /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s) : /^-?\d+$/.test(s);
    if (!ok) throw new UsageError(`--${flag}: '${s}' is not ${opts.float ? 'a number' : 'an integer'}`);
    const v = Number(s);
    if (!opts.float && min >= 1 && v <= 0) throw new UsageError(`--${flag}: ${v} must be positive`);
    if (v < min) throw new UsageError(`--${flag}: ${v} must be at least ${min}`);
    if (!Number.isFinite(v) || (!opts.float && (!Number.isSafeInteger(v) || v > 2 ** 31))) throw new UsageError(`--${flag}: ${s} is too large`);
    out.push(v);
  }
  return out;
}
