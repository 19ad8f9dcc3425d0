/** Loads the native addon once; every other module goes through this. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/paths.js';
import type { NativeAddon } from './addon-types.js';

const EXPECTED_ABI = 2;

let cached: NativeAddon | null = null;
let loadError: string | null = null;

export function addonPath(): string {
  return process.env.MOE_NATIVE_ADDON ?? join(PACKAGE_ROOT, 'build', 'Release', 'moe_native.node');
}

/**
 * How to build the addon where this package sits: an installed copy (under
 * node_modules, e.g. after `npm install --ignore-scripts`) is rebuilt by npm
 * from the project that installed it; the repository's own checkout builds
 * it with its scripts.
 */
export function rebuildHint(root: string): string {
  const installed = root.split(/[\\/]/).includes('node_modules');
  if (installed) {
    return "build it with 'npm rebuild moe-kernels' in the project that installed it ('npm rebuild -g moe-kernels' for a global install; it needs a C++ compiler and Python for node-gyp; installs with --ignore-scripts skip this build)";
  }
  return "build it with 'npm run build:native' in this checkout ('npm ci' installs and builds everything; it needs a C++ compiler and Python for node-gyp)";
}

/** The addon when this process has loaded it (no attempt to load it here), else null. */
export function loadedAddon(): NativeAddon | null {
  return cached;
}

/** The addon, or throws an Error saying why it could not be loaded. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  if (loadError !== null) throw new Error(loadError);
  const path = addonPath();
  if (!existsSync(path)) {
    loadError = `native addon not built (${path} is missing): ${rebuildHint(PACKAGE_ROOT)}`;
    throw new Error(loadError);
  }
  try {
    const require = createRequire(import.meta.url);
    const mod = require(path) as NativeAddon;
    if (mod.abiVersion !== EXPECTED_ABI) {
      throw new Error(`native addon ABI ${String(mod.abiVersion)} does not match ${EXPECTED_ABI}`);
    }
    cached = mod;
    return mod;
  } catch (e) {
    loadError = `native addon failed to load (${path}): ${(e as Error).message}; ${rebuildHint(PACKAGE_ROOT)}`;
    throw new Error(loadError);
  }
}
