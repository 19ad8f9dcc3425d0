import { test } from 'node:test';
import assert from 'node:assert/strict';
import { softmaxTopkRef, probsTie } from '../src/reference/softmax-topk.js';
import { softmaxTopk } from '../src/kernels/softmax-topk.js';

test('softmax-topk reference: hand-computed example', () => {
  // logits [0, ln 2, ln 4]: softmax = [1/7, 2/7, 4/7]; top-2 = experts 2, 1; renorm = [4/6, 2/6]
  const r = softmaxTopkRef(new Float32Array([0, Math.log(2), Math.log(4)]), 1, 3, 2);
  assert.deepEqual(Array.from(r.ids), [2, 1]);
  assert.ok(Math.abs((r.weights[0] as number) - 4 / 6) < 1e-6);
  assert.ok(Math.abs((r.weights[1] as number) - 2 / 6) < 1e-6);
  assert.ok(Math.abs((r.probs[0] as number) - 1 / 7) < 1e-6);
});

test('softmax-topk reference: ties go to the lower index, output sorted descending', () => {
  const r = softmaxTopkRef(new Float32Array([1, 3, 3, 2, 3]), 1, 5, 3);
  assert.deepEqual(Array.from(r.ids), [1, 2, 4]);
  for (const w of r.weights) assert.ok(Math.abs(w - 1 / 3) < 1e-12);
});

test('softmax-topk reference: large magnitudes stay finite (max subtraction)', () => {
  const r = softmaxTopkRef(new Float32Array([-1e4, -1e4 + 1, 3e38, -3e38]), 1, 4, 2);
  assert.equal(r.ids[0], 2);
  assert.equal(r.weights[0], 1);
  assert.ok(r.weights.every((w) => Number.isFinite(w)));
});

test('probsTie treats underflowed probabilities as tied', () => {
  assert.equal(probsTie(0, 1e-40), true);
  assert.equal(probsTie(0.5, 0.5000001), true);
  assert.equal(probsTie(0.5, 0.51), false);
});

test('softmax-topk cost model: hand count', () => {
  // 4 tokens × 128 experts × top-8: read 4·128·4 bytes, write 4·8·(4+4)
  const c = softmaxTopk.cost({ n_tokens: 4, n_experts: 128, top_k: 8 });
  assert.equal(c.bytes, 4 * 128 * 4 + 4 * 8 * 8);
  assert.equal(c.flops, 4 * (4 * 128 + 3 * 8));
});

test('softmax-topk validation rejects top_k > n_experts with a clear message', () => {
  assert.match(softmaxTopk.validate({ n_tokens: 1, n_experts: 4, top_k: 5 }) ?? '', /top_k = 5 must not exceed n_experts = 4/);
  assert.equal(softmaxTopk.validate({ n_tokens: 1, n_experts: 512, top_k: 64 }), null);
});

test('softmax-topk default sweep has non-power-of-two experts, 1 token, ties and large magnitudes', () => {
  const cases = softmaxTopk.cases();
  assert.ok(cases.some((c) => c.params.n_tokens === 1));
  assert.ok(cases.some((c) => ((c.params.n_experts as number) & ((c.params.n_experts as number) - 1)) !== 0));
  for (const s of ['ties', 'large', 'zeros']) assert.ok(cases.some((c) => c.inputSet === s));
});
