import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ALPHA,
  classify,
  firstLookInterval,
  gateCase,
  gateRun,
  incomparableSettings,
  pairedInterval,
  ROUNDS,
  unpairedInterval,
  type GateCase,
  type SavedCase,
} from '../src/bench/gate.js';
import { binomialHalfCdf, normalQuantile, signTestRank, tQuantile } from '../src/bench/stats.js';
import { makeRng } from '../src/util/rng.js';

const T = 0.05;

/** Block medians of a kernel of `ns` whose runs spread by `sigma` (log-normal), from a seeded stream. */
function blocks(ns: number, sigma: number, n: number, seed: string): number[] {
  const rng = makeRng(seed);
  return Array.from({ length: n }, () => ns * Math.exp(sigma * rng.normal()));
}

const saved = (medianNs: number, noise = 0.003, repeatsNs?: number[]): SavedCase => ({ kernel: 'k', shape: 's', medianNs, noise, ...(repeatsNs ? { repeatsNs } : {}) });

test('stats: the binomial tail, the sign-test rank and Student t quantiles match tables', () => {
  assert.equal(binomialHalfCdf(10, 1), 11 / 1024);
  assert.equal(binomialHalfCdf(4, 4), 1);
  assert.equal(binomialHalfCdf(4, -1), 0);
  // 16 values at alpha 0.01: the 3rd smallest and 3rd largest (2·P(X ≤ 2) = 0.0042; 2·P(X ≤ 3) = 0.021)
  assert.equal(signTestRank(16, 0.01), 3);
  assert.equal(signTestRank(5, 0.01), 0, 'five values cannot give a 99% interval');
  // t tables: t(0.995; 9) = 3.250, t(0.975; 4) = 2.776, t(0.995; 1) = 63.657; the normal 2.576
  assert.ok(Math.abs(tQuantile(0.01, 9) - 3.2498) < 1e-3);
  assert.ok(Math.abs(tQuantile(0.05, 4) - 2.7764) < 1e-3);
  assert.ok(Math.abs(tQuantile(0.01, 1) - 63.657) < 1e-2);
  assert.ok(Math.abs(tQuantile(0.01, 1e4) - 2.5762) < 1e-3);
  assert.ok(Math.abs(normalQuantile(0.01) - 2.5758) < 1e-4);
  assert.ok(Math.abs(normalQuantile(0.05) - 1.96) < 1e-4);
});

test('classify: the interval against the tolerance band', () => {
  assert.equal(classify({ lo: 0.98, hi: 1.03 }, T), 'same');
  assert.equal(classify({ lo: 1.06, hi: 1.3 }, T), 'slower');
  assert.equal(classify({ lo: 0.7, hi: 0.9 }, T), 'faster');
  assert.equal(classify({ lo: 1.01, hi: 1.08 }, T), 'ambiguous', 'straddles the upper edge');
  assert.equal(classify({ lo: 0.9, hi: 1.01 }, T), 'ambiguous', 'straddles the lower edge');
  assert.equal(classify({ lo: 0, hi: Infinity }, T), 'ambiguous');
});

test('paired A/B: the same distribution is SAME, a 20% shift is SLOWER, a wide overlap is AMBIGUOUS', () => {
  const base = blocks(70e3, 0.02, ROUNDS, 'base');
  const sameCode = blocks(70e3, 0.02, ROUNDS, 'cand');
  assert.equal(classify(pairedInterval(sameCode, base), T), 'same');
  const slow = sameCode.map((x) => 1.2 * x);
  const iv = pairedInterval(slow, base);
  assert.equal(classify(iv, T), 'slower');
  assert.ok(iv.ratio > 1.1 && iv.ratio < 1.3, String(iv.ratio));
  const faster = sameCode.map((x) => x / 1.2);
  assert.equal(classify(pairedInterval(faster, base), T), 'faster');
  // runs that spread by 30%: 8% slower or not, the evidence cannot tell
  const wideBase = blocks(70e3, 0.3, ROUNDS, 'wide-base');
  const wide = blocks(70e3 * 1.08, 0.3, ROUNDS, 'wide-cand');
  assert.equal(classify(pairedInterval(wide, wideBase), T), 'ambiguous');
});

