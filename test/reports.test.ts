import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { moe, shader, tmp, ROOT } from './helpers.js';

const schemaOf = (name: string): object => JSON.parse(readFileSync(join(ROOT, 'docs', `${name}-report.schema.json`), 'utf8')) as object;
const schema = schemaOf('verify');

interface JunitDoc {
  testsuites: {
    name: string;
    tests: string;
    failures: string;
    skipped: string;
    testsuite: { name: string; tests: string; failures: string; testcase: { name: string; classname: string; failure?: { message: string; type: string; '#text': string } }[] }[];
  };
}

/** A JUnit file: well-formed, parsed, and its counts equal to its testcases. */
function readJunit(file: string): JunitDoc {
  const xml = readFileSync(file, 'utf8');
  assert.equal(XMLValidator.validate(xml), true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => ['testsuite', 'testcase'].includes(name) }).parse(xml) as JunitDoc;
  const cases = doc.testsuites.testsuite.flatMap((s) => s.testcase);
  assert.equal(cases.length, Number(doc.testsuites.tests));
  assert.equal(cases.filter((c) => c.failure).length, Number(doc.testsuites.failures));
  for (const s of doc.testsuites.testsuite) assert.equal(s.testcase.length, Number(s.tests));
  return doc;
}

const quickBench = ['bench', '--backend', 'cpu', '--max-time', '0.05', '--min-samples', '3', '--warmup', '1'];
const smallLayer = ['dispatch', '--backend', 'cpu', '--hidden', '128', '--intermediate', '64', '--experts', '4', '--top-k', '2', '--tokens', '2'];

test('--json follows the documented schema (docs/verify-report.schema.json), failing cases included', () => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  for (const args of [
    ['--kernel', 'softmax-topk,gelu-mul', '--preset', 'qwen3-30b-a3b'],
    ['--kernel', 'softmax-topk', '--shader', shader('softmax-topk', 'no_renorm.metal'), '--tokens', '2'],
  ]) {
    const r = moe(['verify', '--backend', 'cpu', '--json', ...args]);
    const doc = JSON.parse(r.stdout) as unknown;
    assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
  }
});

test('--junit writes JUnit XML: well-formed, one testcase per kernel × case, failures carry the worst element', () => {
  const dir = tmp('junit');
  const file = join(dir, 'results.xml');
  const r = moe(['verify', '--backend', 'cpu', '--kernel', 'softmax-topk', '--shader', shader('softmax-topk', 'no_renorm.metal'), '--tokens', '2', '--junit', file]);
  assert.equal(r.code, 1);
  const xml = readFileSync(file, 'utf8');
  assert.equal(XMLValidator.validate(xml), true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => ['testsuite', 'testcase'].includes(name) }).parse(xml) as {
    testsuites: { tests: string; failures: string; testsuite: { name: string; testcase: { name: string; failure?: { message: string; '#text': string } }[] }[] };
  };
  const suites = doc.testsuites.testsuite;
  assert.equal(suites.length, 1);
  assert.equal(suites[0]?.name, 'softmax-topk');
  const cases = suites[0]?.testcase ?? [];
  assert.equal(cases.length, Number(doc.testsuites.tests));
  assert.equal(cases.length, 5);
  const failed = cases.filter((c) => c.failure);
  assert.equal(failed.length, Number(doc.testsuites.failures));
  assert.ok(failed.length > 0);
  assert.match(failed[0]?.failure?.['#text'] ?? '', /worst at \[\d+\]: got .*, expected/);
  assert.match(failed[0]?.failure?.['#text'] ?? '', /reproduce: npx moe verify --kernel softmax-topk/);
});

