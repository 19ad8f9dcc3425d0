import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/index.js';
import { expertMatvec } from '../src/kernels/expert-matvec.js';
import { verifySpec } from '../src/harness/run.js';
import { shader } from './helpers.js';

const cases = expertMatvec.cases();

test('expert-matvec: our shader passes the default sweep', async () => {
  const { results } = await verifySpec(expertMatvec, getBackend('cpu'), cases, { seed: 42 });
  assert.ok(results.every((r) => r.status === 'PASS'), results.filter((r) => r.status !== 'PASS').map((r) => r.repro).join('\n'));
});

test('expert-matvec: a correct variant written differently (thread per row) passes', async () => {
  const { results } = await verifySpec(expertMatvec, getBackend('cpu'), cases, { seed: 42, shaderFile: shader('expert-matvec', 'alt_thread_per_row.metal') });
  assert.ok(results.every((r) => r.status === 'PASS'));
});

for (const bug of ['ignores_x_per_pair', 'first_slot_expert']) {
  test(`expert-matvec: planted bug ${bug} fails`, async () => {
    const { results } = await verifySpec(expertMatvec, getBackend('cpu'), cases, { seed: 42, shaderFile: shader('expert-matvec', `${bug}.metal`) });
    assert.ok(results.some((r) => r.status === 'FAIL'));
  });
}

test('expert-matvec: reference on a hand-computed example and the cost model', () => {
  // 1 token, 2 experts of 2 rows × 3 cols, top-1 routed to expert 1
  const p = { n_tokens: 1, n_experts: 2, top_k: 1, n_rows: 2, k: 3, x_per_pair: 0 };
  const w = new Float32Array([0, 0, 0, 0, 0, 0, 1, 2, 3, -1, 0, 1]);
  const r = expertMatvec.reference(p, { w, x: new Float32Array([1, 1, 2]), ids: new Uint32Array([1]) });
  assert.deepEqual(Array.from(r.outputs.y as Float32Array), [1 + 2 + 6, -1 + 0 + 2]);
  // 1 pair: reads 2×3 weights + 3 inputs, writes 2 outputs, 1 id; 2·2·3 flops
  assert.deepEqual(expertMatvec.cost(p), { bytes: 4 * (6 + 3 + 2) + 4, flops: 12 });
});
