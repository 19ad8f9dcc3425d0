/** Helpers for tests that drive the public surface: the `moe` command line. */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PACKAGE_ROOT } from '../src/util/paths.js';

export const ROOT = PACKAGE_ROOT;
export const BIN = join(ROOT, 'bin', 'run.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `moe ...args` in a child process (never a shell), from the built dist/. */
export function moe(args: string[], env: Record<string, string> = {}, timeoutMs = 240_000): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
    timeout: timeoutMs,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Start `moe ...args`, send it `signal` after `afterMs`, and collect what it
 * wrote and how it ended (SIGKILL `graceMs` after the signal, so a test never
 * hangs); `ms` is the time from the signal to the exit. With `ready`, a run
 * whose result it rejects (signalled before the work to interrupt had begun,
 * on a loaded machine) is made once more, with three times the wait.
 */
export async function interruptMoe(
  args: string[],
  signal: NodeJS.Signals,
  afterMs: number,
  o: { env?: Record<string, string>; ready?: (r: CliResult) => boolean; graceMs?: number } = {},
): Promise<CliResult & { ms: number }> {
  let r = await interruptOnce(args, signal, afterMs, o.env ?? {}, o.graceMs ?? 30_000);
  if (o.ready && !o.ready(r)) r = await interruptOnce(args, signal, 3 * afterMs, o.env ?? {}, o.graceMs ?? 30_000);
  return r;
}

async function interruptOnce(args: string[], signal: NodeJS.Signals, afterMs: number, env: Record<string, string>, graceMs: number): Promise<CliResult & { ms: number }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, sig) => res({ code, signal: sig })));
  await new Promise((res) => setTimeout(res, afterMs));
  const t0 = Date.now();
  child.kill(signal);
  const hard = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const end = await exited;
  clearTimeout(hard);
  return { ...end, stdout, stderr, ms: Date.now() - t0 };
}

export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `moe-${prefix}-`));
}

export function shader(...parts: string[]): string {
  return join(ROOT, 'test', 'shaders', ...parts);
}
