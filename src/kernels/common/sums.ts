/**
 * Weighted sums of expert outputs (moe_weighted_sum*, moe_weighted_reduce_f32):
 * input sets and generators of routing weights and expert outputs, the error
 * budget of a sum, and the shape table.
 */
import { maxOf, type SumResult } from '../../reference/ffn.js';
import type { Rng } from '../../util/rng.js';
import type { FloatRule } from '../spec.js';
import { type CaseRow, inputSets, modelOf, SWEEP_MODELS, unknownSet } from './cases.js';
import { boundedRule, U } from './rules.js';

export const SUM_SETS = inputSets(`
  normal: routing weights: softmax of N(0, 1) over the slots (sum 1); expert outputs ~ N(0, 1)
  large: expert outputs ~ N(0, 1e4²) with outlier columns ×100, weights signed ~ N(0, 3²)
  integers: expert outputs small integers in [−8, 8], weights multiples of 1/8: every sum is exact in f32
  zeros: every other slot has weight 0, every fifth expert output is 0
`);
export const ALL_SUM = SUM_SETS.map((s) => s.name);

/** Routing weights of one token's `k` slots for an input set. */
function slotWeights(set: string, rng: Rng, k: number): number[] {
  switch (set) {
    case 'normal':
    case 'zeros': {
      const e = Array.from({ length: k }, () => Math.exp(rng.normal()));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v, j) => (set === 'zeros' && j % 2 === 1 ? 0 : v / s));
    }
    case 'large':
      return Array.from({ length: k }, () => 3 * rng.normal());
    case 'integers':
      return Array.from({ length: k }, () => rng.int(-16, 17) / 8);
    default:
      return unknownSet(set);
  }
}

/** One expert-output value at column `col` (index `i` in the buffer). */
function expertValue(set: string, rng: Rng, i: number, col: number): number {
  switch (set) {
    case 'normal':
      return rng.normal();
    case 'large':
      return 1e4 * rng.normal() * (col % 97 === 3 ? 100 : 1);
    case 'integers':
      return rng.int(-8, 9);
    case 'zeros': {
      const v = rng.normal();
      return i % 5 === 0 ? 0 : v;
    }
    default:
      return unknownSet(set);
  }
}

/** [rows, H] expert outputs. */
function expertRows(rows: number, hidden: number, set: string, rng: Rng): Float32Array {
  const y = new Float32Array(rows * hidden);
  for (let r = 0; r < rows; r++) for (let d = 0; d < hidden; d++) y[r * hidden + d] = expertValue(set, rng, r * hidden + d, d);
  return y;
}

export function sumRule(r: SumResult, what: string): FloatRule {
  // a sum of n products in any order (fma or not): |err| ≤ (n+1)·u·Σ|terms|; one more u for the store.
  // The floors are relaxed only past a typical (random-walk) error of 4·√(n+1)·u·Σ|terms|.
  const scale = maxOf(r.absTermSum);
  return boundedRule(
    r.values,
    (r.terms + 2) * U * scale,
    2 * U,
    0.99999,
    1e-4,
    `f32 ${what} of ${r.terms} terms in any order: error ≤ (terms+2)·u·Σ|terms| (from the data)`,
    Math.min(r.terms + 2, 4 * Math.sqrt(r.terms + 1)) * U * scale,
  );
}

export function sumShapes(withTokens: boolean): CaseRow[] {
  const rows: [string, number, number, number, string[]][] = [];
  for (const key of SWEEP_MODELS) {
    const m = modelOf(key);
    const tokens = key === 'qwen3-30b-a3b' ? 4 : 2;
    rows.push([key, m.hidden, m.top_k, tokens, key === 'qwen3-30b-a3b' || key === 'mixtral-8x7b' ? ALL_SUM : ['normal', 'large']]);
  }
  rows.push(
    ['edge: 1 slot, hidden 1', 1, 1, 1, ALL_SUM],
    ['edge: hidden 257 (one past a threadgroup), top_k 3', 257, 3, 5, ALL_SUM],
    ['edge: hidden 100, top_k 7 (odd)', 100, 7, 33, ALL_SUM],
  );
  if (withTokens) rows.push(['edge: 1 token (qwen3 shape)', 2048, 8, 1, ['normal']]);
  return rows.map(([origin, hidden, top_k, n_tokens, sets]): CaseRow =>
    withTokens
      ? [origin.startsWith('edge: ') && n_tokens > 1 ? `${origin}, ${n_tokens} tokens` : origin, { hidden, top_k, n_tokens }, sets]
      : [origin, { hidden, top_k }, sets],
  );
}

/** Weights [n_tokens, top_k] and expert outputs [n_tokens·top_k, H] of one input set. */
export function sumInputs(nTokens: number, topK: number, hidden: number, set: string, rng: Rng): { y: Float32Array; w: Float32Array } {
  const w = new Float32Array(nTokens * topK);
  for (let t = 0; t < nTokens; t++) w.set(slotWeights(set, rng, topK), t * topK);
  return { y: expertRows(nTokens * topK, hidden, set, rng), w };
}
