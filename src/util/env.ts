/** Facts about the environment the reports need. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './paths.js';
import { parseMemoryLimit } from '../backend/limits.js';
import { UsageError } from '../errors.js';

let version: string | null = null;

export function toolVersion(): string {
  if (version === null) {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
    version = pkg.version;
  }
  return version;
}

/** Colour only on a TTY and never with NO_COLOR set. */
export function useColor(): boolean {
  return process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
}

/**
 * The MOE_* environment values the tool reads, checked before a command runs:
 * a value that does not parse is an error naming the variable (never silently
 * ignored). MOE_SEED, MOE_BACKEND and MOE_KERNEL are flags' defaults and are
 * checked as those flags.
 */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  parseMemoryLimit(env.MOE_MEMORY_LIMIT);
  const fast = env.MOE_METAL_FAST_MATH;
  if (fast !== undefined && !['0', '1', ''].includes(fast.trim())) {
    throw new UsageError(`MOE_METAL_FAST_MATH: '${fast}' is not 0 or 1`);
  }
  const cache = env.MOE_CACHE_DIR;
  if (cache !== undefined && cache !== '' && existsSync(cache) && !statSync(cache).isDirectory()) {
    throw new UsageError(`MOE_CACHE_DIR: ${cache} is not a folder`);
  }
  for (const name of ['MOE_NATIVE_ADDON', 'MOE_METAL_ADDON'] as const) {
    const file = env[name];
    if (file !== undefined && file.trim() !== '' && !existsSync(file.trim())) throw new UsageError(`${name}: ${file} does not exist`);
  }
}
