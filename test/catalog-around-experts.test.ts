import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmsNormRef } from '../src/reference/rms-norm.js';
import { ropeInvFreq, ropeRef, yarnConstants } from '../src/reference/rope.js';
import { matvecBf16Ref, moeCombineRef, residualAddRef } from '../src/reference/residual.js';
import { AROUND_EXPERTS_SPECS } from '../src/kernels/index.js';
import { bf16Matvec } from '../src/kernels/bf16-matvec.js';
import { boundRule } from '../src/kernels/common/extra.js';
import { moeCombine, moeCombineScaled } from '../src/kernels/moe-combine.js';
import { residualAdd } from '../src/kernels/residual-add.js';
import { rmsNorm, rmsNormBf16w } from '../src/kernels/rms-norm.js';
import { rope, ropeYarn } from '../src/kernels/rope.js';
import { SPECS } from '../src/kernels/index.js';
import { model } from '../src/kernels/models.js';
import type { BufferDecl, KernelSpec } from '../src/kernels/spec.js';
import { f32ToBf16Bits } from '../src/util/bf16.js';
import { makeRng } from '../src/util/rng.js';
import { getBackend } from '../src/backend/index.js';
import { verifySpec } from '../src/harness/run.js';
import { shader } from './helpers.js';

const close = (got: ArrayLike<number>, want: number[], eps = 1e-12): void => {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs((got[i] as number) - (want[i] as number)) <= eps, `[${i}] ${got[i]} != ${want[i]}`);
};

// ---------------------------------------------------------------------------
// References on hand-computed examples
// ---------------------------------------------------------------------------

test('rms-norm reference: x / √(mean(x²) + eps) · w, per row; eps keeps a zero row at 0', () => {
  // row [3, 4]: mean(x²) = 12.5; row [0, 0]: 0 / √eps = 0
  const r = rmsNormRef([3, 4, 0, 0], [1, 2], 2, 2, 0);
  close(r.slice(0, 2), [3 / Math.sqrt(12.5), (2 * 4) / Math.sqrt(12.5)]);
  assert.ok(Number.isNaN(r[2] as number)); // eps = 0 on a zero row: 0/0 (why the spec rejects eps = 0)
  close(rmsNormRef([0, 0], [1, 1], 1, 2, 1e-6), [0, 0]);
  // eps inside the root: mean 1e-8, eps 1e-6 → 1e-4 / √(1.01e-6)
  close(rmsNormRef([1e-4], [1], 1, 1, 1e-6), [1e-4 / Math.sqrt(1e-8 + 1e-6)], 1e-15);
  assert.match(rmsNorm.validate({ n_rows: 1, hidden: 8, eps: 0 }) ?? '', /eps = 0 must be a positive float32/);
});

test('rope reference: NeoX pairs (i, i + d/2), interleaved pairs (2i, 2i+1), pass-through past rot_dim', () => {
  // head_dim 4, base 1e4, pos 1: pair 0 turns by 1 rad, pair 1 by 1e4^(−1/2) = 0.01 rad
  close([ropeInvFreq(0, 4, 1e4, null), ropeInvFreq(1, 4, 1e4, null)], [1, 0.01], 1e-15);
  const shape = { n_tokens: 1, n_heads: 1, head_dim: 4, rot_dim: 4, theta: 1e4 };
  const neox = ropeRef([1, 0, 0, 0], [1], { ...shape, neox: 1 }, null);
  close(neox.values, [Math.cos(1), 0, Math.sin(1), 0]);
  const inter = ropeRef([1, 0, 0, 0], [1], { ...shape, neox: 0 }, null);
  close(inter.values, [Math.cos(1), Math.sin(1), 0, 0]);
  // the second pair: (x1, x3) in NeoX order, (x2, x3) interleaved
  close(ropeRef([0, 2, 0, 0], [1], { ...shape, neox: 1 }, null).values, [0, 2 * Math.cos(0.01), 0, 2 * Math.sin(0.01)]);
  // partial rotary: rot_dim 2 of head_dim 4; pos 0 is the identity
  const part = ropeRef([1, 2, 3, 4], [1], { ...shape, rot_dim: 2, neox: 0 }, null);
  close(part.values, [Math.cos(1) - 2 * Math.sin(1), Math.sin(1) + 2 * Math.cos(1), 3, 4]);
  close(part.angle, [1, 1, 0, 0]);
  close(ropeRef([1, 2, 3, 4], [0], { ...shape, neox: 1 }, null).values, [1, 2, 3, 4]);
});

