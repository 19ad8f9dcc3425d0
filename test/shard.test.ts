/**
 * --shard i/n and moe merge: the shares of a run are disjoint and make the
 * whole run, balanced by the cost model and the same on every machine; the
 * merge of the shares' reports is the unsharded report, and reports that do
 * not make one run are refused with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { SPECS } from '../src/kernels/index.js';
import { benchShapes, buildCases } from '../src/kernels/select.js';
import { assignShares, caseId, caseListOf, caseWeight, parseShard, shardCases } from '../src/kernels/shard.js';
import type { VerifyReport } from '../src/report/verify.js';
import type { BenchReport } from '../src/report/bench.js';
import { moe, ROOT, shader, tmp } from './helpers.js';

const KERNELS = 'softmax-topk,gelu-mul,weighted-sum';
const schemaOf = (name: string): object => JSON.parse(readFileSync(join(ROOT, 'docs', `${name}-report.schema.json`), 'utf8')) as object;

test('--shard parses i/n; anything else is a usage error', () => {
  assert.deepEqual(parseShard('2/3'), { index: 2, count: 3 });
  assert.deepEqual(parseShard(' 1 / 1 '), { index: 1, count: 1 });
  for (const bad of ['0/3', '4/3', 'a/b', '3', '1/0', '-1/3', '1.5/3', '']) assert.throws(() => parseShard(bad), /--shard/, bad);
});

/** The default case list of every catalog kernel, through the selection API (no kernel runs). */
const fullPlan = () => SPECS.map((spec) => ({ spec, cases: buildCases(spec, {}, undefined, undefined) }));

test('the default case list splits into disjoint shares whose union is the whole list, for n = 1..8', () => {
  const plan = fullPlan();
  const all = plan.flatMap(({ spec, cases }) => cases.map((c) => caseId(spec.name, c.params, c.inputSet)));
  assert.ok(all.length > 500, `the default sweep has ${all.length} cases`);
  // Two model presets may share a shape: the same case twice (run twice, in one share).
  assert.ok(new Set(all).size > all.length * 0.95);
  for (const n of [1, 2, 3, 5, 8]) {
    const seen: string[] = [];
    const places: number[] = [];
    for (let i = 1; i <= n; i++) {
      const { plan: share, caseList } = shardCases(plan, { index: i, count: n }, (c) => c.inputSet);
      assert.deepEqual(caseList, caseListOf(all), 'every share records the whole list');
      for (const s of share) {
        assert.equal(s.cases.length, s.positions.length);
        for (const [k, c] of s.cases.entries()) {
          seen.push(caseId(s.spec.name, c.params, c.inputSet));
          places.push(s.positions[k] as number);
          assert.equal(all[s.positions[k] as number], caseId(s.spec.name, c.params, c.inputSet), 'a position names the case in the unsharded order');
        }
      }
    }
    assert.equal(seen.length, all.length, `n=${n}: as many cases as the whole run`);
    assert.deepEqual([...seen].sort(), [...all].sort(), `n=${n}: the union is the whole list, each case once`);
    assert.deepEqual([...places].sort((a, b) => a - b), all.map((_, k) => k));
  }
});

test('the shares are balanced by the cost model, and do not depend on the order kernels are listed in', () => {
  const plan = fullPlan();
  const weights = plan.flatMap(({ spec, cases }) => cases.map((c) => caseWeight(spec, c.params)));
  const total = weights.reduce((a, b) => a + b, 0);
  const heaviest = Math.max(...weights);
  for (const n of [2, 3, 4, 8]) {
    const { loads } = shardCases(plan, undefined, (c) => c.inputSet);
    assert.equal(loads.length, 1);
    const shares = shardCases(plan, { index: 1, count: n }, (c) => c.inputSet).loads;
    assert.equal(shares.reduce((a, b) => a + b, 0), total);
    // Greedy heaviest-first: no share exceeds the mean by more than the heaviest case.
    assert.ok(Math.max(...shares) <= total / n + heaviest, `n=${n}: ${shares.join(', ')}`);
    assert.ok(Math.max(...shares) / Math.min(...shares) < 1.25, `n=${n}: shares within 25% of each other: ${shares.join(', ')}`);
  }
  // Reversed kernel order and reversed cases: the same case lands in the same share.
  const reversed = [...plan].reverse().map(({ spec, cases }) => ({ spec, cases: [...cases].reverse() }));
  const share = (p: typeof plan): Set<string> =>
    new Set(shardCases(p, { index: 2, count: 3 }, (c) => c.inputSet).plan.flatMap((s) => s.cases.map((c) => caseId(s.spec.name, c.params, c.inputSet))));
  assert.deepEqual([...share(reversed)].sort(), [...share(plan)].sort());
  assert.equal(shardCases(reversed, undefined, (c) => c.inputSet).caseList.fingerprint, shardCases(plan, undefined, (c) => c.inputSet).caseList.fingerprint);
  // Cost-blind cases (all the same weight) go round the shares in hash order, evenly.
  const even = assignShares([...Array(30).keys()].map((k) => ({ id: `case ${k}`, weight: 1 })), 3);
  assert.deepEqual([0, 1, 2].map((s) => [...even.values()].filter((x) => x === s).length), [10, 10, 10]);
});

