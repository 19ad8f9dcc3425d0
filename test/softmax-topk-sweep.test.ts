/**
 * softmax-topk is right for every n_experts from 1 to 512, with top_k = 1, a
 * middle value and min(64, n_experts), under the spec's own launch (one
 * threadgroup of min(n_experts, 128) threads per token): 1536 shapes through
 * the kernel/backend API on the CPU backend, two input sets each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/index.js';
import { findSpec } from '../src/kernels/index.js';
import type { KernelCase } from '../src/kernels/spec.js';
import { verifySpec } from '../src/harness/run.js';
import { preparePipeline, shaderSource } from '../src/harness/source.js';
import { bindCase } from '../src/harness/bindings.js';
import { makeRng } from '../src/util/rng.js';

test('softmax-topk: every n_experts 1..512 with top_k 1, a middle value and min(64, n_experts)', async () => {
  const spec = findSpec('softmax-topk');
  const cases: KernelCase[] = [];
  for (let e = 1; e <= 512; e++) {
    const ks = [...new Set([1, Math.max(1, Math.floor(Math.min(64, e) / 2)), Math.min(64, e)])];
    for (const top_k of ks) {
      for (const inputSet of e % 2 === 0 ? ['normal', 'ties'] : ['normal', 'large']) {
        cases.push({ params: { n_tokens: e % 3 === 0 ? 2 : 1, n_experts: e, top_k }, inputSet, origin: 'sweep' });
      }
    }
  }
  const { results } = await verifySpec(spec, getBackend('cpu'), cases, { seed: 7 });
  const bad = results.filter((r) => r.status !== 'PASS');
  assert.equal(bad.length, 0, bad.slice(0, 5).map((r) => `${r.shape} ${r.inputSet}: ${r.error ?? r.outputs.find((o) => !o.pass)?.failure}`).join('\n'));
  assert.ok(results.length > 3000);
});

test('softmax-topk: a row of NaN logits picks nothing and writes no memory out of bounds, on both paths', async () => {
  const spec = findSpec('softmax-topk');
  const be = getBackend('cpu');
  const pipeline = await preparePipeline(spec, be, shaderSource(spec));
  for (const n_experts of [128, 200]) {  // the register path, the threadgroup path
    const p = { n_tokens: 2, n_experts, top_k: 8 };
    const inputs = spec.inputs(p, 'normal', makeRng('nan'));
    const logits = inputs.logits as Float32Array;
    logits.fill(NaN, 0, n_experts);  // token 0: all NaN; token 1: normal
    const bound = bindCase(spec, p, inputs);
    await be.run(pipeline, bound.buffers, spec.launch(p));  // guard pages around every buffer: an overrun throws
    const ids = bound.outputs.ids as Uint32Array;
    assert.deepEqual(Array.from(ids.subarray(0, 8)), Array(8).fill(0xffffffff), `${n_experts}: nothing to pick in token 0`);
    const ref = spec.reference(p, inputs).outputs.ids as Uint32Array;
    assert.deepEqual(Array.from(ids.subarray(8)), Array.from(ref.subarray(8)), `${n_experts}: token 1 unaffected`);
  }
});
