/**
 * moe_weighted_reduce_f32 (mlx-native's moe_weighted_reduce.metal): the fused
 * end of a MoE layer, routed experts + gated shared expert + residual; a
 * dispatchThreadgroups of (ceil(h / 256), n_tokens) threadgroups of 256.
 */
import { weightedReduceRef } from '../reference/ffn.js';
import { f32In, f32Out, paramStruct } from './common/buffers.js';
import { type CaseRow, cross, inputSets, modelOf, setNames, tooLarge } from './common/cases.js';
import { groups, TG } from './common/launch.js';
import { num, P_ADD_RESIDUAL, P_HIDDEN, P_TOKENS, P_TOP_K, param, product } from './common/params.js';
import { hiddenPreset } from './common/presets.js';
import { sumInputs, sumRule } from './common/sums.js';
import { defineKernel, type KernelCase, type Params, type Tensors } from './spec.js';

const REDUCE_SETS = inputSets(`
  normal: routing weights softmax over the slots, expert and shared outputs ~ N(0, 1), shared gate = sigmoid(N(0, 1)), residual ~ N(0, 1)
  large: expert outputs ~ N(0, 1e4²) with outlier columns ×100, residual ~ N(0, 1e6²), signed weights ~ N(0, 3²)
  integers: outputs and residual small integers, weights and gates multiples of 1/8: exact in f32
  zeros: odd slots weight 0, every fifth expert output 0, shared gate 0 on even tokens
`);

