import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { moe, tmp } from './helpers.js';
import { SPECS } from '../src/kernels/index.js';

interface Case {
  kernel: string;
  params: Record<string, number>;
  medianNs: number;
  minNs: number;
  noise: number;
  samples: number;
  gbps: number;
  gflops: number;
}
interface Report {
  schema: string;
  clock: string;
  cases: Case[];
  baseline?: { comparisons: { verdict: string; regression: boolean }[] };
}

const quick = ['--backend', 'cpu', '--max-time', '0.05', '--min-samples', '3', '--warmup', '1'];

test('moe bench --top-k 8: a row for every kernel with a top-k parameter, all at top_k = 8', () => {
  const r = moe(['bench', '--top-k', '8', ...quick, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Report;
  assert.equal(doc.schema, 'moe-kernels/bench-report@1');
  assert.match(doc.clock, /steady_clock/);
  const want = SPECS.filter((s) => s.hasTopK).map((s) => s.name).sort();
  assert.deepEqual([...new Set(doc.cases.map((c) => c.kernel))].sort(), want);
  for (const c of doc.cases) {
    assert.equal(c.params.top_k, 8);
    assert.ok(c.samples >= 3 && c.medianNs > 0 && c.minNs <= c.medianNs);
    assert.ok(c.gbps > 0, `${c.kernel} has a bandwidth figure`);
  }
});

test('the table has the columns of the issue; --tokens sweeps one row per point', () => {
  const r = moe(['bench', '--kernel', 'softmax-topk', '--tokens', '1,16', ...quick]);
  assert.equal(r.code, 0, r.stderr);
  for (const col of ['median µs', 'min µs', 'noise %', 'samples', 'GB/s', 'GFLOP/s', '% peak BW']) assert.ok(r.stdout.includes(col), col);
  assert.match(r.stdout, /tokens=1 experts=128 top-k=8/);
  assert.match(r.stdout, /tokens=16 experts=128 top-k=8/);
});

test('moe bench --kernel empty reports the floor of one dispatch', () => {
  const r = moe(['bench', '--kernel', 'empty', ...quick, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Report;
  assert.equal(doc.cases.length, 1);
  assert.ok((doc.cases[0]?.medianNs ?? 0) > 0 && (doc.cases[0]?.medianNs ?? Infinity) < 5e6);
});

test('--baseline: a much slower run than the baseline exits 1, a faster one exits 0', () => {
  const dir = tmp('baseline');
  const r = moe(['bench', '--kernel', 'empty', ...quick, '--json']);
  const doc = JSON.parse(r.stdout) as Report;
  const fast = { ...doc, cases: doc.cases.map((c) => ({ ...c, medianNs: c.medianNs / 100, noise: 0.001 })) };
  const slow = { ...doc, cases: doc.cases.map((c) => ({ ...c, medianNs: c.medianNs * 100, noise: 0.001 })) };
  writeFileSync(join(dir, 'fast.json'), JSON.stringify(fast));
  writeFileSync(join(dir, 'slow.json'), JSON.stringify(slow));
  const worse = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', join(dir, 'fast.json')]);
  assert.equal(worse.code, 1, worse.stdout + worse.stderr);
  assert.match(worse.stdout, /SLOWER \(regression\)/);
  const better = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', join(dir, 'slow.json'), '--json']);
  assert.equal(better.code, 0, better.stderr);
  assert.equal((JSON.parse(better.stdout) as Report).baseline?.comparisons[0]?.verdict, 'faster');
});

test('bench usage errors exit 2', () => {
  const a = moe(['bench', '--kernel', 'gelu-mul', '--top-k', '8', ...quick]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /has no top-k parameter/);
  const b = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', '/nonexistent.json']);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /baseline file not found/);
});
