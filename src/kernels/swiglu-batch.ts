/** moe_swiglu_batch (moe_dispatch.metal): GELU(gate)·up for all top_k slots of one token in one dispatch. */
import { swigluRowsRef } from '../reference/ffn.js';
import { f32In, f32Out, uintArg } from './common/buffers.js';
import { cross, tooLarge } from './common/cases.js';
import { gateUpRows, GELU_MATH, GELU_SETS, geluCost, geluFloatRule, swigluShapes } from './common/gelu.js';
import { threads } from './common/launch.js';
import { intermediatePreset } from './common/presets.js';
import { num, P_INTER, P_TOP_K } from './common/params.js';
import { defineKernel } from './spec.js';

export const swigluBatch = defineKernel({
  name: 'swiglu-batch', entry: 'moe_swiglu_batch', shader: 'moe_dispatch.metal', group: 'ffn',
  description: 'GELU(gate)·up for all top_k slots of one token in one dispatch; gate_up rows [gate (I) | up (I)]',
  params: [P_INTER, P_TOP_K],
  buffers: [
    f32In(0, 'gate_up_buf', (p) => num(p, 'top_k') * 2 * num(p, 'intermediate')),
    f32Out(1, 'output_buf', (p) => num(p, 'top_k') * num(p, 'intermediate')),
    uintArg(2, 'intermediate'),
    uintArg(3, 'top_k'),
  ],
  math: `${GELU_MATH}; out[k, i] from gate = gate_up[k·2I + i], up = gate_up[k·2I + I + i]`,
  defaults: { intermediate: 768, top_k: 8 },
  bench: { intermediate: 14336, top_k: 8 },
  presetParams: intermediatePreset,
  inputSets: GELU_SETS,
  cases: () => cross(swigluShapes(false)),
  validate: (p) => tooLarge('top_k × 2 × intermediate (gate_up)', num(p, 'top_k') * 2 * num(p, 'intermediate')),
  inputs: (p, set, rng) => ({ gate_up_buf: gateUpRows(num(p, 'top_k'), num(p, 'intermediate'), set, rng) }),
  launch: (p) => threads(num(p, 'intermediate'), num(p, 'top_k')),
  reference(p, inputs) {
    const r = swigluRowsRef(inputs.gate_up_buf as Float32Array, num(p, 'top_k'), num(p, 'intermediate'));
    return { outputs: { output_buf: new Float32Array(r.values) }, rules: { output_buf: geluFloatRule(r) } };
  },
  cost: (p) => geluCost(num(p, 'top_k') * num(p, 'intermediate'), 4),
});
