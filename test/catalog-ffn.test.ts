import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  accumulateRef,
  gatherTopkRef,
  geluMulRef,
  geluTanh,
  matvecRef,
  swigluRowsRef,
  weightedReduceRef,
  weightedSumRef,
} from '../src/reference/ffn.js';
import { accumulate } from '../src/kernels/accumulate.js';
import { bf16RoundingRule } from '../src/kernels/common/gelu.js';
import { gatherTopkWeights } from '../src/kernels/gather-topk-weights.js';
import { geluMul, geluMulBf16 } from '../src/kernels/gelu-mul.js';
import { FFN_SPECS, SPECS } from '../src/kernels/index.js';
import { matvec } from '../src/kernels/matvec.js';
import { swigluBatch } from '../src/kernels/swiglu-batch.js';
import { swigluFused } from '../src/kernels/swiglu-fused.js';
import { swigluSeq, swigluSeqBf16 } from '../src/kernels/swiglu-seq.js';
import { weightedReduce } from '../src/kernels/weighted-reduce.js';
import { weightedSum } from '../src/kernels/weighted-sum.js';
import { weightedSumSeq, weightedSumSeqBf16Input } from '../src/kernels/weighted-sum-seq.js';
import { zeroBuffer } from '../src/kernels/zero-buffer.js';
import type { BufferDecl, FloatRule, KernelSpec, Params } from '../src/kernels/spec.js';
import { model } from '../src/kernels/models.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../src/util/bf16.js';
import { makeRng } from '../src/util/rng.js';
import { getBackend } from '../src/backend/index.js';
import { verifySpec } from '../src/harness/run.js';
import { shader } from './helpers.js';

const close = (got: ArrayLike<number>, want: number[], eps = 1e-12): void => {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs((got[i] as number) - (want[i] as number)) <= eps, `[${i}] ${got[i]} != ${want[i]}`);
  }
};

// ---------------------------------------------------------------------------
// References on hand-computed examples
// ---------------------------------------------------------------------------

test('GELU (tanh approximation): known values, saturation, no NaN for huge inputs', () => {
  // ½x(1 + tanh(√(2/π)(x + 0.044715x³))): GELU(1) = 0.8411919906…, GELU(−1) = −0.1588080094…
  close([geluTanh(0), geluTanh(1), geluTanh(-1), geluTanh(2)], [0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775], 1e-15);
  assert.equal(geluTanh(20), 20); // tanh = 1 exactly
  assert.equal(geluTanh(1e30), 1e30);
  assert.ok(Object.is(geluTanh(-1e30), -0) || geluTanh(-1e30) === 0);
  // not SiLU: SiLU(1) = 0.7310585786
  assert.ok(Math.abs(geluTanh(1) - 1 / (1 + Math.exp(-1))) > 0.1);
});

test('gelu-mul reference: GELU(gate)·up element-wise, error scale ½|gate·up|', () => {
  const r = geluMulRef([0, 1, 20, -1], [5, 2, 0.5, 4]);
  close(r.values, [0, 2 * 0.8411919906082768, 10, 4 * -0.15880800939172324], 1e-15);
  close(r.errScale, [0, 1, 5, 2]);
});

test('swiglu reference: rows of [gate (I) | up (I)], row r at r·2I', () => {
  // 2 rows, I = 2: row 0 gate [20, 0] up [3, 7]; row 1 gate [1, 20] up [1, −2]
  const gu = [20, 0, 3, 7, 1, 20, 1, -2];
  const r = swigluRowsRef(gu, 2, 2);
  close(r.values, [60, 0, 0.8411919906082768, -40], 1e-15);
  // one row is moe_swiglu_fused: gate = first half, up = second half
  close(swigluRowsRef([20, 30, 2, 3], 1, 2).values, [40, 90]);
});