export const weightedReduce = defineKernel({
  name: 'weighted-reduce', entry: 'moe_weighted_reduce_f32', shader: 'moe_weighted_reduce.metal', group: 'ffn',
  description:
    'Fused end of a MoE layer: weighted sum of the routed experts’ outputs + gated shared expert (+ residual when add_residual); with add_residual = 0 the residual buffer is filled with NaN and must not be used',
  params: [P_TOKENS, P_TOP_K, P_HIDDEN, P_ADD_RESIDUAL],
  buffers: [
    paramStruct(0, 'MoeWeightedReduceParams', ['n_tokens', 'top_k', ['h', param('hidden')], 'add_residual']),
    f32In(1, 'expert_w', product('n_tokens', 'top_k')),
    f32In(2, 'y_expert', product('n_tokens', 'top_k', 'hidden')),
    f32In(3, 'sh_gate', param('n_tokens')),
    f32In(4, 'y_shared', product('n_tokens', 'hidden')),
    f32In(5, 'residual', product('n_tokens', 'hidden')),
    f32Out(6, 'output', product('n_tokens', 'hidden')),
  ],
  math: 'output[t, h] = Σ_k expert_w[t·K + k]·y_expert[t·K + k, h] + sh_gate[t]·y_shared[t, h] (+ residual[t, h] when add_residual ≠ 0)',
  defaults: { n_tokens: 4, top_k: 8, hidden: 2048, add_residual: 1 },
  bench: { n_tokens: 512 },
  presetParams: hiddenPreset,
  inputSets: REDUCE_SETS,
  cases(): KernelCase[] {
    const all = setNames(REDUCE_SETS);
    const rows: CaseRow[] = [];
    const shape = (key: string, tokens: number, res: number): Params => {
      const m = modelOf(key);
      return { n_tokens: tokens, top_k: m.top_k, hidden: m.hidden, add_residual: res };
    };
    rows.push(
      ['qwen3-30b-a3b', shape('qwen3-30b-a3b', 3, 1), all],
      ['qwen3-30b-a3b', shape('qwen3-30b-a3b', 1, 0), all],
      ['qwen1.5-moe-a2.7b', shape('qwen1.5-moe-a2.7b', 2, 1), ['normal', 'large']],
      ['qwen1.5-moe-a2.7b', shape('qwen1.5-moe-a2.7b', 2, 0), ['normal']],
      ['deepseek-v2-lite', shape('deepseek-v2-lite', 2, 1), ['normal', 'zeros']],
      ['mixtral-8x7b', shape('mixtral-8x7b', 2, 0), ['normal', 'large']],
      ['gemma-4-26b-a4b', shape('gemma-4-26b-a4b', 2, 1), ['normal']],
      ['edge: 1 token, 1 slot, hidden 1', { n_tokens: 1, top_k: 1, hidden: 1, add_residual: 1 }, all],
      ['edge: hidden 257 (one past a threadgroup), no residual', { n_tokens: 5, top_k: 3, hidden: 257, add_residual: 0 }, all],
      ['edge: hidden 300, top_k 7', { n_tokens: 4, top_k: 7, hidden: 300, add_residual: 1 }, all],
      ['edge: 33 tokens, hidden 100', { n_tokens: 33, top_k: 2, hidden: 100, add_residual: 1 }, all],
      ['edge: 33 tokens, hidden 100, no residual', { n_tokens: 33, top_k: 2, hidden: 100, add_residual: 0 }, ['normal']],
    );
    return cross(rows);
  },
  validate(p) {
    const r = num(p, 'add_residual');
    if (r !== 0 && r !== 1) return `add_residual = ${r} must be 0 or 1`;
    return tooLarge('n_tokens × top_k × hidden (y_expert)', num(p, 'n_tokens') * num(p, 'top_k') * num(p, 'hidden'));
  },
  inputs(p, set, rng): Tensors {
    const t = num(p, 'n_tokens');
    const k = num(p, 'top_k');
    const h = num(p, 'hidden');
    const { y, w } = sumInputs(t, k, h, set, rng);
    const g = new Float32Array(t);
    const ys = new Float32Array(t * h);
    const res = new Float32Array(t * h);
    for (let i = 0; i < t; i++) {
      switch (set) {
        case 'integers':
          g[i] = rng.int(0, 9) / 8;
          break;
        case 'zeros': {
          const v = 1 / (1 + Math.exp(-rng.normal()));
          g[i] = i % 2 === 0 ? 0 : v;
          break;
        }
        default:
          g[i] = 1 / (1 + Math.exp(-rng.normal()));
      }
    }
    for (let i = 0; i < t * h; i++) {
      ys[i] = set === 'integers' ? rng.int(-8, 9) : set === 'large' ? 1e4 * rng.normal() : rng.normal();
      res[i] = set === 'integers' ? rng.int(-100, 101) : set === 'large' ? 1e6 * rng.normal() : rng.normal();
    }
    // With add_residual = 0 the host passes a dummy buffer: poison it, a kernel must not use it.
    if (num(p, 'add_residual') === 0) res.fill(NaN);
    return { expert_w: w, y_expert: y, sh_gate: g, y_shared: ys, residual: res };
  },
  launch(p) {
    return groups(Math.ceil(num(p, 'hidden') / TG), num(p, 'n_tokens'));
  },
  reference(p, inputs) {
    const r = weightedReduceRef(
      inputs.expert_w as Float32Array,
      inputs.y_expert as Float32Array,
      inputs.sh_gate as Float32Array,
      inputs.y_shared as Float32Array,
      num(p, 'add_residual') !== 0 ? (inputs.residual as Float32Array) : null,
      num(p, 'n_tokens'),
      num(p, 'top_k'),
      num(p, 'hidden'),
    );
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'weighted reduce') } };
  },
  cost(p) {
    const t = num(p, 'n_tokens');
    const k = num(p, 'top_k');
    const h = num(p, 'hidden');
    const r = num(p, 'add_residual') !== 0 ? 1 : 0;
    // read: T·K weights, T·K·H expert outputs, T gates, T·H shared, T·H residual (when added); write T·H
    const bytes = 4 * (t * k + t * k * h + t + t * h + r * t * h + t * h);
    // per output: K multiply-adds, the gate multiply-add, the residual add
    const flops = t * h * (2 * k + 2 + r);
    return { bytes, flops };
  },
});