test('YaRN constants: DeepSeek-V2-Lite (s 40, 4096, β 32/1, rot_dim 64, base 1e4)', () => {
  // corr(β) = 64·ln(4096 / (2πβ)) / (2 ln 1e4): β = 32 → 10.47 (floor 10), β = 1 → 22.51 (ceil 23)
  const c = yarnConstants(64, 1e4, { factor: 40, orig_ctx: 4096, beta_fast: 32, beta_slow: 1 });
  assert.deepEqual([c.low, c.high], [10, 23]);
  close([c.freqScale, c.mscale], [1 / 40, 0.1 * Math.log(40) + 1], 1e-15);
  // below low: the original frequency (extrapolation); above high: divided by s (interpolation)
  close([ropeInvFreq(5, 64, 1e4, c), ropeInvFreq(30, 64, 1e4, c)], [1e4 ** (-10 / 64), 1e4 ** (-60 / 64) / 40], 1e-15);
  // halfway up the ramp: the mean of the two
  const mid = 16.5;
  const ext = 1e4 ** ((-2 * mid) / 64);
  close([ropeInvFreq(mid, 64, 1e4, c)], [(ext + ext / 40) / 2], 1e-15);
  // factor 1: YaRN off
  assert.equal(yarnConstants(64, 1e4, { factor: 1, orig_ctx: 4096, beta_fast: 32, beta_slow: 1 }).mscale, 1);
  // the kernel's struct carries these constants
  const p = ropeYarn.cases()[0]?.params;
  assert.ok(p);
  const st = ropeYarn.buffers.find((b) => b.kind === 'struct');
  assert.ok(st?.kind === 'struct');
  assert.deepEqual(st.fields.slice(6).map((f) => [f.name, f.value(p)]), [['freq_scale', 1 / 40], ['corr_low', 10], ['corr_high', 23], ['mscale', 0.1 * Math.log(40) + 1]]);
  // mscale scales cos and sin
  const y = ropeRef([1, 0], [0], { n_tokens: 1, n_heads: 1, head_dim: 2, rot_dim: 2, neox: 1, theta: 1e4 }, c);
  close(y.values, [c.mscale, 0]);
});

test('residual, combine and bf16 mat-vec references', () => {
  close(residualAddRef([1, -0.5], [2, 0.5]), [3, 0]);
  // T 1, K 2, H 2: w [0.25, 0.75], y rows [4, 8] and [−4, 4], res [1, 2]
  const c = moeCombineRef([4, 8, -4, 4], [0.25, 0.75], [1, 2], 1, 2, 2);
  close(c.values, [1 + 1 - 3, 2 + 2 + 3]);
  close(c.absTermSum, [1 + 1 + 3, 2 + 2 + 3]);
  // scaled: only the experts' sum is scaled
  close(moeCombineRef([4, 8, -4, 4], [0.25, 0.75], [1, 2], 1, 2, 2, 16).values, [1 - 32, 2 + 80]);
  const m = matvecBf16Ref([1, 2, 3, -4, 5, 6], [1, -1], 3, 2);
  close(m.values, [-1, 7, -1]);
  close(m.absTermSum, [3, 7, 11]);
});

test('bound rule: atol is the largest bound; floors relax only where the bound allows less', () => {
  const tight = boundRule([1, 2], [1e-7, 1e-7], 0.9999, 1e-3, 'r');
  assert.deepEqual([tight.atol, tight.minCosine, tight.maxRelMaxAbs], [1e-7, 0.9999, 1e-3]);
  const noisy = boundRule([1e-7, 0], [1e-6, 1e-6], 0.9999, 1e-3, 'r');
  assert.equal(noisy.minCosine, -1);
  assert.ok(noisy.maxRelMaxAbs >= 10);
});

// ---------------------------------------------------------------------------
// Interfaces, launches, validation, sweeps, cost models
// ---------------------------------------------------------------------------

function layout(s: KernelSpec): string[] {
  return [...s.buffers]
    .sort((a, b) => a.index - b.index)
    .map((b: BufferDecl) =>
      b.kind === 'struct' ? `${b.index}:${b.mslType}{${b.fields.map((f) => `${f.type} ${f.name}`).join(',')}}` : b.kind === 'scalar' ? `${b.index}:${b.mslType}&` : `${b.index}:${b.access === 'read' ? 'const ' : ''}${b.mslType}*`,
    );
}

