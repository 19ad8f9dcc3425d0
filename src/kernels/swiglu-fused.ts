/** moe_swiglu_fused (moe_dispatch.metal): GELU(gate)·up on one fused gate_up row. */
import { swigluRowsRef } from '../reference/ffn.js';
import { f32In, f32Out, paramStruct } from './common/buffers.js';
import { cross, modelOf, tooLarge } from './common/cases.js';
import { elementwiseShapes, gateUpRows, GELU_MATH, GELU_SETS, geluCost, geluFloatRule } from './common/gelu.js';
import { threads } from './common/launch.js';
import { num, P_ELEMENTS, param } from './common/params.js';
import { defineKernel } from './spec.js';

export const swigluFused = defineKernel({
  name: 'swiglu-fused', entry: 'moe_swiglu_fused', shader: 'moe_dispatch.metal', group: 'ffn',
  description: 'GELU(gate)·up on one fused gate_up row [gate (n) | up (n)] (experts with a fused gate/up projection)',
  params: [P_ELEMENTS],
  buffers: [f32In(0, 'gate_up', (p) => 2 * num(p, 'n_elements')), f32Out(1, 'output', param('n_elements')), paramStruct(2, 'FusedGeluMulParams', ['n_elements'])],
  math: `${GELU_MATH}; gate = gate_up[i], up = gate_up[n + i]`,
  defaults: { n_elements: modelOf('gemma-4-26b-a4b').expert_intermediate },
  bench: { n_elements: 1 << 22 },
  inputSets: GELU_SETS,
  cases: () => cross(elementwiseShapes()),
  validate: (p) => tooLarge('2 × n_elements (gate_up)', 2 * num(p, 'n_elements')),
  inputs: (p, set, rng) => ({ gate_up: gateUpRows(1, num(p, 'n_elements'), set, rng) }),
  launch: (p) => threads(num(p, 'n_elements')),
  reference(p, inputs) {
    const r = swigluRowsRef(inputs.gate_up as Float32Array, 1, num(p, 'n_elements'));
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: geluFloatRule(r) } };
  },
  cost: (p) => geluCost(num(p, 'n_elements'), 4),
});
