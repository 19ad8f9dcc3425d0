/**
 * What every moe command shares: flags, their parsing, error handling and
 * exit codes, and emit(), which writes a report the same way for every
 * command (--json, --markdown, --junit FILE, else the table).
 */
import { Command, Errors, Flags } from '@oclif/core';
import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { NativeRunOptions } from '../backend/addon-types.js';
import { MAX_STACK_SIZE, MIN_STACK_SIZE } from '../backend/limits.js';
import { KernelRuntimeError, UsageError } from '../errors.js';
import type { Renderers } from '../report/common.js';
import { checkEnvironment, useColor } from '../util/env.js';
import { knownWidth, onInterrupt, spinnerAllowed, terminalWidth } from './terminal.js';

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

/** --shard i/n on the commands that run cases (src/kernels/shard.ts splits them). */
export const shardFlag = Flags.string({
  description: 'run only the i-th of n disjoint shares of the cases (e.g. 2/3), for the jobs of a CI matrix; `moe merge` combines their --json reports',
});

/** --junit and --markdown: the same on every command that reports cases (emit() writes them). */
export const reportFlags = {
  junit: Flags.string({ description: 'also write a JUnit XML report to this file' }),
  markdown: Flags.boolean({ description: 'print a Markdown summary (for CI step summaries) instead of the table' }),
  'json-file': Flags.string({ description: 'also write the --json report to this file (e.g. for moe merge), whatever is printed' }),
};

/** --param NAME=VALUES: any param of the selected kernels, by name or flag (user specs' params may have no flag of their own). */
export const paramFlag = Flags.string({
  description: "set a param of the selected kernels by its name or flag, NAME=VALUES (comma list sweeps; repeatable): for the params of --spec kernels that have no flag of their own",
  multiple: true,
  helpGroup: 'SHAPE',
});

/**
 * The values --param gives, by the name it used; a usage error for text that
 * is not NAME=VALUES or a name that no selected kernel has.
 */
export function paramAssignments(list: string[] | undefined, specs: { name: string; params: { name: string; flag?: string }[] }[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of list ?? []) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(\S.*)$/.exec(item);
    if (!m) throw new UsageError(`--param: '${item}' is not NAME=VALUES (e.g. --param hidden=1024,4096)`);
    const name = m[1] as string;
    if (!specs.some((s) => s.params.some((p) => p.name === name || p.flag === name))) {
      const known = [...new Set(specs.flatMap((s) => s.params.map((p) => p.name)))];
      throw new UsageError(`--param: no selected kernel has a param '${name}' (they have: ${known.join(', ')})`);
    }
    out.set(name, (m[2] as string).trim());
  }
  return out;
}

/** A param's text from its own flag, else from --param (by name or flag). */
export function paramText(p: { name: string; flag?: string }, flags: Record<string, unknown>, assigned: Map<string, string>): string | undefined {
  const flag = p.flag ?? p.name;
  return (flags[flag] as string | undefined) ?? assigned.get(p.name) ?? assigned.get(flag);
}

/** --timeout and --stack-size: the watchdog and the kernel threads' stack (safetyRunOptions reads them). */
export const safetyFlags = {
  timeout: Flags.string({
    description:
      'watchdog: abandon a dispatch still running after this long: seconds, or with a unit (500ms, 30s, 2m); 0 for none (default: max(10 s, 100 ns per thread or byte/flop of the case))',
    helpGroup: 'SAFETY',
  }),
  'stack-size': Flags.string({
    description: 'stack of each kernel thread on the cpu backend: bytes, or with K/M (512K, 4M); 16K to 64M (default 256K)',
    helpGroup: 'SAFETY',
  }),
};

/** --timeout in milliseconds (undefined: the backend's default scaled to the work). */
export function parseTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m)?\s*$/i.exec(value);
  if (!m) throw new UsageError(`--timeout: '${value}' is not a duration (seconds, or 500ms, 30s, 2m)`);
  const unit = (m[2] ?? 's').toLowerCase();
  const ms = Number(m[1]) * (unit === 'ms' ? 1 : unit === 'm' ? 60_000 : 1000);
  if (ms > 7 * 24 * 3600 * 1000) throw new UsageError(`--timeout: '${value}' is more than a week`);
  return ms === 0 ? 0 : Math.max(1, Math.round(ms));
}

/** --stack-size in bytes (undefined: the runtime's default, 256 KiB). */
export function parseStackSize(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+)\s*(k|kb|kib|m|mb|mib)?\s*$/i.exec(value);
  if (!m) throw new UsageError(`--stack-size: '${value}' is not a size (bytes, or 512K, 4M)`);
  const unit = (m[2] ?? '').toLowerCase();
  const bytes = Number(m[1]) * (unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1);
  if (bytes < MIN_STACK_SIZE || bytes > MAX_STACK_SIZE) {
    throw new UsageError(`--stack-size: ${value} is outside ${MIN_STACK_SIZE / 1024}K..${MAX_STACK_SIZE / 1024 / 1024}M (${bytes} bytes)`);
  }
  return bytes;
}

