/**
 * The device self-test (DESIGN.md, "The Metal backend"): tiny kernels whose
 * outputs are known exactly — a copy, a barrier reduction, a SIMD-group sum
 * and broadcast, a bfloat round trip. Run before verify or bench on any GPU
 * backend; a device that fails one is refused (exit 2) with the check named.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { f32ToBf16Bits, bf16BitsToF32 } from '../util/bf16.js';
import { SHADER_DIR } from '../util/paths.js';
import type { Backend } from './types.js';
import type { NativeLaunch } from './addon-types.js';

export interface SelfTestCheck {
  name: string;
  pass: boolean;
  detail: string;
  /** Skipped (e.g. bfloat on a device without MSL 3.1): never counts as a pass. */
  skipped?: boolean;
}

const u8 = (a: Uint32Array | Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as number;
    const w = want[i] as number;
    if (!(g === w || (Number.isNaN(g) && Number.isNaN(w)))) return `element ${i}: got ${g}, expected ${w}`;
  }
  return null;
}

export interface SelfTestOptions {
  /** Skip the bfloat check (device without bfloat support), reported as skipped. */
  noBfloat?: string;
}

export async function runSelfTest(be: Backend, o: SelfTestOptions = {}): Promise<SelfTestCheck[]> {
  const file = join(SHADER_DIR, 'selftest.metal');
  const src = readFileSync(file, 'utf8');
  const checks: SelfTestCheck[] = [];
  const one = async (
    name: string,
    entry: string,
    input: Uint32Array | Float32Array,
    out: Uint32Array | Float32Array,
    want: ArrayLike<number>,
    launch: NativeLaunch,
  ): Promise<void> => {
    try {
      const p = await be.compile(src, file, entry);
      await be.run(p, [u8(input), u8(out)], launch);
      const bad = firstMismatch(out, want);
      checks.push({ name, pass: bad === null, detail: bad ?? 'exact' });
    } catch (e) {
      checks.push({ name, pass: false, detail: (e as Error).message.split('\n')[0] ?? 'error' });
    }
  };

  const n = 1000;
  const cin = Uint32Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 0);
  await one('copy', 'selftest_copy', cin, new Uint32Array(n), Array.from(cin, (v) => (v ^ 0x5a5a5a5a) >>> 0), {
    mode: 'threads', grid: [n, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [],
  });

  const groups = 5;
  const rin = Uint32Array.from({ length: groups * 256 }, (_, i) => (i * 7 + 3) % 1013);
  const rwant = Array.from({ length: groups }, (_, g) => rin.subarray(g * 256, g * 256 + 256).reduce((a, b) => a + b, 0));
  await one('barrier reduction', 'selftest_barrier_sum', rin, new Uint32Array(groups), rwant, {
    mode: 'threadgroups', grid: [groups, 1, 1], threadgroup: [256, 1, 1], threadgroupMemory: [],
  });

  const m = 128;
  const sin = Uint32Array.from({ length: m }, (_, i) => i + 1);
  const swant = Array.from({ length: m }, (_, i) => {
    const base = Math.floor(i / 32) * 32;
    let s = 0;
    for (let j = base; j < base + 32; j++) s += sin[j] as number;
    return s * 1000;
  });
  await one('SIMD-group sum', 'selftest_simd', sin, new Uint32Array(m), swant, {
    mode: 'threadgroups', grid: [1, 1, 1], threadgroup: [m, 1, 1], threadgroupMemory: [],
  });

  if (o.noBfloat) {
    checks.push({ name: 'bfloat round trip', pass: false, skipped: true, detail: o.noBfloat });
  } else {
    const vals = [1, 1.00390625, 1.01171875, -2.5, 3.4e38, 65504, 0, 0.1];
    const bin = Float32Array.from(vals);
    const bwant = Array.from(bin, (v) => bf16BitsToF32(f32ToBf16Bits(v)));
    await one('bfloat round trip', 'selftest_bfloat', bin, new Float32Array(vals.length), bwant, {
      mode: 'threads', grid: [vals.length, 1, 1], threadgroup: [vals.length, 1, 1], threadgroupMemory: [],
    });
  }
  return checks;
}

/** Refuse the device (exit 2) when any non-skipped check failed. */
export function assertSelfTest(be: Backend, checks: SelfTestCheck[]): void {
  const bad = checks.filter((c) => !c.pass && !c.skipped);
  if (bad.length > 0) {
    throw new UsageError(
      `device self-test failed on ${be.name} (${be.device().name}): ${bad.map((c) => `${c.name}: ${c.detail}`).join('; ')}. ` +
        'The device is refused: its results could not be trusted.',
    );
  }
}
