/** moe_swiglu_seq and moe_swiglu_seq_bf16 (moe_dispatch.metal): GELU(gate)·up for every (token, slot) of a prefill batch. */
import { swigluRowsRef } from '../reference/ffn.js';
import { fromBf16Bits, toBf16Bits } from './common/bf16.js';
import { floatArray, paramStruct } from './common/buffers.js';
import { cross, tooLarge } from './common/cases.js';
import { bf16RoundingRule, gateUpRows, GELU_MATH, GELU_SETS, geluCost, geluFloatRule, swigluShapes } from './common/gelu.js';
import { threads } from './common/launch.js';
import { intermediatePreset } from './common/presets.js';
import { num, P_INTER, P_TOKENS, P_TOP_K } from './common/params.js';
import { defineKernel, type KernelSpec, type Params, type Tensors } from './spec.js';

function swigluSeqSpec(bf16: boolean): KernelSpec {
  const rows = (p: Params): number => num(p, 'n_tokens') * num(p, 'top_k');
  return defineKernel({
    name: bf16 ? 'swiglu-seq-bf16' : 'swiglu-seq', entry: bf16 ? 'moe_swiglu_seq_bf16' : 'moe_swiglu_seq', shader: 'moe_dispatch.metal', group: 'ffn',
    description: `GELU(gate)·up for every (token, slot) of a prefill batch; gate_up [n_tokens, top_k, 2I]${bf16 ? ', bfloat in and out, f32 math' : ''}`,
    params: [P_INTER, P_TOP_K, P_TOKENS],
    buffers: [
      floatArray(bf16, 'read', 0, 'gate_up_buf', (p) => rows(p) * 2 * num(p, 'intermediate')),
      floatArray(bf16, 'write', 1, 'output_buf', (p) => rows(p) * num(p, 'intermediate')),
      paramStruct(2, 'MoeSwigluSeqParams', ['intermediate', 'top_k', 'n_tokens']),
    ],
    math: `${GELU_MATH}; out[t, k, i] from gate = gate_up[(t·K + k)·2I + i], up = gate_up[(t·K + k)·2I + I + i]${
      bf16 ? '; inputs bf16 widened to f32, output rounded to bf16 (nearest even)' : ''
    }`,
    defaults: { intermediate: 768, top_k: 8, n_tokens: 4 },
    bench: { n_tokens: 512 },
    presetParams: intermediatePreset,
    inputSets: GELU_SETS,
    cases: () => cross(swigluShapes(true)),
    validate: (p) => tooLarge('n_tokens × top_k × 2 × intermediate (gate_up)', rows(p) * 2 * num(p, 'intermediate')),
    inputs(p, set, rng): Tensors {
      const gu = gateUpRows(rows(p), num(p, 'intermediate'), set, rng);
      return { gate_up_buf: bf16 ? toBf16Bits(gu) : gu };
    },
    launch: (p) => threads(num(p, 'intermediate'), num(p, 'top_k'), num(p, 'n_tokens')),
    reference(p, inputs) {
      const gu = bf16 ? fromBf16Bits(inputs.gate_up_buf as Uint16Array) : (inputs.gate_up_buf as Float32Array);
      const r = swigluRowsRef(gu, rows(p), num(p, 'intermediate'));
      return bf16
        ? { outputs: { output_buf: toBf16Bits(r.values) }, rules: { output_buf: bf16RoundingRule(r, 'GELU·up') } }
        : { outputs: { output_buf: new Float32Array(r.values) }, rules: { output_buf: geluFloatRule(r) } };
    },
    cost: (p) => geluCost(rows(p) * num(p, 'intermediate'), bf16 ? 2 : 4),
  });
}

export const swigluSeq = swigluSeqSpec(false);
export const swigluSeqBf16 = swigluSeqSpec(true);
