/**
 * The terminal a command writes to: how wide its tables may be, whether a
 * spinner may run, and what SIGINT/SIGTERM do while kernels run.
 */
import ora, { type Ora } from 'ora';

/** Width of tables when nothing says otherwise (stdout is a pipe or a file, and COLUMNS is unset). */
export const DEFAULT_WIDTH = 120;
/** Narrowest width tables are fitted to: below it they wrap anyway. */
export const MIN_WIDTH = 40;

/**
 * The width the user's terminal has: COLUMNS when it is a positive integer,
 * else the width stdout reports when it is a terminal that knows it; null
 * when neither (a pipe, a file, a CI log).
 */
export function knownWidth(env: NodeJS.ProcessEnv = process.env, stdout: { isTTY?: boolean; columns?: number } = process.stdout): number | null {
  const fromEnv = env.COLUMNS?.trim();
  if (fromEnv && /^\d+$/.test(fromEnv) && Number(fromEnv) > 0) return Math.max(MIN_WIDTH, Number(fromEnv));
  if (stdout.isTTY === true && typeof stdout.columns === 'number' && stdout.columns > 0) return Math.max(MIN_WIDTH, stdout.columns);
  return null;
}

/** Columns available to tables: knownWidth(), else DEFAULT_WIDTH. */
export function terminalWidth(env: NodeJS.ProcessEnv = process.env, stdout: { isTTY?: boolean; columns?: number } = process.stdout): number {
  return knownWidth(env, stdout) ?? DEFAULT_WIDTH;
}

/**
 * Whether a spinner may draw: stdout and stderr are both terminals, stderr
 * knows its width (a width of 0 or none makes a redrawing spinner count
 * infinitely many lines to clear), and TERM is not 'dumb'.
 */
export function spinnerAllowed(
  stdout: { isTTY?: boolean } = process.stdout,
  stderr: { isTTY?: boolean; columns?: number } = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (stdout.isTTY !== true || stderr.isTTY !== true) return false;
  if (typeof stderr.columns !== 'number' || !(stderr.columns > 0)) return false;
  return env.TERM !== 'dumb';
}

/** A spinner on stderr, or null when the terminal cannot show one (spinnerAllowed). */
export function startSpinner(text: string, allowed: boolean): Ora | null {
  if (!allowed || !spinnerAllowed()) return null;
  // ora's own signal handling would keep the process alive on SIGINT: ours (onInterrupt) ends it.
  return ora({ stream: process.stderr, discardStdin: false, hideCursor: false }).start(text);
}

const SIGNAL_NUMBERS: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 2, SIGTERM: 15 };

/**
 * Until the returned function is called: on SIGINT or SIGTERM, call `report`
 * (which prints what finished), then end the process at once with the exit
 * status of that signal (128 + its number), abandoning running dispatches:
 * native work in flight is not waited for.
 */
export function onInterrupt(report: (signal: NodeJS.Signals) => void): () => void {
  let fired = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (fired) return;
    fired = true;
    try {
      report(signal);
    } catch (e) {
      process.stderr.write(`(could not report the finished work: ${(e as Error).message})\n`);
    }
    process.stderr.write(`\ninterrupted by ${signal}\n`);
    process.exit(128 + SIGNAL_NUMBERS[signal as 'SIGINT' | 'SIGTERM']);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
