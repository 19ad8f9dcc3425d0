/**
 * fused_gelu_mul and fused_gelu_mul_bf16 (mlx-native's moe_dispatch.metal):
 * GELU(gate)·up on separate gate and up vectors, f32 or bfloat.
 */
import { geluMulRef } from '../reference/ffn.js';
import { fromBf16Bits, toBf16Bits } from './common/bf16.js';
import { floatArray, paramStruct } from './common/buffers.js';
import { cross, modelOf, tooLarge } from './common/cases.js';
import { bf16RoundingRule, elementwiseShapes, GELU_MATH, GELU_SETS, geluCost, geluFloatRule, geluVectors } from './common/gelu.js';
import { threads } from './common/launch.js';
import { num, P_ELEMENTS, param } from './common/params.js';
import { defineKernel, type KernelSpec, type Tensors } from './spec.js';

function geluMulSpec(bf16: boolean): KernelSpec {
  const n = param('n_elements');
  return defineKernel({
    name: bf16 ? 'gelu-mul-bf16' : 'gelu-mul', entry: bf16 ? 'fused_gelu_mul_bf16' : 'fused_gelu_mul', shader: 'moe_dispatch.metal', group: 'ffn',
    description: bf16
      ? 'GELU(gate)·up on separate bfloat gate and up vectors, f32 math, bfloat output (round to nearest even)'
      : 'GELU(gate)·up on separate gate and up vectors (the activation between gate/up and down projections)',
    params: [P_ELEMENTS],
    buffers: [
      floatArray(bf16, 'read', 0, 'gate_out', n),
      floatArray(bf16, 'read', 1, 'up_out', n),
      floatArray(bf16, 'write', 2, 'output', n),
      paramStruct(3, 'FusedGeluMulParams', ['n_elements']),
    ],
    math: `${GELU_MATH}${bf16 ? '; inputs bf16 widened to f32, output rounded to bf16 (nearest even)' : ''}`,
    defaults: { n_elements: modelOf('qwen3-30b-a3b').expert_intermediate },
    bench: { n_elements: 1 << 22 },
    inputSets: GELU_SETS,
    cases: () => cross(elementwiseShapes()),
    validate: (p) => tooLarge('n_elements', num(p, 'n_elements')),
    inputs(p, set, rng): Tensors {
      const { gate, up } = geluVectors(num(p, 'n_elements'), set, rng);
      return bf16 ? { gate_out: toBf16Bits(gate), up_out: toBf16Bits(up) } : { gate_out: gate, up_out: up };
    },
    launch: (p) => threads(num(p, 'n_elements')),
    reference(_p, inputs) {
      const g = bf16 ? fromBf16Bits(inputs.gate_out as Uint16Array) : (inputs.gate_out as Float32Array);
      const u = bf16 ? fromBf16Bits(inputs.up_out as Uint16Array) : (inputs.up_out as Float32Array);
      const r = geluMulRef(g, u);
      return bf16
        ? { outputs: { output: toBf16Bits(r.values) }, rules: { output: bf16RoundingRule(r, 'GELU·up') } }
        : { outputs: { output: new Float32Array(r.values) }, rules: { output: geluFloatRule(r) } };
    },
    cost: (p) => geluCost(num(p, 'n_elements'), bf16 ? 2 : 4),
  });
}

export const geluMul = geluMulSpec(false);
export const geluMulBf16 = geluMulSpec(true);
