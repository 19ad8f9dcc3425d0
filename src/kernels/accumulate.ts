/** moe_accumulate (moe_dispatch.metal): in-place weighted accumulation of one expert's output (stage-1 expert loop). */
import { accumulateRef, maxOf } from '../reference/ffn.js';
import { f32In, f32InOut, paramStruct } from './common/buffers.js';
import { type CaseRow, cross, inputSets, modelOf, setNames, tooLarge, unknownSet } from './common/cases.js';
import { threads } from './common/launch.js';
import { num, P_ELEMENTS, P_ROUTING_WEIGHT, param } from './common/params.js';
import { boundedRule, U } from './common/rules.js';
import { defineKernel, type KernelCase, type Tensors } from './spec.js';

const ACC_SETS = inputSets(`
  normal: accumulator ~ N(0, 1), expert output ~ N(0, 1)
  large: accumulator ~ N(0, 1e4²), expert output ~ N(0, 1e3²) with every 64th ×1e3
  integers: small integers in [−64, 64]: exact in f32 for the dyadic weights of the sweep
  zeros: accumulator 0 at even positions, expert output 0 at every third
`);

export const accumulate = defineKernel({
  name: 'accumulate', entry: 'moe_accumulate', shader: 'moe_dispatch.metal', group: 'ffn',
  description: 'In-place weighted accumulation of one expert’s output (stage-1 expert loop): accumulator += w · expert_output',
  params: [P_ELEMENTS, P_ROUTING_WEIGHT],
  buffers: [
    f32InOut(0, 'accumulator', param('n_elements')),
    f32In(1, 'expert_output', param('n_elements')),
    paramStruct(2, 'MoeAccumParams', ['n_elements', ['routing_weight', param('routing_weight'), 'float']]),
  ],
  math: 'accumulator[i] = accumulator[i] + routing_weight · expert_output[i] (routing_weight is an f32 in the params struct)',
  defaults: { n_elements: 2048, routing_weight: 0.375 },
  bench: { n_elements: 1 << 22 },
  inputSets: ACC_SETS,
  cases(): KernelCase[] {
    const all = setNames(ACC_SETS);
    const rows: CaseRow[] = [];
    for (const key of ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'mixtral-8x7b', 'deepseek-v2-lite']) {
      const h = modelOf(key).hidden;
      rows.push([key, { n_elements: h, routing_weight: 0.375 }, all]);
      rows.push([key, { n_elements: h, routing_weight: -1.75 }, ['normal', 'large']]);
    }
    rows.push(
      ['edge: 1 element', { n_elements: 1, routing_weight: 1 }, all],
      ['edge: weight 0 (accumulator unchanged)', { n_elements: 257, routing_weight: 0 }, all],
      ['edge: weight 1000, 1000 elements', { n_elements: 1000, routing_weight: 1000 }, all],
      ['edge: tiny weight 2⁻²⁰', { n_elements: 300, routing_weight: 2 ** -20 }, ['normal', 'large']],
    );
    return cross(rows);
  },
  validate(p) {
    const w = num(p, 'routing_weight');
    if (!Number.isFinite(w) || Math.abs(w) > 3.4e38) return `routing_weight = ${w} is not a finite float32`;
    return tooLarge('n_elements', num(p, 'n_elements'));
  },
  inputs(p, set, rng): Tensors {
    const n = num(p, 'n_elements');
    const acc = new Float32Array(n);
    const e = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      switch (set) {
        case 'normal':
          acc[i] = rng.normal();
          e[i] = rng.normal();
          break;
        case 'large':
          acc[i] = 1e4 * rng.normal();
          e[i] = 1e3 * rng.normal() * (i % 64 === 0 ? 1e3 : 1);
          break;
        case 'integers':
          acc[i] = rng.int(-64, 65);
          e[i] = rng.int(-64, 65);
          break;
        case 'zeros': {
          const a = rng.normal();
          const b = rng.normal();
          acc[i] = i % 2 === 0 ? 0 : a;
          e[i] = i % 3 === 0 ? 0 : b;
          break;
        }
        default:
          unknownSet(set);
      }
    }
    return { accumulator: acc, expert_output: e };
  },
  launch: (p) => threads(num(p, 'n_elements')),
  reference(p, inputs) {
    // the kernel sees the weight as an f32
    const r = accumulateRef(inputs.accumulator as Float32Array, inputs.expert_output as Float32Array, Math.fround(num(p, 'routing_weight')));
    return {
      outputs: { accumulator: new Float32Array(r.values) },
      rules: {
        // w·x rounded, then the add rounded (or one fma): ≤ u·|w·x| + u·|acc + w·x| ≤ 2u·(|acc| + |w·x|)
        accumulator: boundedRule(
          r.values,
          2 * U * maxOf(r.errScale),
          2 * U,
          0.99999,
          1e-5,
          'one f32 multiply and one add (or an fma): error ≤ 2u·(|acc| + |w·x|)',
        ),
      },
    };
  },
  cost(p) {
    const n = num(p, 'n_elements');
    // read accumulator and expert output, write accumulator; multiply + add per element
    return { bytes: 12 * n, flops: 2 * n };
  },
});