test('--markdown prints a CI step summary with a row per kernel', () => {
  const r = moe(['verify', '--backend', 'cpu', '--kernel', 'softmax-topk,weighted-reduce', '--preset', 'qwen3-30b-a3b', '--markdown']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^## moe verify: ✅ PASS/m);
  assert.match(r.stdout, /\| softmax-topk \| `moe_softmax_topk_f32` \| \d+ \| \d+ \| ✅ \|/);
  assert.match(r.stdout, /\| weighted-reduce \| `moe_weighted_reduce_f32` \|/);
});

test('bench --json follows docs/bench-report.schema.json, with a baseline and its regressions too', () => {
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schemaOf('bench'));
  const r = moe([...quickBench, '--kernel', 'empty,softmax-topk', '--tokens', '4', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { cases: { medianNs: number; noise: number }[] };
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
  const file = join(tmp('bench-schema'), 'fast.json');
  writeFileSync(file, JSON.stringify({ ...doc, cases: doc.cases.map((c) => ({ ...c, medianNs: c.medianNs / 100, noise: 0.001 })) }));
  const slower = moe([...quickBench, '--kernel', 'empty', '--baseline', file, '--json']);
  assert.equal(slower.code, 1, slower.stderr);
  const withBaseline = JSON.parse(slower.stdout) as { baseline?: { comparisons: { regression: boolean }[] } };
  assert.equal(withBaseline.baseline?.comparisons[0]?.regression, true);
  assert.ok(validate(withBaseline), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.equal(validate({ ...withBaseline, cases: [{ kernel: 'empty' }] }), false, 'the schema holds a case to its fields');
});

test('bench --junit and --markdown: the shapes of verify\'s (a testsuite per kernel, a testcase per shape; a regression is a failure)', () => {
  const dir = tmp('bench-junit');
  const ok = join(dir, 'ok.xml');
  const r = moe([...quickBench, '--kernel', 'empty,softmax-topk', '--tokens', '1,4', '--junit', ok, '--markdown']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^## moe bench: ✅ PASS/m);
  assert.match(r.stdout, /^\| softmax-topk \| tokens=4 experts=\d+ top-k=\d+ \|/m);
  assert.doesNotMatch(r.stdout, /median µs.*\n.*┌|┌/, 'Markdown in place of the table');
  const doc = readJunit(ok);
  assert.equal(doc.testsuites.name, 'moe bench');
  assert.deepEqual(doc.testsuites.testsuite.map((s) => s.name), ['empty', 'softmax-topk']);
  assert.equal(doc.testsuites.testsuite[1]?.testcase.length, 2);
  assert.equal(doc.testsuites.testsuite[1]?.testcase[0]?.classname, 'moe.softmax-topk');
  assert.equal(Number(doc.testsuites.failures), 0);

  const base = moe([...quickBench, '--kernel', 'empty', '--json']);
  const fast = JSON.parse(base.stdout) as { cases: { medianNs: number; noise: number }[] };
  const baseline = join(dir, 'fast.json');
  writeFileSync(baseline, JSON.stringify({ ...fast, cases: fast.cases.map((c) => ({ ...c, medianNs: c.medianNs / 100, noise: 0.001 })) }));
  const bad = join(dir, 'regressed.xml');
  const slower = moe([...quickBench, '--kernel', 'empty', '--baseline', baseline, '--junit', bad, '--markdown']);
  assert.equal(slower.code, 1, slower.stderr);
  assert.match(slower.stdout, /^## moe bench: ❌ FAIL/m);
  assert.match(slower.stdout, /❌ regression/);
  const failed = readJunit(bad);
  const tc = failed.testsuites.testsuite[0]?.testcase[0];
  assert.equal(tc?.failure?.type, 'regression');
  assert.match(tc?.failure?.message ?? '', /^empty threads=32: .* µs against .* µs in the baseline/);
});

test('dispatch --json follows docs/dispatch-report.schema.json, passing and failing', () => {
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schemaOf('dispatch'));
  for (const [args, code] of [
    [[], 0],
    [['--shader', shader('dispatch', 'bad_gelu.metal')], 1],
    [['--quant', 'q4', '--strategy', 'loop'], 0],
  ] as const) {
    const r = moe([...smallLayer, ...args, '--json']);
    assert.equal(r.code, code, r.stderr);
    const doc = JSON.parse(r.stdout) as { quant: number | null };
    assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
    assert.equal(validate({ ...doc, quant: 3 }), false, 'the schema holds quant to 4, 8 or null');
  }
});

test('dispatch --junit and --markdown: a testcase per stage and one for the final state; a wrong kernel fails its stage', () => {
  const dir = tmp('dispatch-junit');
  const ok = join(dir, 'ok.xml');
  const r = moe([...smallLayer, '--junit', ok, '--markdown']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^## moe dispatch: ✅ PASS/m);
  assert.match(r.stdout, /^\| router \| `moe_expert_matvec_f32` \| 1 \|/m);
  const good = readJunit(ok);
  assert.equal(good.testsuites.name, 'moe dispatch');
  const cases = good.testsuites.testsuite[0]?.testcase ?? [];
  assert.ok(cases.some((c) => /^router \(moe_expert_matvec_f32\)$/.test(c.name)), JSON.stringify(cases.map((c) => c.name)));
  assert.equal(cases.at(-1)?.name, 'final hidden state');
  assert.equal(Number(good.testsuites.failures), 0);

  const bad = join(dir, 'bad.xml');
  const wrong = moe([...smallLayer, '--shader', shader('dispatch', 'bad_gelu.metal'), '--junit', bad, '--markdown']);
  assert.equal(wrong.code, 1, wrong.stderr);
  assert.match(wrong.stdout, /^## moe dispatch: ❌ FAIL/m);
  assert.match(wrong.stdout, /^### Failures/m);
  const failed = readJunit(bad).testsuites.testsuite[0]?.testcase.filter((c) => c.failure) ?? [];
  assert.ok(failed.length > 0);
  assert.equal(failed[0]?.failure?.type, 'tolerance');
  assert.match(failed[0]?.name ?? '', /gelu/i);
  assert.match(failed[0]?.failure?.['#text'] ?? '', /worst at \[\d+\]: got .*, expected/);
});

test('--junit to a path that cannot be written is a usage error naming the file', () => {
  const r = moe([...smallLayer, '--junit', join(tmp('junit-bad'), 'no', 'such', 'dir', 'x.xml')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--junit: cannot write .*x\.xml/);
});

test('moe --help lists the commands and no "base" (the command base class is not a command)', () => {
  const r = moe(['--help']);
  assert.equal(r.code, 0, r.stderr);
  const commands = r.stdout.slice(r.stdout.indexOf('COMMANDS'));
  for (const c of ['backends', 'bench', 'dispatch', 'kernels', 'translate', 'verify']) assert.match(commands, new RegExp(`^  ${c} `, 'm'));
  assert.doesNotMatch(commands, /^ {2}base\b/m);
  assert.equal(moe(['base']).code, 2, 'moe base is an unknown command');
});

test('kernels --json lists every entry point named in DESIGN.md', () => {
  const r = moe(['kernels', '--json']);
  const entries = new Set((JSON.parse(r.stdout) as { entry: string }[]).map((k) => k.entry));
  for (const e of [
    'moe_softmax_topk_f32', 'moe_gather_topk_weights', 'moe_weighted_reduce_f32', 'fused_gelu_mul', 'fused_gelu_mul_bf16', 'moe_accumulate',
    'zero_buffer', 'moe_swiglu_fused', 'moe_swiglu_batch', 'moe_swiglu_seq', 'moe_swiglu_seq_bf16', 'moe_weighted_sum', 'moe_weighted_sum_seq',
    'moe_weighted_sum_seq_bf16_input', 'naive_matvec_f32', 'attn_scores_batched', 'attn_softmax_batched', 'attn_values_batched', 'sigmoid_gate',
  ]) {
    assert.ok(entries.has(e), e);
  }
});
