/** Where the package's own files live, from dist/ or src/ alike. */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';

export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHADER_DIR = join(PACKAGE_ROOT, 'shaders');
export const NATIVE_INCLUDE_DIR = join(PACKAGE_ROOT, 'native', 'include');

/** Compile cache: $MOE_CACHE_DIR, else $XDG_CACHE_HOME/moe-kernels, else ~/.cache/moe-kernels. */
export function cacheDir(): string {
  if (process.env.MOE_CACHE_DIR) return process.env.MOE_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(base, 'moe-kernels');
}
