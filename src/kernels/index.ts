/** The registry of kernel specs, selectable by short name or entry point; one file per kernel beside it. */
import { UsageError } from '../errors.js';
import { accumulate } from './accumulate.js';
import { attnScores } from './attn-scores.js';
import { attnSoftmax } from './attn-softmax.js';
import { attnValues } from './attn-values.js';
import { bf16Matvec } from './bf16-matvec.js';
import { expertMatvec } from './expert-matvec.js';
import { gatherTopkWeights } from './gather-topk-weights.js';
import { geluMul, geluMulBf16 } from './gelu-mul.js';
import { matvec } from './matvec.js';
import { moeCombine, moeCombineScaled } from './moe-combine.js';
import { qgateUp4 } from './qgate-up4.js';
import { qmv4, qmv4Tiled, qmv8, qmv8Tiled } from './qmv.js';
import { qmv4Batched } from './qmv4-batched.js';
import { qmv4Expert, qmv4ExpertNaive } from './qmv4-expert.js';
import { residualAdd } from './residual-add.js';
import { rmsNorm, rmsNormBf16w } from './rms-norm.js';
import { rope, ropeYarn } from './rope.js';
import { sigmoidGate } from './sigmoid-gate.js';
import { softmaxTopk } from './softmax-topk.js';
import { qffnGateUpF32, qffnGateUpQ4, qffnGateUpQ8 } from './qffn-gate-up.js';
import { qffnDownAccumF32, qffnDownAccumQ4, qffnDownAccumQ8 } from './qffn-down-accum.js';
import type { KernelSpec } from './spec.js';
import { swigluBatch } from './swiglu-batch.js';
import { swigluFused } from './swiglu-fused.js';
import { swigluSeq, swigluSeqBf16 } from './swiglu-seq.js';
import { weightedReduce } from './weighted-reduce.js';
import { weightedSum } from './weighted-sum.js';
import { weightedSumSeq, weightedSumSeqBf16Input } from './weighted-sum-seq.js';
import { zeroBuffer } from './zero-buffer.js';

/** Single-token attention (moeflux's gpu_attn_fuse) and its output gate. */
export const ATTENTION_SPECS: KernelSpec[] = [attnScores, attnSoftmax, attnValues, sigmoidGate];

/** The expert-FFN kernels of the MoE dispatch (moe_dispatch.metal, moe_weighted_reduce.metal), routing gather first. */
export const FFN_SPECS: KernelSpec[] = [
  gatherTopkWeights,
  geluMul,
  geluMulBf16,
  swigluFused,
  swigluBatch,
  swigluSeq,
  swigluSeqBf16,
  accumulate,
  zeroBuffer,
  weightedSum,
  weightedSumSeq,
  weightedSumSeqBf16Input,
  matvec,
  weightedReduce,
];

/** Every quantized spec (moe_quant.metal), in the order `moe kernels` lists them. */
export const QUANT_SPECS: KernelSpec[] = [qmv4, qmv4Tiled, qmv8, qmv8Tiled, qgateUp4, qmv4Batched, qmv4Expert, qmv4ExpertNaive];

/** The fused decode expert stage (moe_qffn.metal): gate+up+activation, then down+weighted sum, each one dispatch for all top-k experts. */
export const FUSED_SPECS: KernelSpec[] = [qffnGateUpQ4, qffnGateUpQ8, qffnGateUpF32, qffnDownAccumQ4, qffnDownAccumQ8, qffnDownAccumF32];

/** What an MoE engine runs around the experts: norm, residual, RoPE, bf16 mat-vec, combine. */
export const AROUND_EXPERTS_SPECS: KernelSpec[] = [rmsNorm, rmsNormBf16w, residualAdd, rope, ropeYarn, bf16Matvec, moeCombine, moeCombineScaled];

export const SPECS: KernelSpec[] = [softmaxTopk, expertMatvec, ...ATTENTION_SPECS, ...FFN_SPECS, ...QUANT_SPECS, ...FUSED_SPECS, ...AROUND_EXPERTS_SPECS];

export function findSpec(name: string): KernelSpec {
  const s = SPECS.find((k) => k.name === name || k.entry === name);
  if (!s) {
    throw new UsageError(`unknown kernel '${name}'. Known kernels: ${SPECS.map((k) => `${k.name} (${k.entry})`).join(', ')}`);
  }
  return s;
}
