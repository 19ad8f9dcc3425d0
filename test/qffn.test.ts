/**
 * The fused decode expert stage (shaders/moe_qffn.metal): references against
 * a plain composition, every format's default sweep on the CPU backend,
 * planted bugs that must FAIL, shape validation, and `moe dispatch --strategy fused`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/index.js';
import { findSpec } from '../src/kernels/index.js';
import { qffnDownAccumF32, qffnDownAccumQ4, qffnDownAccumQ8 } from '../src/kernels/qffn-down-accum.js';
import { qffnGateUpF32, qffnGateUpQ4, qffnGateUpQ8 } from '../src/kernels/qffn-gate-up.js';
import type { KernelCase, KernelSpec } from '../src/kernels/spec.js';
import { quantize } from '../src/quant/affine.js';
import { ffnDownAccumRef, ffnGateUpRef } from '../src/reference/qffn.js';
import { qmvRef, silu } from '../src/reference/quant.js';
import { makeRng } from '../src/util/rng.js';
import { verifySpec } from '../src/harness/run.js';
import { moe, shader } from './helpers.js';

const cpu = getBackend('cpu');
const ALL = [qffnGateUpQ4, qffnGateUpQ8, qffnGateUpF32, qffnDownAccumQ4, qffnDownAccumQ8, qffnDownAccumF32];

async function run(spec: KernelSpec, file: string | undefined, cases: KernelCase[] = spec.cases()) {
  const { results } = await verifySpec(spec, cpu, cases, { seed: 42, shaderFile: file });
  return results;
}

test('gate_up reference: act(gate)·up per slot from the ids; a slot without an expert gives zeros', () => {
  const rng = makeRng('qffn-ref');
  const [E, R, I] = [3, 4, 64];
  const wg = Float32Array.from({ length: E * R * I }, () => rng.normal() * 0.1);
  const wu = Float32Array.from({ length: E * R * I }, () => rng.normal() * 0.1);
  const x = Float32Array.from({ length: I }, () => rng.normal());
  const ids = Uint32Array.of(2, 0, 3);
  const r = ffnGateUpRef({ bits: 32, w: wg }, { bits: 32, w: wu }, ids, { nExperts: E, outDim: R, inDim: I, groupSize: 4 }, x, 0);
  for (let s = 0; s < 2; s++) {
    const e = ids[s] as number;
    for (let row = 0; row < R; row++) {
      let g = 0;
      let u = 0;
      for (let i = 0; i < I; i++) {
        g += (wg[(e * R + row) * I + i] as number) * (x[i] as number);
        u += (wu[(e * R + row) * I + i] as number) * (x[i] as number);
      }
      assert.ok(Math.abs((r.y[s * R + row] as number) - silu(g) * u) < 1e-12);
    }
  }
  for (let row = 0; row < R; row++) assert.equal(r.y[2 * R + row], 0);
});

test('down_accum reference: Σ route_w·(Wd·h) + gate·shared + residual, quantized weights dequantized as qmvRef', () => {
  const rng = makeRng('qffn-ref-down');
  const [E, R, I, K] = [4, 3, 64, 2];
  const q = quantize(Float32Array.from({ length: E * R * I }, () => rng.normal() * 0.1), E * R, I, 4, 32);
  const m = { bits: 4 as const, w: q.w, scales: q.scales, biases: q.biases };
  const h = Float32Array.from({ length: K * I }, () => rng.normal());
  const ids = Uint32Array.of(3, 1);
  const rw = Float32Array.of(0.7, 0.3);
  const shared = Float32Array.of(1, 2, 3);
  const residual = Float32Array.of(-1, 0.5, 4);
  const r = ffnDownAccumRef(m, ids, rw, { nExperts: E, outDim: R, inDim: I, groupSize: 32 }, h, { shared, sharedGate: 0.5, residual });
  const y0 = qmvRef(m, 3 * R, R, I, 32, h, 0).y;
  const y1 = qmvRef(m, 1 * R, R, I, 32, h, I).y;
  for (let row = 0; row < R; row++) {
    const want = (rw[0] as number) * (y0[row] as number) + (rw[1] as number) * (y1[row] as number) + 0.5 * (shared[row] as number) + (residual[row] as number);
    assert.ok(Math.abs((r.y[row] as number) - want) < 1e-12);
  }
});

for (const spec of ALL) {
  test(`${spec.name}: the default sweep PASSES on the CPU backend`, async () => {
    const results = await run(spec, undefined);
    const bad = results.filter((r) => r.status !== 'PASS');
    assert.equal(bad.length, 0, bad.map((r) => `${r.shape} ${r.inputSet}: ${r.error ?? r.outputs.map((o) => o.failure).join('; ')}`).join('\n'));
    assert.ok(results.length >= 8);
  });
}

/** Edge shapes and one model shape, every input set but zeros. */
function quick(spec: KernelSpec): KernelCase[] {
  return spec.cases().filter((c) => c.inputSet !== 'zeros' && !(c.params.out_dim as number > 100));
}