test('buffer layouts and launch geometry', () => {
  assert.deepEqual(layout(rmsNorm), ['0:const float*', '1:const float*', '2:float*', '3:RmsNormParams{uint n_rows,uint dim,float eps}']);
  assert.deepEqual(layout(rmsNormBf16w)[1], '1:const bfloat*');
  assert.deepEqual(layout(residualAdd), ['0:const float*', '1:const float*', '2:float*', '3:ResidualAddParams{uint n_elements}']);
  const ropeP = 'uint n_tokens,uint n_heads,uint head_dim,uint rot_dim,uint neox,float theta_base';
  assert.deepEqual(layout(rope), [`0:RopeParams{${ropeP}}`, '1:const float*', '2:const uint*', '3:float*']);
  assert.deepEqual(layout(ropeYarn)[0], `0:RopeYarnParams{${ropeP},float freq_scale,float corr_low,float corr_high,float mscale}`);
  assert.deepEqual(layout(bf16Matvec), ['0:const bfloat*', '1:const float*', '2:float*', '3:MatvecBf16Params{uint n,uint k}']);
  assert.deepEqual(layout(moeCombine), ['0:const float*', '1:const float*', '2:const float*', '3:float*', '4:MoeCombineParams{uint n_tokens,uint top_k,uint hidden}']);
  assert.deepEqual(layout(moeCombineScaled)[4], '4:MoeCombineScaledParams{uint n_tokens,uint top_k,uint hidden,float scale}');
  const tg = (grid: number[], threadgroup: number[], mode = 'threadgroups') => ({ mode, grid, threadgroup, threadgroupMemory: [] });
  assert.deepEqual(rmsNorm.launch({ n_rows: 3, hidden: 2048, eps: 1e-6 }), tg([3, 1, 1], [256, 1, 1]));
  assert.deepEqual(rmsNorm.launch({ n_rows: 2, hidden: 27, eps: 1e-6 }), tg([2, 1, 1], [32, 1, 1]));
  assert.deepEqual(residualAdd.launch({ n_elements: 257 }), tg([257, 1, 1], [256, 1, 1], 'threads'));
  assert.deepEqual(rope.launch({ n_tokens: 3, n_heads: 32, head_dim: 128, rot_dim: 128, neox: 1, theta: 1e6 }), tg([64, 32, 3], [64, 1, 1], 'threads'));
  assert.deepEqual(bf16Matvec.launch({ n: 33, k: 100 }), tg([5, 1, 1], [256, 1, 1]));
  assert.deepEqual(moeCombine.launch({ n_tokens: 3, top_k: 8, hidden: 2048 }), tg([2048, 3, 1], [256, 1, 1], 'threads'));
});

test('validation: clear messages', () => {
  const r = { n_tokens: 1, n_heads: 1, head_dim: 8, rot_dim: 8, neox: 1, theta: 1e4 };
  assert.match(rope.validate({ ...r, rot_dim: 10 }) ?? '', /rot_dim = 10 must not exceed head_dim = 8/);
  assert.match(rope.validate({ ...r, head_dim: 7 }) ?? '', /must be even/);
  assert.match(rope.validate({ ...r, neox: 2 }) ?? '', /neox = 2 must be 0 or 1/);
  assert.match(rope.validate({ ...r, theta: 1 }) ?? '', /theta = 1 must be above 1/);
  const y = { ...r, factor: 4, orig_ctx: 4096, beta_fast: 32, beta_slow: 1 };
  assert.equal(ropeYarn.validate(y), null);
  assert.match(ropeYarn.validate({ ...y, beta_fast: 1, beta_slow: 32 }) ?? '', /beta_fast = 1 must exceed beta_slow = 32/);
  assert.match(ropeYarn.validate({ ...y, factor: 0.5 }) ?? '', /factor = 0.5 must be at least 1/);
  assert.match(moeCombineScaled.validate({ n_tokens: 1, top_k: 1, hidden: 1, scale: 1e39 }) ?? '', /not a finite float32/);
  assert.match(bf16Matvec.validate({ n: 65536, k: 65536 }) ?? '', /too large/);
  assert.match(residualAdd.validate({ n_elements: 2 ** 29 }) ?? '', /too large/);
});

