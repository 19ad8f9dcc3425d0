import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { interruptMoe, moe, ROOT, shader, tmp, type CliResult } from './helpers.js';
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

test('--repeats N records the median of each block; the case median is theirs', () => {
  const r = moe(['bench', '--kernel', 'empty', ...quick, '--repeats', '3', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const c = (JSON.parse(r.stdout) as Report).cases[0] as Case & { repeatsNs?: number[] };
  assert.equal(c.repeatsNs?.length, 3);
  const s = [...(c.repeatsNs ?? [])].sort((a, b) => a - b);
  assert.equal(c.medianNs, s[1]);
  assert.ok(c.samples >= 9, 'every block takes --min-samples');
});

interface Gated {
  baseline: { fails: boolean; strict: boolean; comparisons: { verdict: string; method: string; firstLook: { verdict: string }; candidateNs?: number[]; lo: number; hi: number }[] };
}

test('--baseline on the CPU backend warns that a CPU baseline is a weak gate, and flags left at their default are no difference', () => {
  const dir = tmp('baseline-cpu');
  const r = moe(['bench', '--kernel', 'empty', ...quick, '--json']);
  writeFileSync(join(dir, 'b.json'), r.stdout);
  const again = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', join(dir, 'b.json'), '--json']);
  assert.match(again.stderr, /CPU-backend baseline used as a gate/);
  assert.doesNotMatch(again.stderr, /not comparable/, 'the same settings, left out or not, are comparable');
  const plain = moe(['bench', '--kernel', 'empty', ...quick]);
  assert.doesNotMatch(plain.stderr, /CPU-backend baseline/, 'no warning without a baseline');
});

test('--strict: an AMBIGUOUS verdict passes by default and fails under --strict', () => {
  const dir = tmp('baseline-strict');
  const r = moe(['bench', '--kernel', 'empty', ...quick, '--json']);
  const doc = JSON.parse(r.stdout) as Report;
  // A baseline whose noise is 50%: its interval spans several times the 5% tolerance whatever this run measures.
  const wide = { ...doc, cases: doc.cases.map((c) => ({ ...c, noise: 0.5 })) };
  writeFileSync(join(dir, 'wide.json'), JSON.stringify(wide));
  const loose = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', join(dir, 'wide.json'), '--json']);
  assert.equal(loose.code, 0, loose.stderr);
  const lc = (JSON.parse(loose.stdout) as Gated).baseline.comparisons[0];
  assert.equal(lc?.verdict, 'ambiguous');
  assert.equal(lc?.method, 'candidate repeats', 'the suspicion was re-measured');
  assert.equal(lc?.candidateNs?.length, 17, 'the first look and 16 more blocks');
  const strict = moe(['bench', '--kernel', 'empty', ...quick, '--baseline', join(dir, 'wide.json'), '--strict']);
  assert.equal(strict.code, 1, strict.stdout + strict.stderr);
  assert.match(strict.stdout, /AMBIGUOUS \(fails: --strict\)/);
  assert.match(strict.stdout, /FAIL: 1 ambiguous case\(s\) under --strict/);
  const alone = moe(['bench', '--kernel', 'empty', ...quick, '--strict']);
  assert.equal(alone.code, 2, '--strict without --baseline is a usage error');
});

test('--baseline-shader: the case is re-measured interleaved with the old code; a planted slowdown is SLOWER', () => {
  const dir = tmp('baseline-ab');
  const small = ['--hidden', '512'];
  const r = moe(['bench', '--kernel', 'weighted-sum', ...small, ...quick, '--json']);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(join(dir, 'b.json'), r.stdout);
  const same = moe(['bench', '--kernel', 'weighted-sum', ...small, ...quick, '--baseline', join(dir, 'b.json'), '--baseline-shader', 'shaders/moe_dispatch.metal', '--json']);
  assert.ok(same.code === 0, same.stderr);
  const sc = (JSON.parse(same.stdout) as Gated).baseline.comparisons[0];
  assert.equal(sc?.method, 'interleaved A/B');
  assert.notEqual(sc?.verdict, 'slower');
  // A shader that does the work three times over, against the old code: slower beyond any noise.
  const slowFile = join(dir, 'slow.metal');
  writeFileSync(
    slowFile,
    `#include <metal_stdlib>
using namespace metal;
struct MoeWeightedSumParams { uint hidden_size; uint top_k; };
kernel void moe_weighted_sum(device const float* y [[buffer(0)]], device const float* w [[buffer(1)]], device float* out [[buffer(2)]],
                             constant MoeWeightedSumParams& p [[buffer(3)]], uint d [[thread_position_in_grid]]) {
    if (d >= p.hidden_size) return;
    float acc = 0.0f;
    for (uint r = 0; r < 64; ++r) { acc = 0.0f; for (uint k = 0; k < p.top_k; ++k) acc = fma(w[k], y[(ulong)k * p.hidden_size + d], acc + 0.0f * float(r)); }
    out[d] = acc;
}
`,
  );
  const slow = moe(['bench', '--kernel', 'weighted-sum', ...small, ...quick, '--shader', slowFile, '--baseline', join(dir, 'b.json'), '--baseline-shader', 'shaders/moe_dispatch.metal']);
  assert.equal(slow.code, 1, slow.stdout + slow.stderr);
  assert.match(slow.stdout, /interleaved A\/B/);
  assert.match(slow.stdout, /SLOWER \(regression\)/);
  const two = moe(['bench', '--kernel', 'weighted-sum,gelu-mul', ...quick, '--baseline', join(dir, 'b.json'), '--baseline-shader', 'shaders/moe_dispatch.metal']);
  assert.equal(two.code, 2);
  assert.match(two.stderr, /--baseline-shader needs exactly one --kernel/);
});

/** Every line of `text` at most `width` characters wide. */
function assertFits(text: string, width: number): void {
  for (const l of text.trimEnd().split('\n')) assert.ok([...l].length <= width, `wider than ${width} (${[...l].length}): ${l}`);
}

test('COLUMNS=80: the case table and the baseline table fit, and the columns left out are named', () => {
  const r = moe(['bench', '--backend', 'cpu', '--kernel', 'softmax-topk', '--max-time', '0.1'], { COLUMNS: '80' });
  assert.equal(r.code, 0, r.stderr);
  assertFits(r.stdout, 80);
  assert.match(r.stdout, /│ softmax-topk +│ tokens=4096/);
  const note = /^\(not shown at this width: (.*); see --json\)$/m.exec(r.stdout);
  assert.ok(note, r.stdout);
  const dropped = (note[1] as string).split(', ');
  assert.ok(dropped.includes('min µs'), note[0]);
  // what is dropped is not in the table; what is kept is
  const head = r.stdout.split('\n').find((l) => l.includes('│ kernel')) ?? '';
  for (const c of dropped) assert.ok(!head.includes(`│ ${c} `), `${c} is both dropped and shown`);
  for (const c of ['median µs', 'shape']) assert.ok(head.includes(c), `${c} stays: ${head}`);
  // in a log (a pipe, no COLUMNS) every column stays and each case keeps one line, a time-capped one too
  const wide = moe(['bench', '--kernel', 'softmax-topk', '--tokens', '1,16', ...quick, '--max-noise', '0']);
  assert.equal(wide.code, 0, wide.stderr);
  assert.doesNotMatch(wide.stdout, /not shown at this width/);
  assert.match(wide.stdout, /│ tokens=1 experts=128 top-k=8 +│.*│ +\d+ \(time cap\) │/);
  assert.match(wide.stdout, /│ tokens=16 experts=128 top-k=8 +│.*│ +\d+ \(time cap\) │/);

  const dir = tmp('bench-narrow');
  const base = moe(['bench', '--kernel', 'softmax-topk', '--tokens', '1,16', ...quick, '--json']);
  writeFileSync(join(dir, 'b.json'), base.stdout);
  const gated = moe(['bench', '--kernel', 'softmax-topk', '--tokens', '1,16', ...quick, '--baseline', join(dir, 'b.json')], { COLUMNS: '80' });
  assert.ok(gated.code === 0 || gated.code === 1, gated.stderr);
  assertFits(gated.stdout, 80);
  assert.match(gated.stdout, /^baseline: /m);
  const notes = [...gated.stdout.matchAll(/^\(not shown at this width: (.*); see --json\)$/gm)].map((m) => m[1] as string);
  assert.equal(notes.length, 2, gated.stdout);
  assert.ok(notes[1]?.includes('evidence'), notes.join(' | '));
  assert.match(gated.stdout, /│ new\/old │/);
  assert.match(gated.stdout, /^(PASS|FAIL): /m);
});

/**
 * A softmax-topk that returns at once for one token and never for more:
 * --tokens 1,2 times the first case, then hangs in the second until a signal.
 */
const hangAfterFirst = ['--kernel', 'softmax-topk', '--shader', shader('hostile', 'endless_past_one_token.metal'), '--tokens', '1,2', '--experts', '8', '--top-k', '2', ...quick, '--timeout', '60s'];

test('SIGINT or SIGTERM during bench: the finished cases in every report asked for, INTERRUPTED, exit 128 + the signal', { timeout: 180_000 }, async () => {
  // the shader compiled once beforehand, so the first case ends well before the signal
  const warm = moe(['bench', ...hangAfterFirst.map((a) => (a === '1,2' ? '1' : a))]);
  assert.equal(warm.code, 0, warm.stderr);
  const dir = tmp('bench-int');
  const files = { json: join(dir, 'r.json'), xml: join(dir, 'r.xml'), html: join(dir, 'r.html') };
  // one at a time: a hung run keeps a core busy until its signal
  const timed = (r: CliResult): boolean => r.stdout.includes('tokens=1 experts=8 top-k=2');
  const table = await interruptMoe(['bench', ...hangAfterFirst, '--json-file', files.json, '--junit', files.xml, '--html', files.html], 'SIGINT', 6000, { ready: timed });
  const json = await interruptMoe(['bench', ...hangAfterFirst, '--json'], 'SIGTERM', 6000, { ready: timed });
  const md = await interruptMoe(['bench', ...hangAfterFirst, '--markdown'], 'SIGINT', 6000, { ready: timed });
  // the table: the case that finished, the verdict; ended at once (the hung dispatch is abandoned)
  assert.equal(table.code, 130, table.stdout + table.stderr);
  assert.ok(table.ms < 15_000, `ended ${table.ms} ms after SIGINT`);
  assert.match(table.stdout, /│ softmax-topk +│ tokens=1 experts=8 top-k=2 +│/);
  assert.doesNotMatch(table.stdout, /tokens=2 /);
  assert.match(table.stdout, /^INTERRUPTED \(SIGINT\): 1 case\(s\) timed before the run stopped/m);
  assert.match(table.stderr, /interrupted by SIGINT/);
  // --json-file: the partial report, by the documented schema
  const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(join(ROOT, 'docs', 'bench-report.schema.json'), 'utf8')) as object);
  const doc = JSON.parse(readFileSync(files.json, 'utf8')) as Report & { interrupted?: string };
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.equal(doc.interrupted, 'SIGINT');
  assert.deepEqual(doc.cases.map((c) => c.params.n_tokens), [1]);
  // --junit: one testcase, the finished case; --html written
  const xml = readFileSync(files.xml, 'utf8');
  assert.equal(XMLValidator.validate(xml), true);
  const junit = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['testsuite', 'testcase'].includes(n) }).parse(xml) as { testsuites: { testsuite: { testcase: { name: string }[] }[] } };
  assert.deepEqual(junit.testsuites.testsuite.flatMap((s) => s.testcase.map((c) => c.name)), ['tokens=1 experts=8 top-k=2']);
  assert.ok(existsSync(files.html), 'the roofline of what finished');
  // --json: the document on stdout alone
  assert.equal(json.code, 143, json.stderr);
  const printed = JSON.parse(json.stdout) as Report & { interrupted?: string };
  assert.equal(printed.interrupted, 'SIGTERM');
  assert.equal(printed.cases.length, 1);
  assert.ok(validate(printed), JSON.stringify(validate.errors?.slice(0, 3)));
  // --markdown
  assert.equal(md.code, 130, md.stderr);
  assert.match(md.stdout, /^## moe bench: ⚠️ INTERRUPTED \(SIGINT\)/m);
  assert.match(md.stdout, /^\| softmax-topk \| tokens=1 experts=8 top-k=2 \|/m);
  assert.match(md.stdout, /1 cases timed on \*\*cpu\*\*/);
});
