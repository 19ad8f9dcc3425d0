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
    loadError = `native addon not built (${path} is missing): run 'npm ci' or 'npx node-gyp rebuild'`;
    throw new Error(loadError);
  }
  try {
    const require = createRequire(import.meta.url);
    const mod = require(path) as NativeAddon;
    if (mod.abiVersion !== EXPECTED_ABI) {
      throw new Error(`native addon ABI ${String(mod.abiVersion)} does not match ${EXPECTED_ABI}: rebuild it`);
    }
    cached = mod;
    return mod;
  } catch (e) {
    loadError = `native addon failed to load (${path}): ${(e as Error).message}`;
    throw new Error(loadError);
  }
}
