/**
 * Expert-indexed mat-vec (our own kernel for the batched MoE path): every
 * (token, slot) pair multiplies its input row by the weights of the expert
 * routed to it, in one dispatch — gather by id.
 */
import { matvec } from '../reference/moe-layer.js';
import { cross, setNames } from './common/cases.js';
import { f32In, f32Out, paramStruct, u32In } from './common/buffers.js';
import { num as n, product, P_EXPERT_COLS, P_EXPERT_ROWS, P_STACKED_EXPERTS, P_TOKENS, P_TOP_K } from './common/params.js';
import { X_PER_PAIR } from './common/quant.js';
import { routingPreset } from './common/presets.js';
import { defineKernel, type KernelCase, type Params, type Tensors } from './spec.js';
import type { Rng } from '../util/rng.js';
import { fillUniform } from '../util/fastrng.js';

const ROWS_PER_GROUP = 4; // one SIMD-group per row, 128 threads

const pairs = (p: Params): number => n(p, 'n_tokens') * n(p, 'top_k');
const inputs = (p: Params): number => (n(p, 'x_per_pair') ? pairs(p) : n(p, 'n_tokens'));

const SHAPES: [string, number, number, number, number, number, number][] = [
  // origin, tokens, experts, top_k, rows, k, x_per_pair
  ['qwen3-30b-a3b (gate/up: 2048 → 768, capped to 40 rows)', 2, 128, 8, 40, 2048, 0],
  ['qwen3-30b-a3b (down: 768 → 2048, capped to 64 rows)', 2, 128, 8, 64, 768, 1],
  ['qwen1.5-moe-a2.7b (gate: 2048 → 1408, capped to 256 rows)', 3, 60, 4, 256, 2048, 0],
  ['mixtral-8x7b (gate: 4096 → capped 128 rows)', 2, 8, 2, 128, 4096, 0],
  ['edge: 1 token, k not a multiple of 32', 1, 5, 3, 7, 45, 0],
  ['edge: rows not a multiple of 4, 1 expert', 4, 1, 1, 13, 100, 1],
];

export const expertMatvec = defineKernel({
  name: 'expert-matvec', entry: 'moe_expert_matvec_f32', shader: 'moe_expert_matvec.metal', group: 'expert mat-vec',
  description: 'Expert-indexed mat-vec: y[pair] = W[ids[pair]] · x[token of pair], all pairs in one dispatch',
  params: [P_TOKENS, P_STACKED_EXPERTS, { ...P_TOP_K, description: 'pairs per token' }, P_EXPERT_ROWS, P_EXPERT_COLS, { ...X_PER_PAIR, description: '1: one input row per pair (down projection), 0: per token' }],
  buffers: [
    f32In(0, 'w', product('n_experts', 'n_rows', 'k')),
    f32In(1, 'x', (p) => inputs(p) * n(p, 'k')),
    u32In(2, 'ids', pairs),
    f32Out(3, 'y', (p) => pairs(p) * n(p, 'n_rows')),
    paramStruct(4, 'MoeExpertMatvecParams', ['n_rows', 'k', ['n_pairs', pairs], 'top_k', 'x_per_pair', 'n_experts']),
  ],
  math: 'y[q, r] = Σ_i W[ids[q], r, i] · x[q / top_k (or q), i]',
  defaults: { n_tokens: 2, n_experts: 16, top_k: 4, n_rows: 64, k: 256, x_per_pair: 0 },
  bench: { n_tokens: 1, n_experts: 128, top_k: 8, n_rows: 768, k: 2048 },
  presetParams: routingPreset,
  inputSets: [
    { name: 'normal', description: 'weights U(-1,1)/√k, inputs N(0,1), random distinct ids per token' },
    { name: 'large', description: 'inputs ×1e4 with one outlier column ×1e3' },
    { name: 'same-expert', description: 'every pair routed to expert 0 (gather must not depend on distinct ids)' },
    { name: 'zeros', description: 'zero inputs' },
  ],
  cases(): KernelCase[] {
    return cross(SHAPES.map(([origin, n_tokens, n_experts, top_k, n_rows, k, x_per_pair]) => [origin, { n_tokens, n_experts, top_k, n_rows, k, x_per_pair }, setNames(this.inputSets)]));
  },
  validate(p) {
    if (n(p, 'top_k') > n(p, 'n_experts')) return `top_k = ${n(p, 'top_k')} must not exceed n_experts = ${n(p, 'n_experts')}`;
    const bytes = 4 * n(p, 'n_experts') * n(p, 'n_rows') * n(p, 'k');
    if (bytes > 2 ** 31) return `expert weights of ${(bytes / 2 ** 30).toFixed(1)} GiB are too large for one buffer`;
    return null;
  },
  inputs(p, set, rng: Rng): Tensors {
    const K = n(p, 'k');
    const E = n(p, 'n_experts');
    // bulk weights from a fast seeded generator (the seed comes from the case's rng)
    const w = fillUniform(new Float32Array(E * n(p, 'n_rows') * K), `w:${rng.next()}`, 1 / Math.sqrt(K));
    const x = new Float32Array(inputs(p) * K);
    for (let i = 0; i < x.length; i++) {
      x[i] = set === 'zeros' ? 0 : set === 'large' ? 1e4 * rng.normal() * (i % K === 3 ? 1e3 : 1) : rng.normal();
    }
    const ids = new Uint32Array(pairs(p));
    const T = n(p, 'n_tokens');
    const TK = n(p, 'top_k');
    for (let t = 0; t < T; t++) {
      const chosen = new Set<number>();
      for (let j = 0; j < TK; j++) {
        let e = set === 'same-expert' ? 0 : rng.int(0, E);
        while (set !== 'same-expert' && chosen.has(e)) e = (e + 1) % E;
        chosen.add(e);
        ids[t * TK + j] = e;
      }
    }
    return { w, x, ids };
  },
  launch(p) {
    return { mode: 'threadgroups', grid: [Math.ceil(n(p, 'n_rows') / ROWS_PER_GROUP), pairs(p), 1], threadgroup: [32 * ROWS_PER_GROUP, 1, 1], threadgroupMemory: [] };
  },
  reference(p, t) {
    const R = n(p, 'n_rows');
    const K = n(p, 'k');
    const y = new Float64Array(pairs(p) * R);
    const ids = t.ids as Uint32Array;
    for (let q = 0; q < pairs(p); q++) {
      const e = ids[q] as number;
      const row = n(p, 'x_per_pair') ? q : Math.floor(q / n(p, 'top_k'));
      y.set(matvec(t.w as Float32Array, e * R * K, t.x as Float32Array, row * K, R, K), q * R);
    }
    let ymax = 0;
    for (const v of y) ymax = Math.max(ymax, Math.abs(v));
    return {
      outputs: { y: Float32Array.from(y) },
      rules: {
        y: {
          kind: 'float',
          // absolute error scales with the magnitudes summed, not with each (possibly cancelled) result
          atol: 1e-6 + 1e-5 * ymax,
          rtol: 1e-4,
          minCosine: 0.99999,
          maxRelMaxAbs: 1e-4,
          reason: 'f32 dot products of length k in a different summation order (lane-strided fma, SIMD tree): error ~ √k·ulp',
        },
      },
    };
  },
  cost(p) {
    // each pair reads one expert's rows (n_rows × k) and its input row, writes n_rows; 2 flops per multiply-add
    const R = n(p, 'n_rows');
    const K = n(p, 'k');
    return { bytes: 4 * pairs(p) * (R * K + K + R) + 4 * pairs(p), flops: 2 * pairs(p) * R * K };
  },
});
