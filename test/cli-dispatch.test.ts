import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { interruptMoe, moe, ROOT, shader, tmp, type CliResult } from './helpers.js';
import { getBackend } from '../src/backend/index.js';
import type { Backend } from '../src/backend/types.js';
import { runLayer, LAYER_RULE, type LayerProgress, type Strategy } from '../src/dispatch/layer.js';
import { compareOutput } from '../src/verify/compare.js';
import type { LayerShape } from '../src/reference/moe-layer.js';

interface Stage {
  stage: string;
  pass: boolean;
  ns: number;
  share: number;
}
interface Report {
  pass: boolean;
  strategy: string;
  firstDivergence: string | null;
  stages: Stage[];
  final: { cosine: number; maxAbs: number; relMaxAbs: number };
  totalNs: number;
  weightBytes: number;
}

function layer(args: string[]): { code: number | null; report: Report; stderr: string } {
  const r = moe(['dispatch', '--backend', 'cpu', '--json', ...args]);
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`no JSON from moe dispatch ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

test('qwen3-30b-a3b, 4 tokens: the layer PASSes and prints the per-stage table', () => {
  const r = moe(['dispatch', '--preset', 'qwen3-30b-a3b', '--tokens', '4', '--backend', 'cpu']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const s of ['router', 'routing', 'expert gate/up', 'GELU·up', 'expert down', 'combine']) assert.ok(r.stdout.includes(s), `stage ${s} in the table`);
  assert.match(r.stdout, /tokens\/s/);
  assert.match(r.stdout, /final hidden state: cosine (0\.99999\d+|1\.0+),.*PASS/);
});

test('qwen1.5-moe-a2.7b (sigmoid-gated shared expert): loop and batched both PASS and agree', () => {
  const a = layer(['--preset', 'qwen1.5-moe-a2.7b', '--tokens', '2', '--strategy', 'loop']);
  const b = layer(['--preset', 'qwen1.5-moe-a2.7b', '--tokens', '2', '--strategy', 'batched']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.ok(a.report.stages.some((s) => s.stage === 'shared expert'));
  assert.ok(a.report.stages.some((s) => s.stage === 'shared gate'));
  for (const r of [a.report, b.report]) {
    assert.equal(r.pass, true);
    assert.ok(r.final.cosine > 0.99999);
    assert.ok(r.final.relMaxAbs < 1e-4);
    const shares = r.stages.reduce((x, s) => x + s.share, 0);
    assert.ok(Math.abs(shares - 1) < 1e-9, 'stage shares add up to the layer');
    assert.ok(r.totalNs > 0);
  }
});

test('a planted bug in GELU·up (given through --shader) fails the layer and names that stage', () => {
  for (const strategy of ['loop', 'batched']) {
    const r = layer(['--hidden', '256', '--intermediate', '128', '--experts', '8', '--top-k', '2', '--tokens', '3', '--strategy', strategy, '--shader', shader('dispatch', 'bad_gelu.metal')]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.report.firstDivergence, 'GELU·up');
    const stages = r.report.stages.map((s) => [s.stage, s.pass]);
    assert.deepEqual(stages.slice(0, 3), [['router', true], ['routing', true], ['expert gate/up', true]]);
  }
});

test('a planted off-by-one in naive_matvec_f32 fails the loop strategy at the router', () => {
  const r = layer(['--hidden', '256', '--intermediate', '128', '--experts', '8', '--top-k', '2', '--tokens', '2', '--strategy', 'loop', '--shader', shader('dispatch', 'bad_matvec.metal')]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.report.firstDivergence, 'router');
});

test('a weighted reduce that drops the shared expert fails at combine, every earlier stage passing', () => {
  const r = layer(['--hidden', '256', '--intermediate', '128', '--experts', '8', '--top-k', '2', '--tokens', '2', '--shared-intermediate', '192', '--shared-gate', '--shader', shader('dispatch', 'bad_reduce.metal')]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.report.firstDivergence, 'combine');
  assert.ok(r.report.stages.filter((s) => s.stage !== 'combine').every((s) => s.pass));
});

test('a layer that would not fit in memory is refused before allocating, exit 2', () => {
  const r = moe(['dispatch', '--backend', 'cpu', '--hidden', '65536', '--intermediate', '65536', '--experts', '256', '--top-k', '64', '--tokens', '4096']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs about [\d.]+ GiB of buffers, more than the [\d.]+ GiB of memory available/);
});

test('bad dispatch flags: exit 2 with a message', () => {
  const r = moe(['dispatch', '--backend', 'cpu', '--hidden', '64']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--intermediate is needed without --preset/);
  const k = moe(['dispatch', '--backend', 'cpu', '--preset', 'mixtral-8x7b', '--top-k', '9']);
  assert.equal(k.code, 2);
  assert.match(k.stderr, /--top-k 9 must not exceed --experts 8/);
});

test('loop and batched strategies agree with each other to the comparison floor (in-process API)', async () => {
  const shape: LayerShape = { tokens: 3, hidden: 320, intermediate: 96, experts: 12, topK: 3, sharedIntermediate: 64, sharedGate: true, activation: 'gelu-tanh' };
  const be = getBackend('cpu');
  const a = await runLayer(be, { shape, strategy: 'loop', seed: 7 });
  const b = await runLayer(be, { shape, strategy: 'batched', seed: 7 });
  assert.equal(a.pass, true);
  assert.equal(b.pass, true);
  const c = compareOutput('layer output', a.output, Float64Array.from(b.output), LAYER_RULE);
  assert.equal(c.pass, true, c.failure);
  assert.ok((c.cosine ?? 0) > 0.99999);
});

test('--quant q4 and q8: quantized experts PASS in both strategies and report the packed bytes read', () => {
  for (const quant of ['q4', 'q8']) {
    for (const strategy of ['loop', 'batched']) {
      const r = layer(['--hidden', '256', '--intermediate', '128', '--experts', '8', '--top-k', '2', '--tokens', '2', '--quant', quant, '--strategy', strategy]);
      assert.equal(r.code, 0, r.stderr);
      const rep = r.report as Report & { quant: number; packedBytes: number };
      assert.equal(rep.pass, true);
      assert.equal(rep.quant, quant === 'q4' ? 4 : 8);
      // per selected expert: 3 matrices of 128×256 weights at bits/8 bytes + bf16 scale and bias per 64-group
      const perExpert = 3 * ((128 * 256 * rep.quant) / 8 + 4 * ((128 * 256) / 64));
      assert.equal(rep.packedBytes % perExpert, 0);
      assert.ok(rep.packedBytes >= perExpert && rep.packedBytes <= 4 * perExpert);
    }
  }
  const bad = moe(['dispatch', '--backend', 'cpu', '--hidden', '100', '--intermediate', '128', '--experts', '4', '--top-k', '2', '--quant', 'q4']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--quant needs --hidden \(100\) to be a multiple of the group size 64/);
});

test('a layer under way knows its finished stages: they grow in the order of the report, and at the end are all of them', async () => {
  const shape: LayerShape = { tokens: 2, hidden: 128, intermediate: 64, experts: 6, topK: 2, sharedIntermediate: 64, sharedGate: true, activation: 'gelu-tanh' };
  const be = getBackend('cpu');
  for (const strategy of ['loop', 'batched', 'fused'] as Strategy[]) {
    const progress: LayerProgress = {};
    const seen: string[][] = [];
    // before every dispatch: what the layer would report if it stopped now
    const spy = new Proxy(be, {
      get(target, key) {
        const v = Reflect.get(target, key) as unknown;
        if (key === 'time') return (...args: Parameters<Backend['time']>) => (seen.push((progress.finished?.() ?? []).map((st) => st.stage)), target.time(...args));
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const layer = await runLayer(spy, { shape, strategy, seed: 3, progress });
    const all = layer.stages.map((st) => st.stage);
    assert.ok(seen.length > 0 && seen[0]?.length === 0, `${strategy}: nothing has finished before the first dispatch`);
    for (const [i, names] of seen.entries()) {
      assert.deepEqual(names, all.filter((n) => names.includes(n)), `${strategy}: in report order`);
      if (i > 0) for (const n of seen[i - 1] ?? []) assert.ok(names.includes(n), `${strategy}: a finished stage stays finished`);
    }
    // the routing has finished before any expert runs; the last stage only at the end
    assert.ok(seen.some((names) => names.includes('router') && names.includes('routing')), `${strategy}: ${JSON.stringify(seen.at(-1))}`);
    assert.ok(!seen.some((names) => names.includes(all.at(-1) as string)), `${strategy}: the last stage finishes with the last dispatch`);
    if (strategy === 'batched') assert.deepEqual(seen.at(-1), all.slice(0, -1), 'batched: every stage but the combine before its dispatch');
    // at the end, the same stages and figures as the report
    const end = progress.finished?.() ?? [];
    assert.deepEqual(end.map((st) => [st.stage, st.pass, st.dispatches, st.ns]), layer.stages.map((st) => [st.stage, st.pass, st.dispatches, st.ns]));
  }
});

test('SIGINT or SIGTERM during dispatch: the stages that finished in every report asked for, INTERRUPTED, exit 128 + the signal', { timeout: 180_000 }, async () => {
  // the routing kernel never ends for 2 tokens: the router stage finishes, then the layer hangs until the signal
  const args = ['dispatch', '--backend', 'cpu', '--hidden', '128', '--intermediate', '64', '--experts', '4', '--top-k', '2', '--tokens', '2', '--shader', shader('hostile', 'endless_past_one_token.metal'), '--timeout', '60s'];
  // both kernels compiled once beforehand (one token: no hang)
  const warm = moe([...args.map((a, i) => (args[i - 1] === '--tokens' ? '1' : a)), '--json']);
  assert.ok(warm.code === 0 || warm.code === 1, warm.stderr);
  const dir = tmp('dispatch-int');
  const files = { json: join(dir, 'r.json'), xml: join(dir, 'r.xml') };
  // one at a time: a hung run keeps a core busy until its signal
  const routed = (r: CliResult): boolean => r.stdout.includes('moe_expert_matvec_f32');
  const table = await interruptMoe([...args, '--json-file', files.json, '--junit', files.xml], 'SIGINT', 6000, { env: { COLUMNS: '100' }, ready: routed });
  const json = await interruptMoe([...args, '--json'], 'SIGTERM', 6000, { ready: routed });
  const md = await interruptMoe([...args, '--markdown'], 'SIGINT', 6000, { ready: routed });
  assert.equal(table.code, 130, table.stdout + table.stderr);
  assert.ok(table.ms < 15_000, `ended ${table.ms} ms after SIGINT`);
  assert.match(table.stdout, /│ router +│ moe_expert_matvec_f32 +│ ours +│.*│ PASS +│/);
  assert.doesNotMatch(table.stdout, /│ routing /);
  assert.match(table.stdout, /^INTERRUPTED \(SIGINT\): 1 stage\(s\) finished before the layer stopped/m);
  for (const l of table.stdout.trimEnd().split('\n')) assert.ok([...l].length <= 100, `wider than 100: ${l}`);
  const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(join(ROOT, 'docs', 'dispatch-report.schema.json'), 'utf8')) as object);
  type Doc = Report & { interrupted?: string; errors: { type: string; message: string }[] };
  const doc = JSON.parse(readFileSync(files.json, 'utf8')) as Doc;
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.equal(doc.interrupted, 'SIGINT');
  assert.deepEqual(doc.stages.map((st) => [st.stage, st.pass, st.share]), [['router', true, 1]]);
  assert.equal(doc.totalNs, doc.stages[0]?.ns);
  assert.equal(doc.pass, false);
  assert.match(doc.errors[0]?.message ?? '', /interrupted by SIGINT before the layer finished/);
  const xml = readFileSync(files.xml, 'utf8');
  assert.equal(XMLValidator.validate(xml), true);
  const junit = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['testsuite', 'testcase'].includes(n) }).parse(xml) as { testsuites: { testsuite: { testcase: { name: string; failure?: unknown }[] }[] } };
  const cases = junit.testsuites.testsuite[0]?.testcase ?? [];
  assert.equal(cases[0]?.name, 'router (moe_expert_matvec_f32)');
  assert.equal(cases[0]?.failure, undefined);
  assert.equal(json.code, 143, json.stderr);
  const printed = JSON.parse(json.stdout) as Doc;
  assert.equal(printed.interrupted, 'SIGTERM');
  assert.deepEqual(printed.stages.map((st) => st.stage), ['router']);
  assert.equal(md.code, 130, md.stderr);
  assert.match(md.stdout, /^## moe dispatch: ⚠️ INTERRUPTED \(SIGINT\)/m);
  assert.match(md.stdout, /^\| router \| `moe_expert_matvec_f32` \|.*\| ✅ \| ours \|$/m);
  assert.match(md.stdout, /^INTERRUPTED \(SIGINT\): 1 stage\(s\) finished/m);
});