test('weighted-sum reference: out[t, d] = Σ_k y[t·K + k, d]·w[t·K + k]', () => {
  // T = 2, K = 2, H = 2; token 0 weights [0.5, 0.25], token 1 weights [1, −1]
  const y = [2, 4, 8, 16, /* token 1 */ 1, 2, 3, 5];
  const w = [0.5, 0.25, 1, -1];
  const r = weightedSumRef(y, w, 2, 2, 2);
  close(r.values, [3, 6, -2, -3]);
  close(r.absTermSum, [3, 6, 4, 7]);
  assert.equal(r.terms, 2);
});

test('weighted-reduce reference: experts + gated shared expert (+ residual)', () => {
  // T = 1, K = 2, H = 2: w [0.5, 2], y rows [2, 4] and [1, −1], g 0.25, ys [8, 4], res [100, 200]
  const args = [[0.5, 2], [2, 4, 1, -1], [0.25], [8, 4]] as const;
  const withRes = weightedReduceRef(...args, [100, 200], 1, 2, 2);
  close(withRes.values, [1 + 2 + 2 + 100, 2 - 2 + 1 + 200]);
  assert.equal(withRes.terms, 4);
  const noRes = weightedReduceRef(...args, null, 1, 2, 2);
  close(noRes.values, [5, 1]);
  close(noRes.absTermSum, [5, 5]);
  assert.equal(noRes.terms, 3);
});

test('accumulate reference: acc + w·x', () => {
  const r = accumulateRef([1, 2, -3], [4, -6, 0], 0.5);
  close(r.values, [3, -1, -3]);
  close(r.errScale, [3, 5, 3]);
});

test('matvec reference: weight [n, k] row-major times input', () => {
  const r = matvecRef([1, 2, 3, 4, 5, 6], [1, -1], 3, 2);
  close(r.values, [-1, -1, -1]);
  close(r.absTermSum, [3, 7, 11]);
  assert.equal(r.terms, 2);
});

test('gather-topk-weights reference: gather by the given order, renormalise, scale by expert id', () => {
  const r = gatherTopkRef([0.1, 0.6, 0.3], [1, 2, 0], [1, 2, 3], 2);
  assert.deepEqual(Array.from(r.ids), [1, 2]);
  close(r.weights, [(0.6 / 0.9) * 2, (0.3 / 0.9) * 3], 1e-15);
  // all-zero probabilities: weights 0, never 0/0
  const z = gatherTopkRef([0, 0, 0], [2, 0, 1], [5, 5, 5], 3);
  assert.deepEqual(Array.from(z.ids), [2, 0, 1]);
  close(z.weights, [0, 0, 0]);
});

// ---------------------------------------------------------------------------
// Spec references: layouts and rules
// ---------------------------------------------------------------------------

test('spec references follow the seed layouts (fused halves, [T, K, 2I] rows, bf16 bits)', () => {
  // swiglu-seq, I = 1, K = 2, T = 1: rows [gate | up] = [20 | 3], [1 | 2]
  const seq = swigluSeq.reference({ intermediate: 1, top_k: 2, n_tokens: 1 }, { gate_up_buf: new Float32Array([20, 3, 1, 2]) });
  close(seq.outputs.output_buf as Float32Array, [60, Math.fround(2 * 0.8411919906082768)]);
  // fused: n = 2, [gate 20, 30 | up 2, 3]
  const fu = swigluFused.reference({ n_elements: 2 }, { gate_up: new Float32Array([20, 30, 2, 3]) });
  close(fu.outputs.output as Float32Array, [40, 90]);
  // batch: scalars at buffers 2 and 3
  const b = swigluBatch.reference({ intermediate: 1, top_k: 2 }, { gate_up_buf: new Float32Array([20, 3, 0, 9]) });
  close(b.outputs.output_buf as Float32Array, [60, 0]);
  // bf16: expected bits are RNE of the exact value; GELU(1)·1 = 0.84119… → bf16 0.83984375 (0x3f57)
  const bits = (xs: number[]): Uint16Array => Uint16Array.from(xs.map(f32ToBf16Bits));
  const gb = geluMulBf16.reference({ n_elements: 2 }, { gate_out: bits([1, 20]), up_out: bits([1, 3]) });
  assert.deepEqual(Array.from(gb.outputs.output as Uint16Array), [0x3f57, f32ToBf16Bits(60)]);
  assert.equal(bf16BitsToF32(0x3f57), 0.83984375);
  // weighted sum, bf16 input: the reference widens the bits
  const ws = weightedSumSeqBf16Input.reference({ hidden: 1, top_k: 2, n_tokens: 1 }, { expert_outputs: bits([1.5, -3]), weights: new Float32Array([2, 0.5]) });
  close(ws.outputs.output as Float32Array, [1.5]);
});

