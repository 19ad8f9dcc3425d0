import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampleUntilStable, shouldStop, stats, type StopRule } from '../src/bench/stats.js';
import { compareCase, compareRuns } from '../src/bench/baseline.js';
import { makeRng } from '../src/util/rng.js';
import { findPeak } from '../src/bench/peaks.js';

const rule: StopRule = { minSamples: 10, maxNoise: 0.005, maxTimeNs: 2e9, maxSamples: 100_000 };

/** A synthetic stream of per-dispatch times: 1 ms ± relative sigma. */
function stream(sigma: number, seed: string): (batch: number) => Promise<number[]> {
  const rng = makeRng(seed);
  return async (batch) => Array.from({ length: batch }, () => 1e6 * (1 + sigma * rng.normal()));
}

test('stats: median, min and robust noise of a known sample', () => {
  const s = stats([5, 1, 3, 2, 4]);
  assert.equal(s.median, 3);
  assert.equal(s.min, 1);
  assert.equal(s.max, 5);
  assert.equal(s.samples, 5);
  // MAD = 1 → sigma = 1.4826; noise = 1.2533·1.4826/√5/3
  assert.ok(Math.abs(s.noise - (1.2533 * 1.4826) / Math.sqrt(5) / 3) < 1e-9);
});

test('stopping rule: quiet data stops at the minimum number of samples', async () => {
  const r = await sampleUntilStable(stream(0.001, 'quiet'), rule);
  assert.equal(r.reason, 'noise');
  assert.equal(r.samples.length, 10);
});

test('stopping rule: noisy data runs to the time cap', async () => {
  const r = await sampleUntilStable(stream(0.3, 'noisy'), rule);
  assert.equal(r.reason, 'time');
  const total = r.samples.reduce((a, b) => a + b, 0);
  assert.ok(total >= 2e9, `ran ${total} ns`);
  assert.ok(total < 2e9 * 1.6, 'does not overshoot the cap by much');
});

test('stopping rule: samples that are means of several dispatches count all of their device time', async () => {
  // 50 dispatches per sample: the 2 s cap is reached after about 1/50 of the samples
  const r = await sampleUntilStable(stream(0.3, 'noisy'), rule, 50);
  assert.equal(r.reason, 'time');
  const total = 50 * r.samples.reduce((a, b) => a + b, 0);
  assert.ok(total >= 2e9 && total < 2e9 * 1.6, `ran ${total} ns of device time`);
});

test('stopping rule: never stops before the minimum samples, even past the time cap', () => {
  assert.equal(shouldStop([3e9], 3e9, rule), null);
  assert.equal(shouldStop(Array(10).fill(3e8), 3e9, rule), 'noise');
});

test('baseline: a 10% slowdown with 1% noise fails', () => {
  const c = compareCase({ kernel: 'k', shape: 's', medianNs: 100, noise: 0.01 }, { kernel: 'k', shape: 's', medianNs: 110, noise: 0.01 }, 0.05);
  assert.equal(c.verdict, 'slower');
  assert.equal(c.regression, true);
  assert.ok(Math.abs(c.ratio - 1.1) < 1e-12);
});

test('baseline: a 3% slowdown passes', () => {
  const c = compareCase({ kernel: 'k', shape: 's', medianNs: 100, noise: 0.005 }, { kernel: 'k', shape: 's', medianNs: 103, noise: 0.005 }, 0.05);
  assert.equal(c.regression, false);
  assert.equal(c.verdict, 'slower');
});

test('baseline: a 10% slowdown with 20% noise is the same', () => {
  const c = compareCase({ kernel: 'k', shape: 's', medianNs: 100, noise: 0.2 }, { kernel: 'k', shape: 's', medianNs: 110, noise: 0.2 }, 0.05);
  assert.equal(c.verdict, 'same');
  assert.equal(c.regression, false);
});

test('baseline: faster is faster, unmatched cases are listed', () => {
  const r = compareRuns(
    [{ kernel: 'a', shape: 'x', medianNs: 100, noise: 0.01 }],
    [
      { kernel: 'a', shape: 'x', medianNs: 80, noise: 0.01 },
      { kernel: 'b', shape: 'y', medianNs: 1, noise: 0 },
    ],
    0.05,
  );
  assert.equal(r.comparisons[0]?.verdict, 'faster');
  assert.deepEqual(r.missing, ['b | y']);
});

test('peak table: specific names win over general ones', () => {
  assert.equal(findPeak('NVIDIA H100 PCIe')?.bandwidthGBs, 2000);
  assert.equal(findPeak('NVIDIA H100 80GB HBM3')?.bandwidthGBs, 3350);
  assert.equal(findPeak('Apple M2 Max')?.bandwidthGBs, 400);
  assert.equal(findPeak('Apple M2')?.bandwidthGBs, 100);
  assert.equal(findPeak('Intel Xeon'), null);
});