test('sweeps: model shapes and edge cases, every input set, all valid, registered once', () => {
  assert.equal(AROUND_EXPERTS_SPECS.length, 8);
  for (const s of AROUND_EXPERTS_SPECS) {
    const cases = s.cases();
    for (const c of cases) {
      assert.equal(s.validate(c.params), null, `${s.name} ${c.origin}`);
      const key = c.origin.split(':')[0] as string;
      assert.ok(c.origin.startsWith('edge: ') || model(key) !== undefined, `${s.name}: origin ${c.origin}`);
      for (const d of s.params) assert.ok(typeof c.params[d.name] === 'number', `${s.name}: ${d.name} missing in ${c.origin}`);
    }
    for (const set of s.inputSets) assert.ok(cases.some((c) => c.inputSet === set.name), `${s.name}: set ${set.name} unused`);
    assert.equal(s.validate(s.defaults), null, `${s.name} defaults`);
    assert.equal(SPECS.filter((x) => x.name === s.name || x.entry === s.entry).length, 1, s.name);
    // every rule has a reason, and the f32 floors are the defaults — except RoPE's, whose f32 angle
    // error grows with the position (|θ|·(20 + ln base)·u), so its floors follow that bound
    const c0 = cases[0];
    assert.ok(c0);
    for (const r of Object.values(s.reference(c0.params, s.inputs(c0.params, c0.inputSet, makeRng('x'))).rules)) {
      assert.ok(r.reason.length > 20, `${s.name}: reason`);
      if (r.kind === 'float' && s !== rope && s !== ropeYarn) assert.ok(r.minCosine >= 0.9999 && r.maxRelMaxAbs <= 1e-3, `${s.name}: floor`);
    }
  }
  // both pairings, partial rotary and non-power-of-two sizes are swept
  assert.deepEqual([...new Set(rope.cases().map((c) => c.params.neox))].sort(), [0, 1]);
  assert.ok(rope.cases().some((c) => (c.params.rot_dim as number) < (c.params.head_dim as number)));
  assert.ok(ropeYarn.cases().some((c) => c.params.factor === 40 && c.params.orig_ctx === 4096));
  assert.ok(bf16Matvec.cases().some((c) => (c.params.n as number) % 8 !== 0 && (c.params.k as number) % 32 !== 0));
  assert.ok(rmsNorm.cases().some((c) => (c.params.hidden as number) % 32 !== 0));
  assert.ok(moeCombineScaled.cases().some((c) => c.params.scale !== 1));
  // RoPE at positions below 4096 (base 1e6): the bound stays under 1% of the pair amplitude
  const q = rope.cases()[0];
  assert.ok(q);
  const rule = rope.reference(q.params, rope.inputs(q.params, 'normal', makeRng('q'))).rules.out;
  assert.ok(rule?.kind === 'float' && rule.maxRelMaxAbs < 0.01 && rule.minCosine > 0.9999, JSON.stringify(rule));
});

test('inputs: bf16 buffers hold round-to-nearest-even bits; cancel sets cancel exactly', () => {
  const p = { n: 3, k: 5 };
  const m = bf16Matvec.inputs(p, 'cancel', makeRng('c'));
  const out = bf16Matvec.reference(p, m).outputs.out as Float32Array;
  assert.deepEqual(Array.from(out), [0, 0, 0]);
  const w = rmsNormBf16w.inputs({ n_rows: 1, hidden: 4, eps: 1e-6 }, 'normal', makeRng('w')).w as Uint16Array;
  const wf = rmsNorm.inputs({ n_rows: 1, hidden: 4, eps: 1e-6 }, 'normal', makeRng('w')).w as Float32Array;
  assert.deepEqual(Array.from(w), Array.from(wf, (v) => f32ToBf16Bits(v)));
  const z = rmsNorm.inputs({ n_rows: 2, hidden: 5, eps: 1e-6 }, 'zeros', makeRng('z')).x as Float32Array;
  assert.deepEqual(Array.from(z.slice(0, 5)), [0, 0, 0, 0, 0]);
});

