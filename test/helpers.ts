/** Helpers for tests that drive the public surface: the `moe` command line. */
import { spawnSync } from 'node:child_process';
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

export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `moe-${prefix}-`));
}

export function shader(...parts: string[]): string {
  return join(ROOT, 'test', 'shaders', ...parts);
}
