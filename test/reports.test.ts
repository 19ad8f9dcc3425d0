import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { moe, shader, tmp, ROOT } from './helpers.js';

const schema = JSON.parse(readFileSync(join(ROOT, 'docs', 'verify-report.schema.json'), 'utf8')) as object;

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