test('paired A/B: two rounds upset by load on one side do not decide the case', () => {
  const base = blocks(70e3, 0.01, ROUNDS, 'b');
  const cand = blocks(70e3, 0.01, ROUNDS, 'c');
  cand[3] = (cand[3] as number) * 2; // a burst of load during two candidate blocks
  cand[9] = (cand[9] as number) * 1.8;
  assert.equal(classify(pairedInterval(cand, base), T), 'same');
});

test('paired A/B: too few rounds for the confidence give no interval (AMBIGUOUS), never a verdict', () => {
  const iv = pairedInterval([2, 2, 2], [1, 1, 1]);
  assert.equal(iv.lo, 0);
  assert.equal(iv.hi, Infinity);
  assert.equal(classify(iv, T), 'ambiguous');
  assert.throws(() => pairedInterval([1, 2], [1]), /one baseline block per candidate block/);
});

test('candidate repeats against a saved value: same → SAME, 20% → SLOWER, spread as wide as the tolerance → AMBIGUOUS', () => {
  const cand = blocks(70e3, 0.01, ROUNDS + 1, 'c');
  assert.equal(classify(unpairedInterval(cand, [70e3]), T), 'same');
  assert.equal(classify(unpairedInterval(cand.map((x) => 1.2 * x), [70e3]), T), 'slower');
  assert.equal(classify(unpairedInterval(cand.map((x) => x / 1.2), [70e3]), T), 'faster');
  const wide = blocks(70e3, 0.06, ROUNDS + 1, 'w');
  assert.equal(classify(unpairedInterval(wide, [70e3]), T), 'ambiguous');
  // a saved run of several blocks: its spread joins the noise model
  assert.equal(classify(unpairedInterval(cand, blocks(70e3, 0.01, 5, 'b5')), T), 'same');
  assert.equal(classify(unpairedInterval(cand, blocks(70e3, 0.08, 5, 'b5w')), T), 'ambiguous');
});

test('candidate repeats: the spread is never taken below the in-run noise', () => {
  const flat = Array(17).fill(73e3) as number[]; // 4.3% slower, zero spread between blocks
  assert.equal(classify(unpairedInterval(flat, [70e3], 0), T), 'same');
  assert.equal(classify(unpairedInterval(flat, [70e3], 0.01), T), 'ambiguous');
});

test('false alarms: 2000 synthetic gates of unchanged code raise none; a 20% slowdown is caught every time', () => {
  let alarms = 0;
  let caught = 0;
  for (let i = 0; i < 1000; i++) {
    const base = blocks(70e3, 0.03, ROUNDS, `fb${i}`);
    const cand = blocks(70e3, 0.03, ROUNDS, `fc${i}`);
    if (classify(pairedInterval(cand, base), T) === 'slower') alarms++;
    if (classify(pairedInterval(cand.map((x) => 1.2 * x), base), T) === 'slower') caught++;
    const one = blocks(70e3, 0.03, 1, `fs${i}`);
    if (classify(unpairedInterval(cand, one), T) === 'slower') alarms++;
  }
  assert.equal(alarms, 0);
  assert.equal(caught, 1000);
});

function fake(result: SavedCase, cand: number[], base?: number[]): GateCase & { calls: string[] } {
  const calls: string[] = [];
  let i = 0;
  let j = 0;
  return {
    result,
    calls,
    measure: async () => {
      calls.push('A');
      return cand[i++ % cand.length] as number;
    },
    ...(base
      ? {
          measureBaseline: async () => {
            calls.push('B');
            return base[j++ % base.length] as number;
          },
        }
      : {}),
  };
}