test('bf16 rule: round to nearest even required; the other neighbour only near a rounding midpoint', () => {
  // bf16 spacing at 1 is 2⁻⁷. v0 = 1 + 2⁻⁸ + 2⁻¹⁰ is far from the midpoint 1 + 2⁻⁸: RNE = 1 + 2⁻⁷, truncation = 1.
  // v1 = 1 + 2⁻⁸ is the midpoint itself: both neighbours are within any f32 error of it.
  const v0 = 1 + 2 ** -8 + 2 ** -10;
  const v1 = 1 + 2 ** -8;
  const rule = bf16RoundingRule({ values: Float64Array.from([v0, v1]), errScale: Float64Array.from([0, 0]) }, 'test');
  assert.equal(rule.kind, 'exact');
  const tieOk = rule.tieOk;
  assert.ok(tieOk);
  assert.ok(tieOk(0, 1 + 2 ** -7, 1 + 2 ** -7));
  assert.equal(tieOk(0, 1, 1 + 2 ** -7), false); // truncated
  assert.equal(tieOk(0, 1 + 2 ** -6, 1 + 2 ** -7), false); // two ulps off
  assert.equal(tieOk(0, NaN, 1 + 2 ** -7), false);
  assert.ok(tieOk(1, 1, 1) && tieOk(1, 1 + 2 ** -7, 1));
  // the error scale (½|gate·up|) widens the window: 32u·s must reach the midpoint
  const wide = bf16RoundingRule({ values: Float64Array.from([v0]), errScale: Float64Array.from([2 ** -10 / (32 * 2 ** -24)]) }, 'test');
  assert.ok(wide.tieOk?.(0, 1, 1 + 2 ** -7));
  // the expected bits of a spec are the RNE of the exact value
  assert.equal(f32ToBf16Bits(v0), 0x3f81);
  assert.equal(bf16BitsToF32(0x3f81), 1 + 2 ** -7);
});

test('f32 rules derive their tolerance from the data and stay within the floor', () => {
  const p: Params = { n_tokens: 3, top_k: 8, hidden: 300, add_residual: 1 };
  const inputs = weightedReduce.inputs(p, 'normal', makeRng('r'));
  const rule = weightedReduce.reference(p, inputs).rules.output as FloatRule;
  assert.ok(rule.atol > 0 && rule.atol < 1e-4, `atol ${rule.atol}`);
  assert.ok(rule.minCosine >= 0.9999 && rule.maxRelMaxAbs <= 1e-3);
  for (const s of FFN_SPECS) {
    const c = s.cases()[0];
    assert.ok(c);
    const ref = s.reference(c.params, s.inputs(c.params, c.inputSet, makeRng('x')));
    for (const [name, r] of Object.entries(ref.rules)) {
      assert.ok(r.reason.length > 10, `${s.name}.${name}: reason`);
      if (r.kind === 'float') assert.ok(r.minCosine >= 0.9999 && r.maxRelMaxAbs <= 1e-3, `${s.name}.${name}: floor`);
    }
  }
});