test('cost models: hand counts', () => {
  // 3 rows × 2048: read x + write out (8 B/elt) + w; 4 flops per element + 3 per row
  assert.deepEqual(rmsNorm.cost({ n_rows: 3, hidden: 2048, eps: 1e-6 }), { bytes: 3 * 2048 * 8 + 8192, flops: 4 * 6144 + 9 });
  assert.deepEqual(rmsNormBf16w.cost({ n_rows: 3, hidden: 2048, eps: 1e-6 }).bytes, 3 * 2048 * 8 + 4096);
  assert.deepEqual(residualAdd.cost({ n_elements: 1000 }), { bytes: 12000, flops: 1000 });
  // rope qwen3, 3 tokens: 3·32·128 floats in and out + 3 positions; 3·32·64 pairs × 7 (13 with YaRN)
  const rp = { n_tokens: 3, n_heads: 32, head_dim: 128, rot_dim: 128, neox: 1, theta: 1e6 };
  assert.deepEqual(rope.cost(rp), { bytes: 8 * 12288 + 12, flops: 6144 * 7 });
  assert.deepEqual(ropeYarn.cost({ ...rp, rot_dim: 64, factor: 4, orig_ctx: 32768, beta_fast: 32, beta_slow: 1 }).flops, 3072 * 13);
  assert.deepEqual(bf16Matvec.cost({ n: 128, k: 2048 }), { bytes: 2 * 262144 + 4 * 2176, flops: 524288, weightBytes: 524288 });
  // combine 3 × 8 × 2048: y 49152, w 24, res + out 2 × 6144 floats; 2·8 + 1 flops per output (+1 scaled)
  assert.deepEqual(moeCombine.cost({ n_tokens: 3, top_k: 8, hidden: 2048 }), { bytes: 4 * (49152 + 24 + 12288), flops: 6144 * 17 });
  assert.deepEqual(moeCombineScaled.cost({ n_tokens: 3, top_k: 8, hidden: 2048, scale: 2.5 }).flops, 6144 * 18);
});

// ---------------------------------------------------------------------------
// The real kernels on the CPU backend: ours, correct variants, planted bugs
// ---------------------------------------------------------------------------

async function notPassing(spec: KernelSpec, shaderFile?: string): Promise<{ notPass: string[]; total: number }> {
  const { results } = await verifySpec(spec, getBackend('cpu'), spec.cases(), { seed: 42, shaderFile });
  const notPass = results.filter((r) => r.status !== 'PASS').map((r) => `${r.origin} ${r.shape} ${r.inputSet}: ${r.status} ${r.error ?? r.outputs.map((o) => o.failure).join('; ')}`);
  return { notPass, total: results.length };
}

const VARIANTS: [spec: KernelSpec, correct: string[], bugs: string[]][] = [
  [rmsNorm, ['alt_tree_reduce'], ['no_eps', 'sum_not_mean', 'missing_barrier']],
  [rmsNormBf16w, ['alt_ushort'], ['no_weight', 'eps_outside_sqrt']],
  [residualAdd, ['alt_grid_stride'], ['overwrite', 'half_precision']],
  [rope, ['alt_exp2'], ['interleaved_only', 'reverse_rotation', 'head_dim_freq', 'no_passthrough']],
  [ropeYarn, ['alt_mix_form'], ['no_mscale', 'ramp_inverted']],
  [bf16Matvec, ['alt_lane0_serial'], ['no_tail', 'four_rows_per_tg', 'x_as_bf16']],
  [moeCombine, ['alt_residual_first'], ['no_residual', 'first_slot_weight']],
  [moeCombineScaled, ['alt_prescaled_weights'], ['scale_residual', 'unscaled']],
];

test('every spec around the experts has a correct variant and planted bugs', () => {
  assert.deepEqual(VARIANTS.map(([s]) => s.name).sort(), AROUND_EXPERTS_SPECS.map((s) => s.name).sort());
});

for (const [spec, correct, bugs] of VARIANTS) {
  test(`${spec.name}: our shader passes every default case on the CPU backend`, async () => {
    const r = await notPassing(spec);
    assert.deepEqual(r.notPass, []);
    assert.ok(r.total > 0);
  });
  for (const v of correct) {
    test(`${spec.name}: correct variant ${v} passes every default case`, async () => {
      assert.deepEqual((await notPassing(spec, shader(spec.name, `${v}.metal`))).notPass, []);
    });
  }
  for (const b of bugs) {
    test(`${spec.name}: planted bug ${b} is caught (FAIL or ERROR)`, async () => {
      const r = await notPassing(spec, shader(spec.name, `${b}.metal`));
      assert.ok(r.notPass.length > 0, `${b}: all ${r.total} cases passed`);
    });
  }
}
