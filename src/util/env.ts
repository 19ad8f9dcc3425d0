/** Facts about the environment the reports need. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './paths.js';

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
