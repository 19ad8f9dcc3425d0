/** moe_qmv4_batched_f32 (moe_quant.metal): a 4-bit dequantizing mat-vec over N tokens, the prefill of one expert. */
import type { Rng } from '../util/rng.js';
import { cross } from './common/cases.js';
import { f32In, f32Out, uintArg } from './common/buffers.js';
import { groups } from './common/launch.js';
import { num, P_TOKENS, product } from './common/params.js';
import { ALL_QUANT_SETS, DEQ, dimBuffers, genQuantWeights, genX, QB, QPARAMS, QUANT_GROUP, QUANT_INPUT_SETS, QUANT_SHADER, qmvCost, qmvSlotsRef, quantRule, validateQuant, weightBuffers } from './common/quant.js';
import { defineKernel, type Cost, type Tensors } from './spec.js';

export const qmv4Batched = defineKernel({
  name: 'qmv4-batched', entry: 'moe_qmv4_batched_f32', shader: QUANT_SHADER, group: QUANT_GROUP,
  description: `4-bit dequantizing mat-vec over N tokens (prefill of one expert): SIMD-group per ${QB.ROWS} rows × ${QB.TOK} tokens, each word dequantized once and used for every token`,
  params: [P_TOKENS, ...QPARAMS],
  buffers: [
    ...weightBuffers(4, 0, (p) => num(p, 'out_dim')),
    f32In(3, 'x', product('n_tokens', 'in_dim')),
    f32Out(4, 'y', product('n_tokens', 'out_dim')),
    ...dimBuffers(5),
    uintArg(8, 'n_tokens'),
  ],
  threadgroup: [{ index: 0, name: 'xs', bytes: () => QB.TOK * QB.XT * 4 }],
  math: `Y[t,r] = Σ_i W[r,i]·X[t,i], ${DEQ}`,
  defaults: { n_tokens: 5, out_dim: 768, in_dim: 2048, group_size: 64 },
  bench: { n_tokens: 32, out_dim: 768, in_dim: 2048, group_size: 64 },
  inputSets: QUANT_INPUT_SETS,
  cases: () => cross(BATCHED_SHAPES.map(([origin, n_tokens, out_dim, in_dim, group_size]) => [origin, { n_tokens, out_dim, in_dim, group_size }, ALL_QUANT_SETS])),
  validate: (p) => validateQuant(p, 4, num(p, 'out_dim')),
  inputs(p, set, rng: Rng): Tensors {
    const m = genQuantWeights(num(p, 'out_dim'), num(p, 'in_dim'), 4, num(p, 'group_size'), set, `w:${rng.next()}`);
    return { w: m.w, scales: m.scales, biases: m.biases, x: genX(num(p, 'n_tokens') * num(p, 'in_dim'), set, rng) };
  },
  launch(p) {
    return groups(Math.ceil(num(p, 'out_dim') / (QB.SG * QB.ROWS)), Math.ceil(num(p, 'n_tokens') / QB.TOK), QB.SG * 32, [QB.TOK * QB.XT * 4]);
  },
  reference(p, t) {
    const K = num(p, 'in_dim');
    // every token's row of x through the same matrix
    const tokens = Array.from({ length: num(p, 'n_tokens') }, (_, tok): [number, number] => [0, tok * K]);
    const { y, mag } = qmvSlotsRef(t, num(p, 'out_dim'), K, num(p, 'group_size'), tokens);
    return { outputs: { y }, rules: { y: quantRule(mag, K) } };
  },
  cost(p): Cost {
    // the weights once for all tokens; every token's x and y
    const T = num(p, 'n_tokens');
    const { weights, sb } = qmvCost(4, num(p, 'out_dim'), num(p, 'in_dim'), num(p, 'group_size'));
    return { bytes: weights + sb + 4 * T * (num(p, 'in_dim') + num(p, 'out_dim')), flops: 2 * T * num(p, 'out_dim') * num(p, 'in_dim'), weightBytes: weights };
  },
});

/** The sweep: real models' shapes (rows capped where noted) and edge cases; read when the cases are built. */
const BATCHED_SHAPES: [origin: string, tokens: number, out: number, inDim: number, gs: number][] = [
  ['qwen3-30b-a3b', 5, 768, 2048, 64], // 5 tokens: not a multiple of the 4 per threadgroup
  ['qwen3-30b-a3b', 8, 2048, 768, 128],
  ['mixtral-8x7b', 3, 128, 4096, 32], // rows capped to 128
  ['edge: 1 token, in_dim 544 > the 512-input tile', 1, 3, 544, 32],
  ['edge: 7 tokens, 5 rows, one group', 7, 5, 64, 64],
];
