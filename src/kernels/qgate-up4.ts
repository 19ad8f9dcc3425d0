/** moe_qgate_up4_f32 (moe_quant.metal): a fused 4-bit gate + up projection with the activation as a parameter. */
import { ACTIVATIONS, qgateUpRef } from '../reference/quant.js';
import type { Rng } from '../util/rng.js';
import { cross } from './common/cases.js';
import { f32In, f32Out, uintArg } from './common/buffers.js';
import { groups } from './common/launch.js';
import { num, param } from './common/params.js';
import { ALL_QUANT_SETS, DEQ, dimBuffers, genQuantWeights, genX, QG_ROWS, QPARAMS, QT, QUANT_GROUP, QUANT_INPUT_SETS, QUANT_SHADER, qmvCost, quantRule, validateQuant, weightBuffers } from './common/quant.js';
import { defineKernel, type Cost, type Tensors } from './spec.js';

export const qgateUp4 = defineKernel({
  name: 'qgate-up4', entry: 'moe_qgate_up4_f32', shader: QUANT_SHADER, group: QUANT_GROUP,
  description: `Fused 4-bit gate + up projection with the activation as a parameter: act(Wg·x)·(Wu·x), both matrices in one pass over x cached in threadgroup memory (SIMD-group per ${QG_ROWS} rows)`,
  params: [...QPARAMS, { name: 'act', flag: 'act', description: `activation: ${ACTIVATIONS.map((a, i) => `${i} = ${a}`).join(', ')}`, min: 0, max: 1 }],
  buffers: [
    ...weightBuffers(4, 0, (p) => num(p, 'out_dim'), 'gate_'),
    ...weightBuffers(4, 3, (p) => num(p, 'out_dim'), 'up_'),
    f32In(6, 'x', param('in_dim')),
    f32Out(7, 'y', param('out_dim')),
    ...dimBuffers(8),
    uintArg(11, 'act'),
  ],
  threadgroup: [{ index: 0, name: 'xs', bytes: () => QT.XT * 4 }],
  math:
    `y[r] = act(Σ_i Wg[r,i]·x[i]) · Σ_i Wu[r,i]·x[i], ${DEQ}; ` +
    'act=0: SiLU g/(1+e^−g); act=1: GELU-tanh 0.5·g·(1+tanh(√(2/π)(g+0.044715g³)))',
  defaults: { out_dim: 768, in_dim: 2048, group_size: 64, act: 0 },
  bench: { out_dim: 768, in_dim: 2048, group_size: 64, act: 0 },
  inputSets: QUANT_INPUT_SETS,
  cases: () => cross(GATE_UP_SHAPES.map(([origin, out_dim, in_dim, group_size, act]) => [origin, { out_dim, in_dim, group_size, act }, ALL_QUANT_SETS])),
  validate(p) {
    if (num(p, 'act') !== 0 && num(p, 'act') !== 1) return `act = ${num(p, 'act')}: 0 = silu, 1 = gelu-tanh`;
    return validateQuant(p, 4, 2 * num(p, 'out_dim'));
  },
  inputs(p, set, rng: Rng): Tensors {
    const [R, I, G] = [num(p, 'out_dim'), num(p, 'in_dim'), num(p, 'group_size')];
    const seed = `w:${rng.next()}`;
    const g = genQuantWeights(R, I, 4, G, set, `${seed}:gate`);
    const u = genQuantWeights(R, I, 4, G, set, `${seed}:up`);
    return {
      gate_w: g.w,
      gate_scales: g.scales,
      gate_biases: g.biases,
      up_w: u.w,
      up_scales: u.scales,
      up_biases: u.biases,
      x: genX(I, set, rng),
    };
  },
  launch(p) {
    return groups(Math.ceil(num(p, 'out_dim') / (QT.SG * QG_ROWS)), 1, QT.SG * 32, [QT.XT * 4]);
  },
  reference(p, t) {
    const r = qgateUpRef(
      { bits: 4, w: t.gate_w as Uint32Array, scales: t.gate_scales as Uint16Array, biases: t.gate_biases as Uint16Array },
      { bits: 4, w: t.up_w as Uint32Array, scales: t.up_scales as Uint16Array, biases: t.up_biases as Uint16Array },
      num(p, 'out_dim'),
      num(p, 'in_dim'),
      num(p, 'group_size'),
      t.x as Float32Array,
      num(p, 'act'),
    );
    return {
      outputs: { y: Float32Array.from(r.y) },
      rules: { y: quantRule(r.mag, num(p, 'in_dim'), `, through act (|act'| ≤ 1.13) and the product; f32 act: a few ulp (rtol)`) },
    };
  },
  cost(p): Cost {
    // two matrices' packed weights, scales and biases + x + y; 2 multiply-adds per weight pair, ~8 flops per output for act and the product
    const { weights, sb } = qmvCost(4, num(p, 'out_dim'), num(p, 'in_dim'), num(p, 'group_size'));
    return { bytes: 2 * (weights + sb) + 4 * num(p, 'in_dim') + 4 * num(p, 'out_dim'), flops: 4 * num(p, 'out_dim') * num(p, 'in_dim') + 8 * num(p, 'out_dim'), weightBytes: 2 * weights };
  },
});

/** The sweep: real models' shapes (rows capped where noted) and edge cases; read when the cases are built. */
const GATE_UP_SHAPES: [origin: string, out: number, inDim: number, gs: number, act: number][] = [
  ['qwen3-30b-a3b', 768, 2048, 64, 0],
  ['qwen3-30b-a3b', 768, 2048, 64, 1],
  ['mixtral-8x7b', 256, 4096, 128, 0], // rows capped to 256
  ['edge: in_dim 800, 13 rows', 13, 800, 32, 1],
  ['edge: in_dim 2112 > tile, 3 rows', 3, 2112, 64, 0],
];