test('weighted-reduce: with add_residual = 0 the residual is NaN-poisoned and ignored by the reference', () => {
  const p: Params = { n_tokens: 2, top_k: 2, hidden: 5, add_residual: 0 };
  const inputs = weightedReduce.inputs(p, 'normal', makeRng('p'));
  assert.ok(Array.from(inputs.residual as Float32Array).every((v) => Number.isNaN(v)));
  const out = weightedReduce.reference(p, inputs).outputs.output as Float32Array;
  assert.ok(Array.from(out).every((v) => Number.isFinite(v)));
  const on = weightedReduce.inputs({ ...p, add_residual: 1 }, 'normal', makeRng('p'));
  assert.ok(Array.from(on.residual as Float32Array).every((v) => Number.isFinite(v)));
});

test('gather-topk-weights inputs: order is a descending sort (a permutation for unsorted)', () => {
  const p = { n_experts: 60, top_k: 4 };
  for (const set of ['softmax', 'ties', 'unsorted']) {
    const i = gatherTopkWeights.inputs(p, set, makeRng(set));
    const probs = i.softmax_probs as Float32Array;
    const order = Array.from(i.sorted_indices as Uint32Array);
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: 60 }, (_, j) => j));
    if (set !== 'unsorted') for (let j = 1; j < 60; j++) assert.ok((probs[order[j - 1] as number] as number) >= (probs[order[j] as number] as number));
  }
  const z = gatherTopkWeights.inputs(p, 'zeros', makeRng('z'));
  const w = gatherTopkWeights.reference(p, z).outputs.out_weights as Float32Array;
  assert.deepEqual(Array.from(w), [0, 0, 0, 0]);
});

// ---------------------------------------------------------------------------
// Interfaces: buffer indices, struct fields in the seeds' order, launch geometry
// ---------------------------------------------------------------------------

function layout(s: KernelSpec): string[] {
  return [...s.buffers]
    .sort((a, b) => a.index - b.index)
    .map((b: BufferDecl) => {
      if (b.kind === 'struct') return `${b.index}:${b.mslType}{${b.fields.map((f) => `${f.type} ${f.name}`).join(',')}}`;
      if (b.kind === 'scalar') return `${b.index}:${b.mslType}&`;
      return `${b.index}:${b.access === 'read' ? 'const ' : ''}${b.mslType}*`;
    });
}