test('gate: a first look within the band is SAME with nothing re-measured (no baseline code)', async () => {
  const g = fake(saved(71e3), [1]);
  const c = await gateCase(saved(70e3), g, { tolerance: T });
  assert.equal(c.verdict, 'same');
  assert.equal(c.method, 'first look');
  assert.deepEqual(g.calls, []);
});

test('gate: a suspicion from one run is re-measured; the flaky first look of the issue (1.36) becomes SAME', async () => {
  // The saved baseline was a fast outlier (50 µs); the code runs at 70 µs as always.
  const g = fake(saved(68e3), blocks(70e3, 0.01, 16, 'x'));
  const c = await gateCase(saved(50e3, 0.003, [51e3, 70e3, 69e3, 70.5e3, 69.5e3]), g, { tolerance: T });
  assert.equal(c.firstLook.verdict, 'slower', 'one run against the file alone would have failed');
  assert.equal(c.method, 'candidate repeats');
  assert.equal(g.calls.length, ROUNDS);
  assert.equal(c.verdict, 'same');
  assert.equal(c.regression, false);
});

test('gate: with the baseline code every case is A/B interleaved in alternating order', async () => {
  const g = fake(saved(70e3), [84e3], [70e3]);
  const c = await gateCase(saved(70e3), g, { tolerance: T });
  assert.equal(c.method, 'interleaved A/B');
  assert.equal(c.verdict, 'slower', 'a first look within the band does not hide the A/B');
  assert.deepEqual(g.calls.slice(0, 6), ['A', 'B', 'B', 'A', 'A', 'B']);
  assert.equal(c.candidateNs?.length, ROUNDS);
  assert.ok(Math.abs(c.ratio - 1.2) < 1e-9);
});

test('gateRun: SLOWER fails, AMBIGUOUS fails only when strict, cases missing from the baseline are listed', async () => {
  const old = [saved(70e3), { ...saved(70e3), kernel: 'amb' }];
  const slow = fake(saved(90e3), [90e3]);
  const r = await gateRun(old, [slow], { tolerance: T });
  assert.equal(r.fails, true);
  assert.equal(r.comparisons[0]?.verdict, 'slower');
  const amb = (): GateCase => fake({ ...saved(74e3), kernel: 'amb' }, blocks(74e3, 0.08, 16, 'amb'));
  const loose = await gateRun(old, [amb()], { tolerance: T });
  assert.equal(loose.comparisons[0]?.verdict, 'ambiguous');
  assert.equal(loose.fails, false);
  const strict = await gateRun(old, [amb()], { tolerance: T, strict: true });
  assert.equal(strict.fails, true);
  const miss = await gateRun(old, [fake({ ...saved(1), kernel: 'new' }, [1])], { tolerance: T });
  assert.deepEqual(miss.missing, ['new | s']);
  assert.equal(miss.fails, false);
});

test('first look: the in-run noise of both runs at the confidence of the gate', () => {
  const iv = firstLookInterval(saved(100, 0.01), saved(103, 0.01));
  const half = normalQuantile(ALPHA) * Math.sqrt(2) * 0.01;
  assert.ok(Math.abs(iv.lo - 1.03 * Math.exp(-half)) < 1e-12 && Math.abs(iv.hi - 1.03 * Math.exp(half)) < 1e-12);
  assert.equal(classify(iv, T), 'ambiguous');
});

test('incomparable settings: a flag left out is its default, not a difference', () => {
  assert.deepEqual(incomparableSettings({ batch: 1 }, { batch: 1, 'warm-cache': undefined }), []);
  assert.deepEqual(incomparableSettings(undefined, { batch: 1 }), []);
  assert.deepEqual(incomparableSettings({ batch: 10 }, { batch: 1 }), ['the baseline was timed with --batch 10, this run with 1: the times are not comparable']);
  assert.equal(incomparableSettings({ 'warm-cache': true }, {}).length, 1);
});
