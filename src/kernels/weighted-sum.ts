/** moe_weighted_sum (moe_dispatch.metal): weighted sum of one token's top_k expert outputs in one dispatch. */
import { weightedSumRef } from '../reference/ffn.js';
import { f32In, f32Out, paramStruct } from './common/buffers.js';
import { cross, tooLarge } from './common/cases.js';
import { threads } from './common/launch.js';
import { hiddenPreset } from './common/presets.js';
import { num, P_HIDDEN, P_TOP_K, param, product } from './common/params.js';
import { SUM_SETS, sumInputs, sumRule, sumShapes } from './common/sums.js';
import { defineKernel, type Tensors } from './spec.js';

export const weightedSum = defineKernel({
  name: 'weighted-sum', entry: 'moe_weighted_sum', shader: 'moe_dispatch.metal', group: 'ffn',
  description: 'Weighted sum of one token’s top_k expert outputs in one dispatch (replaces zero_buffer + top_k × moe_accumulate)',
  params: [P_HIDDEN, P_TOP_K],
  buffers: [
    f32In(0, 'expert_outputs', product('top_k', 'hidden')),
    f32In(1, 'weights', param('top_k')),
    f32Out(2, 'output', param('hidden')),
    paramStruct(3, 'MoeWeightedSumParams', [['hidden_size', param('hidden')], 'top_k']),
  ],
  math: 'out[d] = Σ_k expert_outputs[k·H + d] · weights[k]',
  defaults: { hidden: 2048, top_k: 8 },
  bench: { hidden: 4096, top_k: 8 },
  presetParams: hiddenPreset,
  inputSets: SUM_SETS,
  cases: () => cross(sumShapes(false)),
  validate: (p) => tooLarge('top_k × hidden (expert_outputs)', num(p, 'top_k') * num(p, 'hidden')),
  inputs(p, set, rng): Tensors {
    const { y, w } = sumInputs(1, num(p, 'top_k'), num(p, 'hidden'), set, rng);
    return { expert_outputs: y, weights: w };
  },
  launch: (p) => threads(num(p, 'hidden')),
  reference(p, inputs) {
    const r = weightedSumRef(inputs.expert_outputs as Float32Array, inputs.weights as Float32Array, 1, num(p, 'top_k'), num(p, 'hidden'));
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'weighted sum') } };
  },
  cost(p) {
    const h = num(p, 'hidden');
    const k = num(p, 'top_k');
    // read K·H outputs and K weights, write H; one multiply-add per (k, d)
    return { bytes: 4 * (k * h + k + h), flops: 2 * k * h };
  },
});
