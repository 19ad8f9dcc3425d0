/**
 * GELU·up, the activation of the moe_dispatch "swiglu" kernels and of
 * fused_gelu_mul: its input sets and generators, its error budget, its cost,
 * and the shape tables of the kernels that compute it.
 *
 * The seeds' "swiglu" kernels compute GELU(gate)·up with GELU's tanh
 * approximation — not SiLU(gate)·up — and the references follow that.
 */
import { maxOf, type ElementwiseResult } from '../../reference/ffn.js';
import { roundBf16 } from '../../util/bf16.js';
import type { Rng } from '../../util/rng.js';
import type { ExactRule, FloatRule } from '../spec.js';
import { type CaseRow, inputSets, modelOf, SWEEP_MODELS, unknownSet } from './cases.js';
import { boundedRule, U } from './rules.js';

/**
 * Budget for the absolute error of GELU's 1 + tanh(z), in units of u: Metal's
 * fast-math tanh (the default) is not correctly rounded, and 1 + tanh(z)
 * cancels for negative z, so the error of GELU(x)·up is bounded by
 * GELU_ABS·u·½|x·up| rather than relative to the result.
 */
const GELU_ABS = 32;
/** Relative error budget of GELU·up beyond the tanh: the f32 products and the argument (units of u). */
const GELU_REL = 8;

export const GELU_MATH = 'out = GELU_tanh(gate)·up, GELU_tanh(x) = ½x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — GELU with the tanh approximation, not SiLU';

export const GELU_SETS = inputSets(`
  normal: gate ~ N(0, 1.5²), up ~ N(0, 1)
  large: gate ~ N(0, 8²) (cubic term dominant, tanh argument past ±15), up ~ N(0, 1000²)
  tail: gate ~ U(−6, −2): the negative tail, where 1 + tanh cancels and GELU → 0⁻; up ~ N(0, 1)
  saturate: |gate| log-uniform in [5, 1e4], random sign: GELU = gate or 0 (x³ up to 1e12); up ~ N(0, 1)
  zeros: gate 0 at even positions, up 0 at every third position (exact zeros), the rest N(0, 1)
`);
export const ALL_GELU = GELU_SETS.map((s) => s.name);

/** One (gate, up) pair of an input set; `i` is the position inside its row. */
function geluPair(set: string, rng: Rng, i: number): [number, number] {
  switch (set) {
    case 'normal':
      return [1.5 * rng.normal(), rng.normal()];
    case 'large':
      return [8 * rng.normal(), 1000 * rng.normal()];
    case 'tail':
      return [rng.uniform(-6, -2), rng.normal()];
    case 'saturate': {
      const mag = Math.exp(rng.uniform(Math.log(5), Math.log(1e4)));
      return [rng.next() < 0.5 ? -mag : mag, rng.normal()];
    }
    case 'zeros': {
      const g = rng.normal();
      const u = rng.normal();
      return [i % 2 === 0 ? 0 : g, i % 3 === 0 ? 0 : u];
    }
    default:
      return unknownSet(set);
  }
}

/** Separate gate and up vectors of n elements. */
export function geluVectors(n: number, set: string, rng: Rng): { gate: Float32Array; up: Float32Array } {
  const gate = new Float32Array(n);
  const up = new Float32Array(n);
  for (let i = 0; i < n; i++) [gate[i], up[i]] = geluPair(set, rng, i);
  return { gate, up };
}

/** `rows` rows of [gate (I) | up (I)]. */
export function gateUpRows(rows: number, inter: number, set: string, rng: Rng): Float32Array {
  const gu = new Float32Array(rows * 2 * inter);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inter; i++) {
      const [g, u] = geluPair(set, rng, i);
      gu[r * 2 * inter + i] = g;
      gu[r * 2 * inter + inter + i] = u;
    }
  }
  return gu;
}

export function geluFloatRule(r: ElementwiseResult): FloatRule {
  return boundedRule(
    r.values,
    GELU_ABS * U * maxOf(r.errScale),
    GELU_REL * U,
    0.99999,
    1e-3,
    'f32 GELU_tanh·up: tanh (fast math) has an absolute error, which 1 + tanh turns into ≤ 32u·½|gate·up|; the products add ≤ 8u relative',
  );
}