test('buffer layouts match the seeds (indices, element types, struct field order)', () => {
  const f = (t: string): string => `${t}*`;
  const c = (t: string): string => `const ${t}*`;
  assert.deepEqual(layout(geluMul), ['0:' + c('float'), '1:' + c('float'), '2:' + f('float'), '3:FusedGeluMulParams{uint n_elements}']);
  assert.deepEqual(layout(geluMulBf16), ['0:' + c('bfloat'), '1:' + c('bfloat'), '2:' + f('bfloat'), '3:FusedGeluMulParams{uint n_elements}']);
  assert.deepEqual(layout(accumulate), ['0:' + f('float'), '1:' + c('float'), '2:MoeAccumParams{uint n_elements,float routing_weight}']);
  assert.deepEqual(layout(zeroBuffer), ['0:' + f('float'), '1:ZeroParams{uint n_elements}']);
  assert.deepEqual(layout(swigluFused), ['0:' + c('float'), '1:' + f('float'), '2:FusedGeluMulParams{uint n_elements}']);
  assert.deepEqual(layout(swigluBatch), ['0:' + c('float'), '1:' + f('float'), '2:uint&', '3:uint&']);
  assert.deepEqual(layout(swigluSeq), ['0:' + c('float'), '1:' + f('float'), '2:MoeSwigluSeqParams{uint intermediate,uint top_k,uint n_tokens}']);
  assert.deepEqual(layout(swigluSeqBf16), ['0:' + c('bfloat'), '1:' + f('bfloat'), '2:MoeSwigluSeqParams{uint intermediate,uint top_k,uint n_tokens}']);
  assert.deepEqual(layout(weightedSum), ['0:' + c('float'), '1:' + c('float'), '2:' + f('float'), '3:MoeWeightedSumParams{uint hidden_size,uint top_k}']);
  const seqP = '3:MoeWeightedSumSeqParams{uint hidden_size,uint top_k,uint n_tokens}';
  assert.deepEqual(layout(weightedSumSeq), ['0:' + c('float'), '1:' + c('float'), '2:' + f('float'), seqP]);
  assert.deepEqual(layout(weightedSumSeqBf16Input), ['0:' + c('bfloat'), '1:' + c('float'), '2:' + f('float'), seqP]);
  assert.deepEqual(layout(matvec), ['0:' + c('float'), '1:' + c('float'), '2:' + f('float'), '3:MatvecParams{uint m,uint k,uint n}']);
  assert.deepEqual(layout(gatherTopkWeights), [
    '0:' + c('float'),
    '1:' + c('uint'),
    '2:' + c('float'),
    '3:' + f('uint'),
    '4:' + f('float'),
    '5:MoeGatherTopkParams{uint n_experts,uint top_k}',
  ]);
  assert.deepEqual(layout(weightedReduce), [
    '0:MoeWeightedReduceParams{uint n_tokens,uint top_k,uint h,uint add_residual}',
    '1:' + c('float'),
    '2:' + c('float'),
    '3:' + c('float'),
    '4:' + c('float'),
    '5:' + c('float'),
    '6:' + f('float'),
  ]);
  // scalars and struct values
  const sb = new Map(swigluBatch.buffers.map((b) => [b.index, b]));
  const s2 = sb.get(2);
  const s3 = sb.get(3);
  assert.ok(s2?.kind === 'scalar' && s3?.kind === 'scalar');
  assert.deepEqual([s2.value({ intermediate: 704, top_k: 8 }), s3.value({ intermediate: 704, top_k: 8 })], [704, 8]);
  const mv = matvec.buffers.find((b) => b.kind === 'struct');
  assert.ok(mv?.kind === 'struct');
  assert.deepEqual(mv.fields.map((x) => x.value({ n: 768, k: 2048 })), [1, 2048, 768]);
  const acc = accumulate.buffers.find((b) => b.kind === 'struct');
  assert.ok(acc?.kind === 'struct');
  assert.deepEqual(acc.fields.map((x) => x.value({ n_elements: 10, routing_weight: -1.75 })), [10, -1.75]);
  const wr = weightedReduce.buffers.find((b) => b.kind === 'struct');
  assert.ok(wr?.kind === 'struct');
  assert.deepEqual(wr.fields.map((x) => x.value({ n_tokens: 3, top_k: 8, hidden: 2048, add_residual: 0 })), [3, 8, 2048, 0]);
});

test('launch geometry follows the host code', () => {
  const t = (x: number, y = 1, z = 1, tg = Math.min(256, x)) => ({ mode: 'threads', grid: [x, y, z], threadgroup: [tg, 1, 1], threadgroupMemory: [] });
  assert.deepEqual(geluMul.launch({ n_elements: 768 }), t(768));
  assert.deepEqual(geluMulBf16.launch({ n_elements: 100 }), t(100, 1, 1, 100));
  assert.deepEqual(swigluFused.launch({ n_elements: 704 }), t(704));
  assert.deepEqual(swigluBatch.launch({ intermediate: 704, top_k: 8 }), t(704, 8));
  assert.deepEqual(swigluSeq.launch({ intermediate: 768, top_k: 8, n_tokens: 3 }), t(768, 8, 3));
  assert.deepEqual(swigluSeqBf16.launch({ intermediate: 33, top_k: 7, n_tokens: 9 }), t(33, 7, 9, 33));
  assert.deepEqual(weightedSum.launch({ hidden: 2048, top_k: 8 }), t(2048));
  assert.deepEqual(weightedSumSeq.launch({ hidden: 2048, top_k: 8, n_tokens: 4 }), t(2048, 4));
  assert.deepEqual(weightedSumSeqBf16Input.launch({ hidden: 1, top_k: 1, n_tokens: 1 }), t(1, 1, 1, 1));
  assert.deepEqual(accumulate.launch({ n_elements: 2048, routing_weight: 0.5 }), t(2048));
  assert.deepEqual(zeroBuffer.launch({ n_elements: 257 }), t(257));
  assert.deepEqual(matvec.launch({ n: 768, k: 2048 }), t(768));
  assert.deepEqual(gatherTopkWeights.launch({ n_experts: 128, top_k: 8 }), t(1, 1, 1, 1));
  // weighted reduce: dispatchThreadgroups (ceil(h/256), n_tokens) of 256
  assert.deepEqual(weightedReduce.launch({ n_tokens: 3, top_k: 8, hidden: 2816, add_residual: 1 }), {
    mode: 'threadgroups',
    grid: [11, 3, 1],
    threadgroup: [256, 1, 1],
    threadgroupMemory: [],
  });
  assert.deepEqual(weightedReduce.launch({ n_tokens: 1, top_k: 1, hidden: 257, add_residual: 0 }).grid, [2, 1, 1]);
});

