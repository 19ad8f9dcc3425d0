import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { moe, tmp } from './helpers.js';
import { SPECS } from '../src/kernels/index.js';
import { getBackend } from '../src/backend/index.js';
import { copySpec, readSpec } from '../src/bench/specs.js';
import { verifySpec } from '../src/harness/run.js';

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

test('the bench-only copy and read kernels are right: they verify against their references', async () => {
  for (const spec of [copySpec, readSpec]) {
    const { results } = await verifySpec(spec, getBackend('cpu'), spec.cases(), { seed: 7 });
    assert.ok(results.length > 0);
    for (const c of results) assert.equal(c.status, 'PASS', `${spec.name} ${c.shape}: ${c.error ?? ''}`);
  }
});

test('moe bench --kernel read: the bytes of the words read (and one word per SIMD-group written)', () => {
  const r = moe(['bench', '--kernel', 'read', '--elements', '65536', ...quick, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const c = (JSON.parse(r.stdout) as Report).cases[0];
  assert.equal(c?.params.n_elements, 65536);
  assert.equal((c as unknown as { bytes: number }).bytes, 65536 * 4 + 4 * (65536 / 4 / 4 / 32));
});

test('quantized kernels report the packed weights\' own GB/s beside the total; --batch is recorded', () => {
  const r = moe(['bench', '--kernel', 'qmv4-expert,qmv4-expert-naive', '--experts', '8', '--top-k', '2', '--out-dim', '64', '--in-dim', '256', '--batch', '4', ...quick, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Report & { flags: Record<string, unknown> };
  assert.equal(doc.flags.batch, 4);
  for (const c of doc.cases as (Case & { bytes: number; weightGBs?: number })[]) {
    // 2 experts × 64 rows × 256 inputs at 4 bits
    assert.ok(c.weightGBs !== undefined && Math.abs(c.weightGBs - (2 * 64 * 128) / c.medianNs) < 1e-9 * c.weightGBs, `${c.kernel}: ${c.weightGBs}`);
    assert.ok(c.weightGBs < c.gbps, 'the weights are a part of the bytes moved');
  }
  const table = moe(['bench', '--kernel', 'qmv4-expert', '--experts', '8', '--top-k', '2', '--out-dim', '64', '--in-dim', '256', ...quick]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /weights GB\/s/);
  assert.match(table.stdout, /packed weight words alone/);
  const plain = moe(['bench', '--kernel', 'empty', ...quick]);
  assert.doesNotMatch(plain.stdout, /weights GB\/s/, 'no weights columns without a quantized kernel');
});

test('--batch and --graph on a backend other than CUDA: a warning, and the usual clock', () => {
  const r = moe(['bench', '--kernel', 'empty', ...quick, '--graph', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /--batch and --graph apply to the CUDA backend/);
  assert.match((JSON.parse(r.stdout) as Report).clock, /steady_clock/);
});

test('--baseline timed with another --batch: a warning that the times are not comparable', () => {
  const dir = tmp('baseline-batch');
  const r = moe(['bench', '--kernel', 'empty', ...quick, '--json', '--batch', '10']);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(join(dir, 'b10.json'), r.stdout);
  const again = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', join(dir, 'b10.json')]);
  assert.match(again.stderr, /--batch 10, this run with 1: the times are not comparable/);
});

test('bench usage errors exit 2', () => {
  const zero = moe(['bench', '--kernel', 'empty', '--batch', '0', ...quick]);
  assert.equal(zero.code, 2, zero.stdout + zero.stderr);
  const a = moe(['bench', '--kernel', 'gelu-mul', '--top-k', '8', ...quick]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /has no top-k parameter/);
  const b = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', '/nonexistent.json']);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /baseline file not found/);
});
