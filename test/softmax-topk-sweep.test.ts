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
import { verifySpec } from '../src/verify/run.js';

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