test('validation: clear messages for invalid parameters', () => {
  assert.match(gatherTopkWeights.validate({ n_experts: 128, top_k: 9 }) ?? '', /top_k = 9 is above the kernel's limit of 8/);
  assert.match(gatherTopkWeights.validate({ n_experts: 4, top_k: 6 }) ?? '', /top_k = 6 must not exceed n_experts = 4/);
  assert.match(weightedReduce.validate({ n_tokens: 1, top_k: 1, hidden: 1, add_residual: 2 }) ?? '', /add_residual = 2 must be 0 or 1/);
  assert.match(accumulate.validate({ n_elements: 4, routing_weight: 1e39 }) ?? '', /not a finite float32/);
  assert.match(matvec.validate({ n: 65536, k: 65536 }) ?? '', /too large/);
  assert.match(swigluSeq.validate({ intermediate: 14336, top_k: 8, n_tokens: 4096 }) ?? '', /too large/);
  assert.equal(weightedReduce.validate({ n_tokens: 1, top_k: 1, hidden: 1, add_residual: 0 }), null);
});

test('sweeps: real model shapes, edge cases, every input set used, all valid', () => {
  for (const s of FFN_SPECS) {
    const cases = s.cases();
    assert.ok(cases.length > 0, s.name);
    for (const c of cases) {
      assert.equal(s.validate(c.params), null, `${s.name} ${c.origin}`);
      assert.ok(s.inputSets.some((i) => i.name === c.inputSet), `${s.name}: ${c.inputSet}`);
      const key = c.origin.split(':')[0] as string;
      assert.ok(c.origin.startsWith('edge: ') || model(key) !== undefined, `${s.name}: origin ${c.origin}`);
      for (const d of s.params) assert.ok(typeof c.params[d.name] === 'number', `${s.name}: ${d.name} missing in ${c.origin}`);
    }
    assert.ok(cases.some((c) => c.origin.startsWith('edge: ')), `${s.name}: no edge case`);
    assert.ok(cases.some((c) => model(c.origin.split(':')[0] as string) !== undefined), `${s.name}: no model shape`);
    for (const set of s.inputSets) assert.ok(cases.some((c) => c.inputSet === set.name), `${s.name}: set ${set.name} unused`);
    // the validated default params too
    assert.equal(s.validate(s.defaults), null, `${s.name} defaults`);
  }
  // real dims
  const q3 = weightedReduce.cases().find((c) => c.origin === 'qwen3-30b-a3b');
  assert.deepEqual(q3 && [q3.params.top_k, q3.params.hidden], [8, 2048]);
  assert.ok(swigluSeq.cases().some((c) => c.origin === 'mixtral-8x7b' && c.params.intermediate === 14336 && c.params.top_k === 2));
  assert.ok(geluMul.cases().some((c) => c.origin === 'gemma-4-26b-a4b' && c.params.n_elements === 704));
  assert.ok(matvec.cases().some((c) => c.origin === 'qwen3-30b-a3b' && c.params.n === 768 && c.params.k === 2048));
  assert.ok(matvec.cases().some((c) => c.origin.startsWith('mixtral-8x7b: ') && c.origin.includes('capped')));
  // add_residual 0 and 1 both swept; sizes not a multiple of 256
  const res = new Set(weightedReduce.cases().map((c) => c.params.add_residual));
  assert.deepEqual([...res].sort(), [0, 1]);
  assert.ok(weightedReduce.cases().some((c) => (c.params.hidden as number) % 256 !== 0));
  assert.ok(geluMul.cases().some((c) => c.params.n_elements === 1));
  assert.ok(accumulate.cases().some((c) => (c.params.routing_weight as number) < 0));
  assert.ok(accumulate.cases().some((c) => c.params.routing_weight === 0));
  // registry: every ffn spec is registered once, selectable by name and entry
  for (const s of FFN_SPECS) assert.equal(SPECS.filter((x) => x.name === s.name || x.entry === s.entry).length, 1, s.name);
  assert.equal(FFN_SPECS.length, 14);
  assert.deepEqual(
    FFN_SPECS.filter((s) => s.hasTopK).map((s) => s.name).sort(),
    ['gather-topk-weights', 'swiglu-batch', 'swiglu-seq', 'swiglu-seq-bf16', 'weighted-reduce', 'weighted-sum', 'weighted-sum-seq', 'weighted-sum-seq-bf16-input'],
  );
  for (const s of FFN_SPECS) assert.match(s.math, /\S/);
  for (const s of [geluMul, geluMulBf16, swigluFused, swigluBatch, swigluSeq, swigluSeqBf16]) assert.match(s.math, /GELU.*not SiLU/);
});

// ---------------------------------------------------------------------------
// Cost models: hand counts
// ---------------------------------------------------------------------------

test('cost models: hand counts', () => {
  // GELU·up on 768 f32: read gate + up, write out (12 B), 10 flops each
  assert.deepEqual(geluMul.cost({ n_elements: 768 }), { bytes: 9216, flops: 7680 });
  assert.deepEqual(geluMulBf16.cost({ n_elements: 768 }), { bytes: 4608, flops: 7680 });
  assert.deepEqual(swigluFused.cost({ n_elements: 704 }), { bytes: 12 * 704, flops: 7040 });
  assert.deepEqual(swigluBatch.cost({ intermediate: 704, top_k: 8 }), { bytes: 12 * 5632, flops: 56320 });
  // swiglu-seq qwen3, 3 tokens: 3·8·768 = 18432 outputs
  assert.deepEqual(swigluSeq.cost({ intermediate: 768, top_k: 8, n_tokens: 3 }), { bytes: 221184, flops: 184320 });
  assert.deepEqual(swigluSeqBf16.cost({ intermediate: 768, top_k: 8, n_tokens: 3 }), { bytes: 110592, flops: 184320 });
  // weighted sum 2048 × 8: read 16384 + 8, write 2048 floats; 2 flops per product
  assert.deepEqual(weightedSum.cost({ hidden: 2048, top_k: 8 }), { bytes: 73760, flops: 32768 });
  // seq, 4 tokens: read 65536 + 32, write 8192
  assert.deepEqual(weightedSumSeq.cost({ hidden: 2048, top_k: 8, n_tokens: 4 }), { bytes: 4 * (65536 + 32 + 8192), flops: 131072 });
  // bf16 input: expert outputs 2 bytes each
  assert.deepEqual(weightedSumSeqBf16Input.cost({ hidden: 2048, top_k: 8, n_tokens: 4 }), { bytes: 2 * 65536 + 4 * (32 + 8192), flops: 131072 });
  // accumulate 2048: read acc + x, write acc; multiply + add
  assert.deepEqual(accumulate.cost({ n_elements: 2048, routing_weight: 0.5 }), { bytes: 24576, flops: 4096 });
  assert.deepEqual(zeroBuffer.cost({ n_elements: 2048 }), { bytes: 8192, flops: 0 });
  // matvec 768 × 2048: the weights, the input, the output
  assert.deepEqual(matvec.cost({ n: 768, k: 2048 }), { bytes: 4 * (1572864 + 2048 + 768), flops: 3145728 });
  // gather 8: 8 × (index + prob + scale + id + weight) × 4 B; 8 adds + 1 reciprocal + 16 multiplies
  assert.deepEqual(gatherTopkWeights.cost({ n_experts: 128, top_k: 8 }), { bytes: 160, flops: 25 });
  // weighted reduce 3 × 8 × 2048: w 24, y 49152, g 3, ys 6144, res 6144, out 6144 floats; per output 2·8 + 2 (+1)
  assert.deepEqual(weightedReduce.cost({ n_tokens: 3, top_k: 8, hidden: 2048, add_residual: 1 }), { bytes: 4 * 67611, flops: 6144 * 19 });
  assert.deepEqual(weightedReduce.cost({ n_tokens: 3, top_k: 8, hidden: 2048, add_residual: 0 }), { bytes: 4 * (67611 - 6144), flops: 6144 * 18 });
});

// ---------------------------------------------------------------------------
// The real kernels on the CPU backend
// ---------------------------------------------------------------------------

async function statuses(spec: KernelSpec, shaderFile?: string): Promise<{ notPass: string[]; total: number }> {
  const cases = spec.cases();
  const { results } = await verifySpec(spec, getBackend('cpu'), cases, { seed: 42, shaderFile });
  const notPass = results
    .filter((r) => r.status !== 'PASS')
    .map((r) => `${r.origin} ${r.shape} ${r.inputSet}: ${r.status} ${r.error ?? r.outputs.map((o) => o.failure).join('; ')}`);
  return { notPass, total: results.length };
}

const VARIANTS: [spec: KernelSpec, correct: string[], bugs: string[]][] = [
  [geluMul, ['alt_sigmoid'], ['silu', 'no_cubic']],
  [geluMulBf16, ['alt_ushort_rne'], ['truncate', 'double_round']],
  [swigluFused, ['alt_sigmoid'], ['interleaved', 'swapped']],
  [swigluBatch, ['alt_flat'], ['row_stride', 'scalars_swapped']],
  [swigluSeq, ['alt_flat'], ['token_major', 'silu']],
  [swigluSeqBf16, ['alt_ushort_rne'], ['truncate', 'swapped']],
  [weightedSum, ['alt_reverse'], ['skip_last', 'weight_by_column']],
  [weightedSumSeq, ['alt_reverse'], ['token_weights', 'slot_major']],
  [weightedSumSeqBf16Input, ['alt_ushort'], ['bf16_accumulator', 'token_weights']],
  [accumulate, ['alt_separate'], ['overwrite', 'no_weight']],
  [zeroBuffer, ['alt_as_type'], ['scale_by_zero', 'by4_no_tail']],
  [matvec, ['alt_unrolled4'], ['transposed', 'no_tail']],
  [gatherTopkWeights, ['alt_divide'], ['scale_by_slot', 'no_zero_guard', 'probs_by_slot']],
  [weightedReduce, ['alt_shared_first'], ['residual_always', 'gate_token0', 'no_shared']],
];

test('every ffn spec has a correct variant and planted bugs', () => {
  assert.deepEqual(VARIANTS.map(([s]) => s.name).sort(), FFN_SPECS.map((s) => s.name).sort());
});

for (const [spec, correct, bugs] of VARIANTS) {
  test(`${spec.name}: our shader passes every default case on the CPU backend`, async () => {
    const r = await statuses(spec);
    assert.deepEqual(r.notPass, []);
    assert.ok(r.total > 0);
  });
  for (const v of correct) {
    test(`${spec.name}: correct variant ${v} passes every default case`, async () => {
      const r = await statuses(spec, shader(spec.name, `${v}.metal`));
      assert.deepEqual(r.notPass, []);
    });
  }
  for (const b of bugs) {
    test(`${spec.name}: planted bug ${b} is caught (FAIL or ERROR)`, async () => {
      const r = await statuses(spec, shader(spec.name, `${b}.metal`));
      assert.ok(r.notPass.length > 0, `${b}: all ${r.total} cases passed`);
    });
  }
}