test('bench shapes shard the same way: disjoint and whole', () => {
  const plan = SPECS.map((spec) => ({ spec, cases: benchShapes(spec, {}, undefined, undefined).map((params) => ({ params })) }));
  const all = plan.flatMap(({ spec, cases }) => cases.map((c) => caseId(spec.name, c.params, '')));
  const seen = [1, 2, 3].flatMap((i) => shardCases(plan, { index: i, count: 3 }, () => '').plan.flatMap((s) => s.cases.map((c) => caseId(s.spec.name, c.params, ''))));
  assert.deepEqual(seen.sort(), all.sort());
});

interface CaseRow {
  kernel: string;
  shape: string;
  inputSet: string;
  status: string;
}
const caseNames = (r: { cases: CaseRow[] }): string[] => r.cases.map((c) => `${c.kernel} ${c.shape} inputs=${c.inputSet} ${c.status}`);
const kernelStatuses = (r: VerifyReport): string[] => r.kernels.map((k) => `${k.name} ${k.entry} ${k.sourceHash} ${k.status}`);

test('moe verify --shard i/3 for i = 1..3: disjoint shares whose union is the whole run; moe merge gives the unsharded summary', () => {
  const dir = tmp('shard');
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schemaOf('verify'));
  const whole = moe(['verify', '--backend', 'cpu', '--kernel', KERNELS, '--json']);
  assert.equal(whole.code, 0, whole.stderr);
  const full = JSON.parse(whole.stdout) as VerifyReport;
  assert.equal(full.shard, undefined);
  assert.equal(full.caseList?.cases, full.cases.length);
  const files: string[] = [];
  const shares: VerifyReport[] = [];
  for (const i of [1, 2, 3]) {
    const r = moe(['verify', '--backend', 'cpu', '--kernel', KERNELS, '--shard', `${i}/3`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as VerifyReport;
    assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
    assert.equal(doc.shard?.index, i);
    assert.equal(doc.shard?.count, 3);
    assert.deepEqual(doc.caseList, full.caseList, 'each share records the whole run\'s case list');
    assert.ok(doc.cases.length > 0 && doc.cases.length < full.cases.length, `share ${i}: ${doc.cases.length} cases`);
    shares.push(doc);
    const file = join(dir, `shard-${i}.json`);
    writeFileSync(file, r.stdout);
    files.push(file);
  }
  const names = shares.flatMap((s) => caseNames(s));
  assert.equal(new Set(names).size, names.length, 'the shares are disjoint');
  assert.deepEqual([...names].sort(), [...caseNames(full)].sort(), 'their union is the whole run');

  // Given in any order, the merge is the unsharded report: counts, kernels and their statuses, case names and order.
  const junit = join(dir, 'merged.xml');
  const m = moe(['merge', files[2] as string, files[0] as string, files[1] as string, '--json', '--junit', junit]);
  assert.equal(m.code, 0, m.stderr);
  const merged = JSON.parse(m.stdout) as VerifyReport;
  assert.ok(validate(merged), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.deepEqual(merged.summary, full.summary);
  assert.deepEqual(kernelStatuses(merged), kernelStatuses(full));
  assert.deepEqual(caseNames(merged), caseNames(full));
  assert.deepEqual(merged.cases.map((c) => c.repro), full.cases.map((c) => c.repro));
  assert.equal(merged.shard, undefined);
  assert.equal(merged.mergedFrom?.shards, 3);
  assert.equal(merged.seed, full.seed);
  const xml = readFileSync(junit, 'utf8');
  assert.match(xml, new RegExp(`<testsuites name="moe verify" tests="${full.cases.length}" failures="0"`));

  const table = moe(['merge', ...files]);
  assert.equal(table.code, 0);
  assert.match(table.stdout, new RegExp(`PASS: ${full.summary.passed} passed, 0 failed, 0 errors — ${full.cases.length} cases of 3 kernel\\(s\\)`));
  assert.match(table.stdout, /merged from 3 share\(s\)/);
  const md = moe(['merge', ...files, '--markdown']);
  assert.match(md.stdout, /## moe verify: ✅ PASS/);
  assert.match(md.stdout, new RegExp(`${full.summary.passed}/${full.cases.length} cases passed`));

  // Reports that do not make one run: exit 2, saying why.
  const refuse = (args: string[], why: RegExp): void => {
    const r = moe(['merge', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, why);
  };
  refuse([files[0] as string, files[2] as string], /missing share 2\/3 \(given: 1\/3, 3\/3\)/);
  refuse([files[0] as string, files[1] as string, files[1] as string, files[2] as string], /share 2\/3 is given twice/);
  const write = (name: string, doc: unknown): string => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify(doc));
    return f;
  };
  const seeded = write('seed.json', { ...shares[1], seed: 7 });
  refuse([files[0] as string, seeded, files[2] as string], /different seeds[\s\S]*seed\.json: 7/);
  const versioned = write('version.json', { ...shares[1], tool: { name: 'moe-kernels', version: '0.0.1' } });
  refuse([files[0] as string, versioned, files[2] as string], /different moe-kernels versions/);
  const backend = write('backend.json', { ...shares[1], backend: 'cuda' });
  refuse([files[0] as string, backend, files[2] as string], /different backends/);
  const other = moe(['verify', '--backend', 'cpu', '--kernel', 'softmax-topk,gelu-mul', '--shard', '2/3', '--json']);
  refuse([files[0] as string, write('other.json', JSON.parse(other.stdout)), files[2] as string], /different case lists \(fingerprints/);
  const twoOf = moe(['verify', '--backend', 'cpu', '--kernel', KERNELS, '--shard', '2/2', '--json']);
  refuse([files[0] as string, write('two.json', JSON.parse(twoOf.stdout)), files[2] as string], /different numbers of shares/);
  const dropped = write('dropped.json', { ...shares[1], cases: shares[1]?.cases.slice(1), shard: { ...shares[1]?.shard, positions: shares[1]?.shard?.positions.slice(1) } });
  refuse([files[0] as string, dropped, files[2] as string], /the shares hold \d+ of the run's \d+ cases/);
  refuse([write('old.json', { ...full, caseList: undefined })], /no case list fingerprint/);
  refuse([write('bench.json', { schema: 'moe-kernels/dispatch-report@1' })], /not a moe verify or moe bench --json report/);
  refuse([join(dir, 'nowhere.json')], /cannot read/);
  const m1 = moe(['merge']);
  assert.equal(m1.code, 2);
});

test('moe merge exits 1 when a share failed, and the merged report shows the failure', () => {
  const dir = tmp('shard-fail');
  const files = [1, 2].map((i) => {
    const r = moe(['verify', '--backend', 'cpu', '--kernel', 'weighted-sum', '--shader', shader('weighted-sum', 'skip_last.metal'), '--shard', `${i}/2`, '--json']);
    const f = join(dir, `s${i}.json`);
    writeFileSync(f, r.stdout);
    return f;
  });
  const m = moe(['merge', ...files, '--markdown']);
  assert.equal(m.code, 1, m.stderr);
  assert.match(m.stdout, /## moe verify: ❌ FAIL/);
  assert.match(m.stdout, /### Failures/);
});

test('moe bench --shard i/2 and moe merge: the shares together time every case of the whole run', () => {
  const dir = tmp('shard-bench');
  const quick = ['bench', '--backend', 'cpu', '--kernel', 'weighted-sum,gelu-mul', '--hidden', '256,512,1024', '--elements', '1024,4096', '--max-time', '0.02', '--min-samples', '3', '--warmup', '1', '--json'];
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schemaOf('bench'));
  const files: string[] = [];
  const shares: BenchReport[] = [];
  for (const i of [1, 2]) {
    const r = moe([...quick, '--shard', `${i}/2`]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as BenchReport;
    assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
    shares.push(doc);
    files.push(join(dir, `b${i}.json`));
    writeFileSync(files[i - 1] as string, r.stdout);
  }
  const total = shares[0]?.caseList?.cases ?? 0;
  assert.equal(total, 5);
  const m = moe(['merge', ...files, '--json']);
  assert.equal(m.code, 0, m.stderr);
  const merged = JSON.parse(m.stdout) as BenchReport;
  assert.ok(validate(merged), JSON.stringify(validate.errors?.slice(0, 3)));
  const whole = JSON.parse(moe(quick).stdout) as BenchReport;
  assert.deepEqual(merged.cases.map((c) => `${c.kernel} ${c.shape}`), whole.cases.map((c) => `${c.kernel} ${c.shape}`), 'the unsharded run\'s cases, in its order');
  assert.deepEqual(merged.caseList, whole.caseList);
  assert.equal(merged.cases.length, total);
  assert.deepEqual(Object.keys(merged.shaders).sort(), ['gelu-mul', 'weighted-sum']);
  const verifyShare = moe(['verify', '--backend', 'cpu', '--kernel', 'weighted-sum', '--shard', '1/2', '--json']);
  const vf = join(dir, 'v.json');
  writeFileSync(vf, verifyShare.stdout);
  const mixed = moe(['merge', files[0] as string, vf]);
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /different report kinds/);
});