/** The native run options that --timeout and --stack-size set. */
export function safetyRunOptions(flags: { timeout?: string; 'stack-size'?: string }): NativeRunOptions {
  const o: NativeRunOptions = {};
  const t = parseTimeout(flags.timeout);
  if (t !== undefined) o.timeoutMs = t;
  const st = parseStackSize(flags['stack-size']);
  if (st !== undefined) o.stackSize = st;
  return o;
}

/** The flags that name a file a report is written to. */
const OUTPUT_FILE_FLAGS = ['junit', 'html', 'json-file'] as const;

/**
 * Refuse an output file that could not be written, before anything runs:
 * its folder must exist and be writable, and the file, when it exists, must
 * be a writable file.
 */
export function checkOutputPath(flag: string, file: string): void {
  const abs = resolve(file);
  const fail = (why: string): never => {
    throw new UsageError(`--${flag}: cannot write ${file}: ${why}`);
  };
  if (existsSync(abs)) {
    if (statSync(abs).isDirectory()) fail('it is a directory');
    try {
      accessSync(abs, constants.W_OK);
    } catch {
      fail('the file is not writable');
    }
    return;
  }
  const dir = dirname(abs);
  if (!existsSync(dir)) fail(`the folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) fail(`${dir} is not a folder`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    fail(`the folder ${dir} is not writable`);
  }
}

/** The flags emit() reads: which reports to write and how the table is drawn. */
export interface EmitFlags {
  junit?: string;
  markdown?: boolean;
  verbose?: boolean;
  'json-file'?: string;
}

export abstract class MoeCommand extends Command {
  static override enableJsonFlag = true;

  /**
   * Before run(): the MOE_* environment values parse, and every output file
   * can be written (so a long run never ends in an unwritable report).
   */
  override async init(): Promise<void> {
    await super.init();
    checkEnvironment();
    const { flags } = await this.parse(this.ctor);
    const f = flags as Record<string, unknown>;
    for (const name of OUTPUT_FILE_FLAGS) {
      const v = f[name];
      if (typeof v === 'string' && v !== '') checkOutputPath(name, v);
    }
  }

  /**
   * Write the report: the JSON document with --json-file FILE, the JUnit
   * file with --junit FILE; then, unless --json
   * (whose document is the returned report), Markdown with --markdown, else
   * the table. Returns the report, for oclif's --json.
   */
  protected emit<R>(report: R, render: Renderers<R>, flags: EmitFlags): R {
    const file = flags['json-file'];
    if (file) {
      try {
        writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
      } catch (e) {
        throw new UsageError(`--json-file: cannot write ${file}: ${(e as Error).message}`);
      }
    }
    if (flags.junit) {
      try {
        writeFileSync(flags.junit, render.junit(report));
      } catch (e) {
        throw new UsageError(`--junit: cannot write ${flags.junit}: ${(e as Error).message}`);
      }
    }
    if (!this.jsonEnabled()) this.log(flags.markdown ? render.markdown(report) : render.table(report, { color: useColor(), width: terminalWidth(), wrapWidth: knownWidth() ?? Infinity, verbose: flags.verbose === true }));
    return report;
  }

  /**
   * Until the returned function is called: on SIGINT or SIGTERM, stop the
   * spinner, write the report of what finished (`partial`, given the signal)
   * in every form the flags ask for, as emit() does (and as --json prints it),
   * then end with the exit status of the signal (onInterrupt).
   */
  protected reportOnInterrupt<R>(
    partial: (signal: NodeJS.Signals) => R,
    render: Renderers<R>,
    flags: EmitFlags,
    spinner: { stop(): unknown } | null = null,
  ): () => void {
    return onInterrupt((signal) => {
      spinner?.stop();
      const report = partial(signal);
      this.emit(report, render, flags);
      if (this.jsonEnabled()) this.logJson(report);
    });
  }

  /**
   * Whether a spinner may run: stdout and stderr are terminals that know
   * their width (spinnerAllowed), and stdout is not a report for a machine.
   */
  protected interactive(flags: { markdown?: boolean }): boolean {
    return spinnerAllowed() && !this.jsonEnabled() && !flags.markdown;
  }

  /** A warning on stderr, also under --json (whose stdout stays the report alone). */
  protected note(message: string): void {
    process.stderr.write(`Warning: ${message}\n`);
  }

  /**
   * Bad usage and environment errors exit 2 with their message and no stack
   * trace; a kernel that failed while running (where the command has no row
   * to report it in) exits 1, likewise.
   */
  override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    if (err instanceof KernelRuntimeError) {
      const cli = new Errors.CLIError(`kernel failed: ${err.message}`, { exit: 1 });
      return super.catch(Object.assign(cli, { exitCode: 1 }));
    }
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
