/** The registry of kernel specs, selectable by short name or entry point. */
import { UsageError } from '../errors.js';
import { softmaxTopk } from './softmax-topk.js';
import { expertMatvec } from './expert-matvec.js';
import { attnScores, attnSoftmax, attnValues, sigmoidGate } from './attention.js';
import { FFN_SPECS } from './ffn.js';
import { QUANT_SPECS } from './quant.js';
import { qffnGateUpF32, qffnGateUpQ4, qffnGateUpQ8 } from './qffn-gate-up.js';
import { qffnDownAccumF32, qffnDownAccumQ4, qffnDownAccumQ8 } from './qffn-down-accum.js';
import type { KernelSpec } from './spec.js';

export const SPECS: KernelSpec[] = [softmaxTopk, expertMatvec, attnScores, attnSoftmax, attnValues, sigmoidGate, ...FFN_SPECS, ...QUANT_SPECS,
  qffnGateUpQ4, qffnGateUpQ8, qffnGateUpF32, qffnDownAccumQ4, qffnDownAccumQ8, qffnDownAccumF32];

export function findSpec(name: string): KernelSpec {
  const s = SPECS.find((k) => k.name === name || k.entry === name);
  if (!s) {
    throw new UsageError(`unknown kernel '${name}'. Known kernels: ${SPECS.map((k) => `${k.name} (${k.entry})`).join(', ')}`);
  }
  return s;
}