/**
 * bf16 outputs must be the round-to-nearest-even of the f32 result: got must
 * equal RNE(exact), or the other bf16 neighbour only where the exact value
 * lies within the f32 error bound of the rounding midpoint (so a kernel that
 * truncates, or rounds twice, fails).
 */
export function bf16RoundingRule(r: ElementwiseResult, what: string): ExactRule {
  return {
    kind: 'exact',
    reason: `bf16 store of an f32 ${what}: must be its round-to-nearest-even; the other neighbour only where the exact value is within the f32 error bound (32u·½|gate·up| + 8u·|out|) of a rounding midpoint`,
    tieOk: (i, got) => {
      const v = r.values[i] as number;
      const d = GELU_ABS * U * (r.errScale[i] as number) + GELU_REL * U * Math.abs(v);
      return got >= roundBf16(v - d) && got <= roundBf16(v + d);
    },
  };
}

export function geluCost(n: number, bytesPerElement: number): { bytes: number; flops: number } {
  // bytes: read gate and up, write out: 3 elements.
  // flops per element: x·x·x (2), ·0.044715 (1), +x (1), ·√(2/π) (1), tanh (1), 1+ (1), ½·x (2), ·up (1) = 10
  return { bytes: 3 * bytesPerElement * n, flops: 10 * n };
}

/** Intermediate widths of real experts (routed and shared) and edge sizes. */
export function elementwiseShapes(): CaseRow[] {
  const q3 = modelOf('qwen3-30b-a3b');
  const q15 = modelOf('qwen1.5-moe-a2.7b');
  const mx = modelOf('mixtral-8x7b');
  const ds = modelOf('deepseek-v2-lite');
  const gm = modelOf('gemma-4-26b-a4b');
  const rows: [origin: string, n: number, sets: string[]][] = [
    ['qwen3-30b-a3b', q3.expert_intermediate, ALL_GELU],
    ['gemma-4-26b-a4b', gm.expert_intermediate, ALL_GELU],
    ['qwen1.5-moe-a2.7b', q15.expert_intermediate, ['normal', 'large']],
    ['qwen1.5-moe-a2.7b', q15.shared_intermediate ?? q15.expert_intermediate, ['normal']],
    ['mixtral-8x7b', mx.expert_intermediate, ['normal', 'large', 'tail']],
    ['deepseek-v2-lite', ds.shared_intermediate ?? ds.expert_intermediate, ['normal', 'saturate']],
    ['edge: 1 element', 1, ALL_GELU],
    ['edge: 257 (one thread past a threadgroup)', 257, ALL_GELU],
    ['edge: 1000 (not a multiple of 256)', 1000, ALL_GELU],
  ];
  return rows.map(([origin, n, sets]) => [origin, { n_elements: n }, sets]);
}

/** (intermediate, top_k, n_tokens) of real models and edge cases. */
export function swigluShapes(withTokens: boolean): CaseRow[] {
  const rows: [string, number, number, number, string[]][] = [];
  for (const key of SWEEP_MODELS) {
    const m = modelOf(key);
    const tokens = key === 'qwen3-30b-a3b' ? 3 : 2;
    const sets = key === 'qwen3-30b-a3b' || key === 'gemma-4-26b-a4b' ? ALL_GELU : ['normal', 'large'];
    rows.push([key, m.expert_intermediate, m.top_k, tokens, sets]);
  }
  rows.push(
    ['edge: 1 slot of 1 element', 1, 1, 1, ALL_GELU],
    ['edge: intermediate 257 (one past a threadgroup), top_k 3', 257, 3, 5, ALL_GELU],
    ['edge: intermediate 33, top_k 7 (odd)', 33, 7, 9, ALL_GELU],
  );
  if (withTokens) rows.push(['edge: 1 token (qwen3 shape)', 768, 8, 1, ['normal']]);
  return rows.map(([origin, intermediate, top_k, n_tokens, sets]) =>
    withTokens
      ? [origin.startsWith('edge: ') && n_tokens > 1 ? `${origin}, ${n_tokens} tokens` : origin, { intermediate, top_k, n_tokens }, sets]
      : [origin, { intermediate, top_k }, sets],
  );
}
