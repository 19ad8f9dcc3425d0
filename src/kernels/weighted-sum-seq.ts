/**
 * moe_weighted_sum_seq and moe_weighted_sum_seq_bf16_input (moe_dispatch.metal):
 * per-token weighted sums of top_k expert outputs for a prefill batch.
 */
import { weightedSumRef } from '../reference/ffn.js';
import { fromBf16Bits, toBf16Bits } from './common/bf16.js';
import { f32In, f32Out, floatArray, paramStruct } from './common/buffers.js';
import { cross, tooLarge } from './common/cases.js';
import { threads } from './common/launch.js';
import { hiddenPreset } from './common/presets.js';
import { num, P_HIDDEN, P_TOKENS, P_TOP_K, param, product } from './common/params.js';
import { SUM_SETS, sumInputs, sumRule, sumShapes } from './common/sums.js';
import { defineKernel, type KernelSpec, type Params, type Tensors } from './spec.js';

function weightedSumSeqSpec(bf16Input: boolean): KernelSpec {
  const slots = (p: Params): number => num(p, 'n_tokens') * num(p, 'top_k');
  return defineKernel({
    name: bf16Input ? 'weighted-sum-seq-bf16-input' : 'weighted-sum-seq', entry: bf16Input ? 'moe_weighted_sum_seq_bf16_input' : 'moe_weighted_sum_seq', shader: 'moe_dispatch.metal', group: 'ffn',
    description: bf16Input
      ? 'Per-token weighted sum of top_k expert outputs for a prefill batch: bfloat expert outputs, f32 weights, f32 accumulator and output'
      : 'Per-token weighted sum of top_k expert outputs for a prefill batch',
    params: [P_HIDDEN, P_TOP_K, P_TOKENS],
    buffers: [
      floatArray(bf16Input, 'read', 0, 'expert_outputs', (p) => slots(p) * num(p, 'hidden')),
      f32In(1, 'weights', slots),
      f32Out(2, 'output', product('n_tokens', 'hidden')),
      paramStruct(3, 'MoeWeightedSumSeqParams', [['hidden_size', param('hidden')], 'top_k', 'n_tokens']),
    ],
    math: `out[t, d] = Σ_k expert_outputs[(t·K + k)·H + d] · weights[t·K + k]${bf16Input ? ' (expert_outputs bf16 widened to f32; f32 accumulation)' : ''}`,
    defaults: { hidden: 2048, top_k: 8, n_tokens: 4 },
    bench: { n_tokens: 512 },
    presetParams: hiddenPreset,
    inputSets: SUM_SETS,
    cases: () => cross(sumShapes(true)),
    validate: (p) => tooLarge('n_tokens × top_k × hidden (expert_outputs)', slots(p) * num(p, 'hidden')),
    inputs(p, set, rng): Tensors {
      const { y, w } = sumInputs(num(p, 'n_tokens'), num(p, 'top_k'), num(p, 'hidden'), set, rng);
      return { expert_outputs: bf16Input ? toBf16Bits(y) : y, weights: w };
    },
    launch: (p) => threads(num(p, 'hidden'), num(p, 'n_tokens')),
    reference(p, inputs) {
      const y = bf16Input ? fromBf16Bits(inputs.expert_outputs as Uint16Array) : (inputs.expert_outputs as Float32Array);
      const r = weightedSumRef(y, inputs.weights as Float32Array, num(p, 'n_tokens'), num(p, 'top_k'), num(p, 'hidden'));
      // bf16 inputs are exact values once widened: the f32 sum is judged as tightly as the f32 kernel's.
      return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'weighted sum') } };
    },
    cost(p) {
      const h = num(p, 'hidden');
      const t = num(p, 'n_tokens');
      const k = num(p, 'top_k');
      // read T·K·H expert outputs (2 or 4 bytes) and T·K f32 weights, write T·H f32; 2 flops per (t, k, d)
      return { bytes: (bf16Input ? 2 : 4) * t * k * h + 4 * (t * k + t * h), flops: 2 * t * k * h };
    },
  });
}

export const weightedSumSeq = weightedSumSeqSpec(false);
export const weightedSumSeqBf16Input = weightedSumSeqSpec(true);
