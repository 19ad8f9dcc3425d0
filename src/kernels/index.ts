/** The registry of kernel specs, selectable by short name or entry point; one file per kernel beside it. */
import { UsageError } from '../errors.js';
import { accumulate } from './accumulate.js';
import { attnScores } from './attn-scores.js';
import { attnSoftmax } from './attn-softmax.js';
import { attnValues } from './attn-values.js';
import { AROUND_EXPERTS_SPECS } from './around-experts.js';
import { expertMatvec } from './expert-matvec.js';
import { gatherTopkWeights } from './gather-topk-weights.js';
import { geluMul, geluMulBf16 } from './gelu-mul.js';
import { matvec } from './matvec.js';
import { qgateUp4 } from './qgate-up4.js';
import { qmv4, qmv4Tiled, qmv8, qmv8Tiled } from './qmv.js';
import { qmv4Batched } from './qmv4-batched.js';
import { qmv4Expert, qmv4ExpertNaive } from './qmv4-expert.js';
import { sigmoidGate } from './sigmoid-gate.js';
import { softmaxTopk } from './softmax-topk.js';
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

export const SPECS: KernelSpec[] = [softmaxTopk, expertMatvec, ...ATTENTION_SPECS, ...FFN_SPECS, ...QUANT_SPECS, ...AROUND_EXPERTS_SPECS];

/** The spec named `name` (short name, else entry point) in `list` (default: the catalog). */
export function findSpec(name: string, list: KernelSpec[] = SPECS): KernelSpec {
  const byName = list.find((k) => k.name === name);
  if (byName) return byName;
  const byEntry = list.filter((k) => k.entry === name);
  if (byEntry.length > 1) throw new UsageError(`kernel '${name}' is the entry point of ${byEntry.map((k) => k.name).join(' and ')}: select one by its short name`);
  if (byEntry[0]) return byEntry[0];
  throw new UsageError(`unknown kernel '${name}'. Known kernels: ${list.map((k) => `${k.name} (${k.entry})`).join(', ')}`);
}
