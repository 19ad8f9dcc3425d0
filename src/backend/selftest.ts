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
  const shaders = new Map<string, string>();
  const checks: SelfTestCheck[] = [];
  const one = async (
    name: string,
    shader: string,
    entry: string,
    input: Uint32Array | Float32Array,
    out: Uint32Array | Float32Array,
    want: ArrayLike<number>,
    launch: NativeLaunch,
  ): Promise<void> => {
    try {
      const file = join(SHADER_DIR, shader);
      let src = shaders.get(file);
      if (src === undefined) {
        src = readFileSync(file, 'utf8');
        shaders.set(file, src);
      }
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
  await one('copy', 'selftest.metal', 'selftest_copy', cin, new Uint32Array(n), Array.from(cin, (v) => (v ^ 0x5a5a5a5a) >>> 0), {
    mode: 'threads', grid: [n, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [],
  });

  const groups = 5;
  const rin = Uint32Array.from({ length: groups * 256 }, (_, i) => (i * 7 + 3) % 1013);
  const rwant = Array.from({ length: groups }, (_, g) => rin.subarray(g * 256, g * 256 + 256).reduce((a, b) => a + b, 0));
  await one('barrier reduction', 'selftest.metal', 'selftest_barrier_sum', rin, new Uint32Array(groups), rwant, {
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
  await one('SIMD-group sum', 'selftest.metal', 'selftest_simd', sin, new Uint32Array(m), swant, {
    mode: 'threadgroups', grid: [1, 1, 1], threadgroup: [m, 1, 1], threadgroupMemory: [],
  });

  if (o.noBfloat) {
    checks.push({ name: 'bfloat round trip', pass: false, skipped: true, detail: o.noBfloat });
  } else {
    const vals = [1, 1.00390625, 1.01171875, -2.5, 3.4e38, 65504, 0, 0.1];
    const bin = Float32Array.from(vals);
    const bwant = Array.from(bin, (v) => bf16BitsToF32(f32ToBf16Bits(v)));
    await one('bfloat round trip', 'selftest_bfloat.metal', 'selftest_bfloat', bin, new Float32Array(vals.length), bwant, {
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
        `The device is refused: its results could not be trusted${be.name === 'cpu' ? '' : ' (--backend cpu runs the kernels on the CPU instead)'}.`,
    );
  }
}

/** The self-test's options for a backend's device: the bfloat check is skipped (with the reason) where bfloat is missing. */
export function selfTestOptions(be: Backend): SelfTestOptions {
  const f = be.device().features;
  return f && !f.bfloat ? { noBfloat: f.bfloatReason ?? 'the device has no bfloat support' } : {};
}

const verdicts = new WeakMap<Backend, Promise<SelfTestCheck[]>>();

/** The self-test of a backend's device, run once per process (per backend object) and cached. */
export function deviceSelfTest(be: Backend): Promise<SelfTestCheck[]> {
  let v = verdicts.get(be);
  if (!v) {
    v = runSelfTest(be, selfTestOptions(be));
    verdicts.set(be, v);
  }
  return v;
}

/**
 * Before any verify, bench or dispatch on a GPU backend (any backend but
 * cpu, whose semantics the test suite checks): the device self-test must
 * pass, or the device is refused with a UsageError (exit 2) naming each
 * failed check, so that a broken or emulated device never yields kernel PASS
 * or FAIL rows.
 */
export async function ensureDeviceTrusted(be: Backend): Promise<void> {
  if (be.name === 'cpu') return;
  assertSelfTest(be, await deviceSelfTest(be));
}
