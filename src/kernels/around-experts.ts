/** The kernels an MoE engine runs around the experts: norm, RoPE, residual, bf16 mat-vec, combine. */
import { bf16Matvec } from './bf16-matvec.js';
import { moeCombine, moeCombineScaled } from './moe-combine.js';
import { residualAdd } from './residual-add.js';
import { rmsNorm, rmsNormBf16w } from './rms-norm.js';
import { rope, ropeYarn } from './rope.js';
import type { KernelSpec } from './spec.js';

export const AROUND_EXPERTS_SPECS: KernelSpec[] = [rmsNorm, rmsNormBf16w, residualAdd, rope, ropeYarn, bf16Matvec, moeCombine, moeCombineScaled];