// the bug files are copies of the whole shader, so each can be run against every format's entry
const BUGS: [dir: string, file: string, why: string, specs: KernelSpec[]][] = [
  ['qffn-gate-up-q4', 'gather_by_slot.metal', 'slot s uses expert s, not ids[s]', [qffnGateUpQ4, qffnGateUpQ8, qffnGateUpF32]],
  ['qffn-gate-up-q4', 'act_ignored.metal', 'always SiLU', [qffnGateUpQ4]],
  ['qffn-gate-up-q4', 'gate_up_swapped.metal', 'act(up)·gate', [qffnGateUpQ4]],
  ['qffn-gate-up-q4', 'clamped_chunk_counted.metal', 'clamped chunks added again', [qffnGateUpQ4, qffnGateUpQ8, qffnGateUpF32]],
  ['qffn-gate-up-q4', 'swizzle_mismatch.metal', 'x stored without the swizzle the reads use', [qffnGateUpQ4, qffnGateUpQ8]],
  ['qffn-down-accum-q4', 'chunk_sum_partial.metal', 'bias term over half of each chunk', [qffnDownAccumQ4, qffnDownAccumQ8]],
  ['qffn-down-accum-q4', 'route_weight_ignored.metal', 'routing weights ignored', [qffnDownAccumQ4, qffnDownAccumF32]],
  ['qffn-down-accum-q4', 'last_slot_dropped.metal', 'the last slot never added', [qffnDownAccumQ4, qffnDownAccumQ8]],
  ['qffn-down-accum-q4', 'residual_ignored.metal', 'residual never added', [qffnDownAccumQ4]],
  ['qffn-down-accum-q4', 'clamped_pair_counted.metal', 'clamped pairs added again', [qffnDownAccumQ4, qffnDownAccumQ8, qffnDownAccumF32]],
];

for (const [dir, file, why, specs] of BUGS) {
  for (const spec of specs) {
    test(`planted bug ${dir}/${file} (${why}) FAILS ${spec.name}`, async () => {
      const results = await run(spec, shader(dir, file), quick(spec));
      assert.ok(results.some((r) => r.status === 'FAIL'), `${spec.name} with ${file} passed every case`);
      assert.ok(results.every((r) => r.status !== 'ERROR'), 'a planted bug must fail on its results, not crash');
    });
  }
}

test('shape validation: group sizes that a 16-byte chunk would straddle, in_dim not a multiple, top_k > n_experts', () => {
  const base = { n_experts: 4, top_k: 2, out_dim: 8, in_dim: 256, act: 0, add_shared: 0, add_residual: 0 };
  assert.match(qffnGateUpQ4.validate({ ...base, group_size: 16 }) ?? '', /multiple of 32/);
  assert.equal(qffnGateUpQ8.validate({ ...base, group_size: 16 }), null);
  assert.match(qffnDownAccumQ8.validate({ ...base, in_dim: 250, group_size: 32 }) ?? '', /multiple of group_size/);
  assert.match(qffnDownAccumF32.validate({ ...base, in_dim: 250 }) ?? '', /multiple of 4/);
  assert.match(qffnGateUpF32.validate({ ...base, top_k: 5 }) ?? '', /must not exceed/);
  assert.match(qffnGateUpF32.validate({ ...base, act: 2 }) ?? '', /act = 2/);
  assert.equal(findSpec('moe_qffn_down_accum_q4'), qffnDownAccumQ4);
});

test('cost models: the q4 decode stage of Qwen3-30B-A3B reads 18.9 MB of packed weights in the two dispatches', () => {
  const gu = qffnGateUpQ4.cost({ ...qffnGateUpQ4.defaults, ...qffnGateUpQ4.bench });
  const dn = qffnDownAccumQ4.cost({ ...qffnDownAccumQ4.defaults, ...qffnDownAccumQ4.bench });
  assert.equal((gu.weightBytes ?? 0) + (dn.weightBytes ?? 0), 3 * 8 * 768 * 2048 / 2);
  assert.ok(gu.bytes > (gu.weightBytes ?? 0) && dn.bytes > (dn.weightBytes ?? 0));
  const f = qffnGateUpF32.cost({ ...qffnGateUpF32.defaults, ...qffnGateUpF32.bench });
  assert.equal(f.weightBytes, 2 * 8 * 768 * 2048 * 4);
});

test('moe dispatch --strategy fused: q4, q8 and f32 layers PASS on CPU with two expert dispatches per token', () => {
  for (const quant of [['--quant', 'q4'], ['--quant', 'q8'], []]) {
    const r = moe(['dispatch', '--backend', 'cpu', '--strategy', 'fused', '--hidden', '256', '--intermediate', '128', '--experts', '8', '--top-k', '2', '--tokens', '2', ...quant, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rep = JSON.parse(r.stdout) as { pass: boolean; strategy: string; stages: { stage: string; kernels: string[]; dispatches: number }[] };
    assert.equal(rep.strategy, 'fused');
    const gu = rep.stages.find((s) => s.stage === 'expert gate/up·act');
    const dn = rep.stages.find((s) => s.stage === 'expert down·combine');
    assert.ok(gu && dn, JSON.stringify(rep.stages.map((s) => s.stage)));
    assert.equal(gu.dispatches, 2);
    assert.equal(dn.dispatches, 2);
    assert.match(gu.kernels.join(), /moe_qffn_gate_up_(q4|q8|f32)/);
  }
});

test('moe dispatch --strategy fused with a shared gated expert (qwen1.5-moe shapes, reduced) PASSES', () => {
  const r = moe(['dispatch', '--backend', 'cpu', '--strategy', 'fused', '--hidden', '256', '--intermediate', '64', '--experts', '8', '--top-k', '4', '--shared-intermediate', '128', '--shared-gate', '--tokens', '1', '--quant', 'q4']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /moe_qffn_down_accum_q4/);
});

test('a planted bug in the fused down kernel, given through --shader, fails the fused layer at that stage', () => {
  const r = moe(['dispatch', '--backend', 'cpu', '--strategy', 'fused', '--hidden', '256', '--intermediate', '128', '--experts', '8', '--top-k', '2', '--tokens', '1', '--quant', 'q4', '--shader', shader('qffn-down-accum-q4', 'route_weight_ignored.metal')]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /first divergence: stage 'expert down·combine'/);
});

test('a q4 candidate shader is launched with the geometry it names (MOE_QFFN_Q4_GEOMETRY); a mismatch leaves rows unwritten and FAILs; a bad value is a usage error', () => {
  const candidate = 'bench/shaders/qffn-variants/q1.metal'; // gate_up 4 SIMD-groups x 1 row pair, down 4 x 1 rows
  const args = ['verify', '--backend', 'cpu', '--kernel', 'qffn-gate-up-q4', '--shader', candidate];
  const ok = moe(args, { MOE_QFFN_Q4_GEOMETRY: '4,1,4,1' });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const wrong = moe(args); // the shipped geometry (8 SIMD-groups x 3 row pairs) launches too few threadgroups for it
  assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
  const bad = moe(args, { MOE_QFFN_Q4_GEOMETRY: '4,1' });
  assert.equal(bad.code, 2, bad.stdout + bad.stderr);
  assert.match(bad.stderr, /MOE_QFFN_Q4_GEOMETRY = "4,1": expected four integers/);
});
