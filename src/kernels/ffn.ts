/**
 * The expert-FFN kernels of the MoE dispatch (mlx-native's moe_dispatch.metal
 * and moe_weighted_reduce.metal): GELU·up products on split, fused and
 * batched gate/up buffers (f32 and bf16), weighted sums of expert outputs,
 * the per-expert accumulate and zeroing, the naive mat-vec of the stage-1
 * expert loop, the top-k routing-weight gather, and the fused weighted reduce
 * (routed experts + gated shared expert + residual).
 *
 * Interfaces follow the seeds' host code exactly (buffer indices, parameter
 * structs in field order, `constant uint&` scalars for moe_swiglu_batch).
 * Launches: every moe_dispatch kernel is a dispatchThreads of
 * min(256, grid.x)-wide threadgroups (mlx-native's encode_with_args), except
 * moe_gather_topk_weights (a single thread); moe_weighted_reduce_f32 is a
 * dispatchThreadgroups of (ceil(h / 256), n_tokens) threadgroups of 256.
 *
 * Activation: the seeds' "swiglu" kernels (and fused_gelu_mul) compute
 * GELU(gate)·up with GELU's tanh approximation — not SiLU(gate)·up — and the
 * references follow that.
 */
import {
  accumulateRef,
  gatherTopkRef,
  geluMulRef,
  matvecRef,
  maxOf,
  swigluRowsRef,
  weightedReduceRef,
  weightedSumRef,
  type ElementwiseResult,
  type SumResult,
} from '../reference/ffn.js';
import { bf16BitsToF32, f32ToBf16Bits, roundBf16 } from '../util/bf16.js';
import type { NativeLaunch } from '../backend/addon-types.js';
import { model } from './models.js';
import type { ExactRule, FloatRule, InputSet, KernelCase, KernelSpec, ParamDef, Params, Tensors } from './spec.js';
import type { Rng } from '../util/rng.js';

/** float32 unit roundoff. */
const U = 2 ** -24;
/** Threadgroup width of every moe_dispatch launch (capped by grid.x) and of moe_weighted_reduce_f32. */
const TG = 256;
/** Largest element count of one buffer we accept (1 GiB of floats): 32-bit indices in the kernels stay exact. */
const MAX_ELEMS = 2 ** 28;
/** moe_gather_topk_weights keeps the selected probabilities in a float[8]. */
const GATHER_MAX_TOP_K = 8;
/**
 * Budget for the absolute error of GELU's 1 + tanh(z), in units of u: Metal's
 * fast-math tanh (the default) is not correctly rounded, and 1 + tanh(z)
 * cancels for negative z, so the error of GELU(x)·up is bounded by
 * GELU_ABS·u·½|x·up| rather than relative to the result.
 */
const GELU_ABS = 32;
/** Relative error budget of GELU·up beyond the tanh: the f32 products and the argument (units of u). */
const GELU_REL = 8;

const num = (p: Params, k: string): number => p[k] as number;

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

const P_ELEMENTS: ParamDef = { name: 'n_elements', flag: 'elements', description: 'elements (floats) processed', min: 1 };
const P_TOKENS: ParamDef = { name: 'n_tokens', flag: 'tokens', description: 'tokens', min: 1 };
const P_TOP_K: ParamDef = { name: 'top_k', flag: 'top-k', description: 'expert slots per token (top-k)', min: 1 };
const P_HIDDEN: ParamDef = { name: 'hidden', flag: 'hidden', description: 'hidden size (model dimension)', min: 1 };
const P_INTER: ParamDef = { name: 'intermediate', flag: 'intermediate', description: 'expert intermediate size (gate/up width)', min: 1 };
const P_EXPERTS: ParamDef = { name: 'n_experts', flag: 'experts', description: 'experts', min: 1 };

function modelOf(key: string): NonNullable<ReturnType<typeof model>> {
  const m = model(key);
  if (!m) throw new Error(`fixtures/models.json has no model '${key}'`);
  return m;
}

/** dispatchThreads of `grid` threads in threadgroups of min(256, grid.x) (mlx-native's encode_with_args). */
function threads(x: number, y = 1, z = 1): NativeLaunch {
  return { mode: 'threads', grid: [x, y, z], threadgroup: [Math.min(TG, x), 1, 1], threadgroupMemory: [] };
}

function cross(rows: [origin: string, params: Params, sets: string[]][]): KernelCase[] {
  const out: KernelCase[] = [];
  for (const [origin, params, sets] of rows) for (const inputSet of sets) out.push({ params, inputSet, origin });
  return out;
}

function tooLarge(what: string, n: number): string | null {
  return n > MAX_ELEMS ? `${what} = ${n} elements is too large (at most ${MAX_ELEMS})` : null;
}

function unknownSet(s: string): never {
  throw new Error(`unknown input set '${s}'`);
}

/**
 * A float rule whose whole-tensor floors (cosine, rel_max_abs) are never
 * stricter than its element-wise bound allows. Where the exact values sit in
 * the f32 noise (GELU's far negative tail, where 1 + tanh cancels; sums that
 * cancel), the element-wise bound |err_i| ≤ atol + rtol·|v_i| is the
 * guarantee, and a correct kernel may miss the default floors: then the
 * floors are relaxed to what that bound implies — rel_max_abs ≤
 * (atol + rtol·max|v|)/max|v|, cosine ≥ √(1 − ‖bound‖²/‖v‖²) — and stay at
 * the given defaults otherwise. `floorAtol` replaces atol there where the
 * element-wise bound is a worst case far above the typical error (long sums:
 * n·u worst case, √n·u typical), so the floors stay meaningful.
 */
function boundedRule(
  values: ArrayLike<number>,
  atol: number,
  rtol: number,
  minCosine: number,
  maxRelMaxAbs: number,
  reason: string,
  floorAtol = atol,
): FloatRule {
  let maxRef = 0;
  let v2 = 0;
  let e2 = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i] as number);
    if (v > maxRef) maxRef = v;
    v2 += v * v;
    const e = floorAtol + rtol * v;
    e2 += e * e;
  }
  const relAllowed = maxRef > 0 ? (floorAtol + rtol * maxRef) / maxRef : Infinity;
  const cosAllowed = e2 < v2 ? Math.sqrt(1 - e2 / v2) : -1;
  return {
    kind: 'float',
    atol,
    rtol,
    minCosine: Math.min(minCosine, cosAllowed),
    maxRelMaxAbs: Math.max(maxRelMaxAbs, relAllowed),
    reason,
  };
}

function toBf16Bits(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToBf16Bits(a[i] as number);
  return out;
}

function fromBf16Bits(a: Uint16Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = bf16BitsToF32(a[i] as number);
  return out;
}

// --- GELU·up -----------------------------------------------------------------

const GELU_MATH = 'out = GELU_tanh(gate)·up, GELU_tanh(x) = ½x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — GELU with the tanh approximation, not SiLU';

const GELU_SETS: InputSet[] = [
  { name: 'normal', description: 'gate ~ N(0, 1.5²), up ~ N(0, 1)' },
  { name: 'large', description: 'gate ~ N(0, 8²) (cubic term dominant, tanh argument past ±15), up ~ N(0, 1000²)' },
  { name: 'tail', description: 'gate ~ U(−6, −2): the negative tail, where 1 + tanh cancels and GELU → 0⁻; up ~ N(0, 1)' },
  { name: 'saturate', description: '|gate| log-uniform in [5, 1e4], random sign: GELU = gate or 0 (x³ up to 1e12); up ~ N(0, 1)' },
  { name: 'zeros', description: 'gate 0 at even positions, up 0 at every third position (exact zeros), the rest N(0, 1)' },
];
const ALL_GELU = GELU_SETS.map((s) => s.name);

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
function geluVectors(n: number, set: string, rng: Rng): { gate: Float32Array; up: Float32Array } {
  const gate = new Float32Array(n);
  const up = new Float32Array(n);
  for (let i = 0; i < n; i++) [gate[i], up[i]] = geluPair(set, rng, i);
  return { gate, up };
}

/** `rows` rows of [gate (I) | up (I)]. */
function gateUpRows(rows: number, inter: number, set: string, rng: Rng): Float32Array {
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

function geluFloatRule(r: ElementwiseResult): FloatRule {
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

function geluCost(n: number, bytesPerElement: number): { bytes: number; flops: number } {
  // bytes: read gate and up, write out: 3 elements.
  // flops per element: x·x·x (2), ·0.044715 (1), +x (1), ·√(2/π) (1), tanh (1), 1+ (1), ½·x (2), ·up (1) = 10
  return { bytes: 3 * bytesPerElement * n, flops: 10 * n };
}

// --- Weighted sums ----------------------------------------------------------

const SUM_SETS: InputSet[] = [
  { name: 'normal', description: 'routing weights: softmax of N(0, 1) over the slots (sum 1); expert outputs ~ N(0, 1)' },
  { name: 'large', description: 'expert outputs ~ N(0, 1e4²) with outlier columns ×100, weights signed ~ N(0, 3²)' },
  { name: 'integers', description: 'expert outputs small integers in [−8, 8], weights multiples of 1/8: every sum is exact in f32' },
  { name: 'zeros', description: 'every other slot has weight 0, every fifth expert output is 0' },
];
const ALL_SUM = SUM_SETS.map((s) => s.name);

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

function sumRule(r: SumResult, what: string): FloatRule {
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

// ---------------------------------------------------------------------------
// fused_gelu_mul, fused_gelu_mul_bf16
// ---------------------------------------------------------------------------

/** Intermediate widths of real experts (routed and shared) and edge sizes. */
function elementwiseShapes(): [origin: string, n: number, sets: string[]][] {
  const q3 = modelOf('qwen3-30b-a3b');
  const q15 = modelOf('qwen1.5-moe-a2.7b');
  const mx = modelOf('mixtral-8x7b');
  const ds = modelOf('deepseek-v2-lite');
  const gm = modelOf('gemma-4-26b-a4b');
  return [
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
}

function geluMulSpec(bf16: boolean): KernelSpec {
  const dtype = bf16 ? 'bf16' : 'f32';
  const mslType = bf16 ? 'bfloat' : 'float';
  return {
    name: bf16 ? 'gelu-mul-bf16' : 'gelu-mul',
    entry: bf16 ? 'fused_gelu_mul_bf16' : 'fused_gelu_mul',
    shader: 'moe_dispatch.metal',
    group: 'ffn',
    description: bf16
      ? 'GELU(gate)·up on separate bfloat gate and up vectors, f32 math, bfloat output (round to nearest even)'
      : 'GELU(gate)·up on separate gate and up vectors (the activation between gate/up and down projections)',
    math: `${GELU_MATH}${bf16 ? '; inputs bf16 widened to f32, output rounded to bf16 (nearest even)' : ''}`,
    params: [P_ELEMENTS],
    defaults: { n_elements: modelOf('qwen3-30b-a3b').expert_intermediate },
    bench: { n_elements: 1 << 22 },
    inputSets: GELU_SETS,
    buffers: [
      { index: 0, name: 'gate_out', kind: 'array', mslType, dtype, access: 'read', length: (p) => num(p, 'n_elements') },
      { index: 1, name: 'up_out', kind: 'array', mslType, dtype, access: 'read', length: (p) => num(p, 'n_elements') },
      { index: 2, name: 'output', kind: 'array', mslType, dtype, access: 'write', length: (p) => num(p, 'n_elements') },
      {
        index: 3,
        name: 'params',
        kind: 'struct',
        mslType: 'FusedGeluMulParams',
        fields: [{ name: 'n_elements', type: 'uint', value: (p) => num(p, 'n_elements') }],
      },
    ],
    threadgroup: [],
    cases: () => cross(elementwiseShapes().map(([o, n, s]) => [o, { n_elements: n }, s])),
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
  };
}

export const geluMul = geluMulSpec(false);
export const geluMulBf16 = geluMulSpec(true);

// ---------------------------------------------------------------------------
// moe_swiglu_fused
// ---------------------------------------------------------------------------

export const swigluFused: KernelSpec = {
  name: 'swiglu-fused',
  entry: 'moe_swiglu_fused',
  shader: 'moe_dispatch.metal',
  group: 'ffn',
  description: 'GELU(gate)·up on one fused gate_up row [gate (n) | up (n)] (experts with a fused gate/up projection)',
  math: `${GELU_MATH}; gate = gate_up[i], up = gate_up[n + i]`,
  params: [P_ELEMENTS],
  defaults: { n_elements: modelOf('gemma-4-26b-a4b').expert_intermediate },
  bench: { n_elements: 1 << 22 },
  inputSets: GELU_SETS,
  buffers: [
    { index: 0, name: 'gate_up', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => 2 * num(p, 'n_elements') },
    { index: 1, name: 'output', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'n_elements') },
    {
      index: 2,
      name: 'params',
      kind: 'struct',
      mslType: 'FusedGeluMulParams',
      fields: [{ name: 'n_elements', type: 'uint', value: (p) => num(p, 'n_elements') }],
    },
  ],
  threadgroup: [],
  cases: () => cross(elementwiseShapes().map(([o, n, s]) => [o, { n_elements: n }, s])),
  validate: (p) => tooLarge('2 × n_elements (gate_up)', 2 * num(p, 'n_elements')),
  inputs: (p, set, rng) => ({ gate_up: gateUpRows(1, num(p, 'n_elements'), set, rng) }),
  launch: (p) => threads(num(p, 'n_elements')),
  reference(p, inputs) {
    const r = swigluRowsRef(inputs.gate_up as Float32Array, 1, num(p, 'n_elements'));
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: geluFloatRule(r) } };
  },
  cost: (p) => geluCost(num(p, 'n_elements'), 4),
};

// ---------------------------------------------------------------------------
// moe_swiglu_batch, moe_swiglu_seq, moe_swiglu_seq_bf16
// ---------------------------------------------------------------------------

/** (intermediate, top_k, n_tokens) of real models and edge cases. */
function swigluShapes(withTokens: boolean): [origin: string, params: Params, sets: string[]][] {
  const rows: [string, number, number, number, string[]][] = [];
  for (const key of ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'qwen1.5-moe-a2.7b', 'mixtral-8x7b', 'deepseek-v2-lite']) {
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

export const swigluBatch: KernelSpec = {
  name: 'swiglu-batch',
  entry: 'moe_swiglu_batch',
  shader: 'moe_dispatch.metal',
  group: 'ffn',
  description: 'GELU(gate)·up for all top_k slots of one token in one dispatch; gate_up rows [gate (I) | up (I)]',
  math: `${GELU_MATH}; out[k, i] from gate = gate_up[k·2I + i], up = gate_up[k·2I + I + i]`,
  params: [P_INTER, P_TOP_K],
  defaults: { intermediate: 768, top_k: 8 },
  bench: { intermediate: 14336, top_k: 8 },
  hasTopK: true,
  inputSets: GELU_SETS,
  buffers: [
    {
      index: 0,
      name: 'gate_up_buf',
      kind: 'array',
      mslType: 'float',
      dtype: 'f32',
      access: 'read',
      length: (p) => num(p, 'top_k') * 2 * num(p, 'intermediate'),
    },
    {
      index: 1,
      name: 'output_buf',
      kind: 'array',
      mslType: 'float',
      dtype: 'f32',
      access: 'write',
      length: (p) => num(p, 'top_k') * num(p, 'intermediate'),
    },
    { index: 2, name: 'intermediate', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'intermediate') },
    { index: 3, name: 'top_k', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'top_k') },
  ],
  threadgroup: [],
  cases: () => cross(swigluShapes(false)),
  validate: (p) => tooLarge('top_k × 2 × intermediate (gate_up)', num(p, 'top_k') * 2 * num(p, 'intermediate')),
  inputs: (p, set, rng) => ({ gate_up_buf: gateUpRows(num(p, 'top_k'), num(p, 'intermediate'), set, rng) }),
  launch: (p) => threads(num(p, 'intermediate'), num(p, 'top_k')),
  reference(p, inputs) {
    const r = swigluRowsRef(inputs.gate_up_buf as Float32Array, num(p, 'top_k'), num(p, 'intermediate'));
    return { outputs: { output_buf: new Float32Array(r.values) }, rules: { output_buf: geluFloatRule(r) } };
  },
  cost: (p) => geluCost(num(p, 'top_k') * num(p, 'intermediate'), 4),
};

function swigluSeqSpec(bf16: boolean): KernelSpec {
  const dtype = bf16 ? 'bf16' : 'f32';
  const mslType = bf16 ? 'bfloat' : 'float';
  const rows = (p: Params): number => num(p, 'n_tokens') * num(p, 'top_k');
  return {
    name: bf16 ? 'swiglu-seq-bf16' : 'swiglu-seq',
    entry: bf16 ? 'moe_swiglu_seq_bf16' : 'moe_swiglu_seq',
    shader: 'moe_dispatch.metal',
    group: 'ffn',
    description: `GELU(gate)·up for every (token, slot) of a prefill batch; gate_up [n_tokens, top_k, 2I]${bf16 ? ', bfloat in and out, f32 math' : ''}`,
    math: `${GELU_MATH}; out[t, k, i] from gate = gate_up[(t·K + k)·2I + i], up = gate_up[(t·K + k)·2I + I + i]${
      bf16 ? '; inputs bf16 widened to f32, output rounded to bf16 (nearest even)' : ''
    }`,
    params: [P_INTER, P_TOP_K, P_TOKENS],
    defaults: { intermediate: 768, top_k: 8, n_tokens: 4 },
    bench: { n_tokens: 512 },
    hasTopK: true,
    inputSets: GELU_SETS,
    buffers: [
      { index: 0, name: 'gate_up_buf', kind: 'array', mslType, dtype, access: 'read', length: (p) => rows(p) * 2 * num(p, 'intermediate') },
      { index: 1, name: 'output_buf', kind: 'array', mslType, dtype, access: 'write', length: (p) => rows(p) * num(p, 'intermediate') },
      {
        index: 2,
        name: 'params',
        kind: 'struct',
        mslType: 'MoeSwigluSeqParams',
        fields: [
          { name: 'intermediate', type: 'uint', value: (p) => num(p, 'intermediate') },
          { name: 'top_k', type: 'uint', value: (p) => num(p, 'top_k') },
          { name: 'n_tokens', type: 'uint', value: (p) => num(p, 'n_tokens') },
        ],
      },
    ],
    threadgroup: [],
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
        ? {
            outputs: { output_buf: toBf16Bits(r.values) },
            rules: { output_buf: bf16RoundingRule(r, 'GELU·up') },
          }
        : { outputs: { output_buf: new Float32Array(r.values) }, rules: { output_buf: geluFloatRule(r) } };
    },
    cost: (p) => geluCost(rows(p) * num(p, 'intermediate'), bf16 ? 2 : 4),
  };
}

export const swigluSeq = swigluSeqSpec(false);
export const swigluSeqBf16 = swigluSeqSpec(true);

// ---------------------------------------------------------------------------
// moe_weighted_sum, moe_weighted_sum_seq, moe_weighted_sum_seq_bf16_input
// ---------------------------------------------------------------------------

function sumShapes(withTokens: boolean): [origin: string, params: Params, sets: string[]][] {
  const rows: [string, number, number, number, string[]][] = [];
  for (const key of ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'qwen1.5-moe-a2.7b', 'mixtral-8x7b', 'deepseek-v2-lite']) {
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
  return rows.map(([origin, hidden, top_k, n_tokens, sets]): [string, Params, string[]] =>
    withTokens
      ? [origin.startsWith('edge: ') && n_tokens > 1 ? `${origin}, ${n_tokens} tokens` : origin, { hidden, top_k, n_tokens }, sets]
      : [origin, { hidden, top_k }, sets],
  );
}

/** Weights [n_tokens, top_k] and expert outputs [n_tokens·top_k, H] of one input set. */
function sumInputs(nTokens: number, topK: number, hidden: number, set: string, rng: Rng): { y: Float32Array; w: Float32Array } {
  const w = new Float32Array(nTokens * topK);
  for (let t = 0; t < nTokens; t++) w.set(slotWeights(set, rng, topK), t * topK);
  return { y: expertRows(nTokens * topK, hidden, set, rng), w };
}

export const weightedSum: KernelSpec = {
  name: 'weighted-sum',
  entry: 'moe_weighted_sum',
  shader: 'moe_dispatch.metal',
  group: 'ffn',
  description: 'Weighted sum of one token’s top_k expert outputs in one dispatch (replaces zero_buffer + top_k × moe_accumulate)',
  math: 'out[d] = Σ_k expert_outputs[k·H + d] · weights[k]',
  params: [P_HIDDEN, P_TOP_K],
  defaults: { hidden: 2048, top_k: 8 },
  bench: { hidden: 4096, top_k: 8 },
  hasTopK: true,
  inputSets: SUM_SETS,
  buffers: [
    {
      index: 0,
      name: 'expert_outputs',
      kind: 'array',
      mslType: 'float',
      dtype: 'f32',
      access: 'read',
      length: (p) => num(p, 'top_k') * num(p, 'hidden'),
    },
    { index: 1, name: 'weights', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'top_k') },
    { index: 2, name: 'output', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'hidden') },
    {
      index: 3,
      name: 'params',
      kind: 'struct',
      mslType: 'MoeWeightedSumParams',
      fields: [
        { name: 'hidden_size', type: 'uint', value: (p) => num(p, 'hidden') },
        { name: 'top_k', type: 'uint', value: (p) => num(p, 'top_k') },
      ],
    },
  ],
  threadgroup: [],
  cases: () => cross(sumShapes(false)),
  validate: (p) => tooLarge('top_k × hidden (expert_outputs)', num(p, 'top_k') * num(p, 'hidden')),
  inputs(p, set, rng): Tensors {
    const { y, w } = sumInputs(1, num(p, 'top_k'), num(p, 'hidden'), set, rng);
    return { expert_outputs: y, weights: w };
  },
  launch: (p) => threads(num(p, 'hidden')),
  reference(p, inputs) {
    const r = weightedSumRef(inputs.expert_outputs as Float32Array, inputs.weights as Float32Array, 1, num(p, 'top_k'), num(p, 'hidden'));
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'weighted sum') } };
  },
  cost(p) {
    const h = num(p, 'hidden');
    const k = num(p, 'top_k');
    // read K·H outputs and K weights, write H; one multiply-add per (k, d)
    return { bytes: 4 * (k * h + k + h), flops: 2 * k * h };
  },
};

function weightedSumSeqSpec(bf16Input: boolean): KernelSpec {
  const slots = (p: Params): number => num(p, 'n_tokens') * num(p, 'top_k');
  return {
    name: bf16Input ? 'weighted-sum-seq-bf16-input' : 'weighted-sum-seq',
    entry: bf16Input ? 'moe_weighted_sum_seq_bf16_input' : 'moe_weighted_sum_seq',
    shader: 'moe_dispatch.metal',
    group: 'ffn',
    description: bf16Input
      ? 'Per-token weighted sum of top_k expert outputs for a prefill batch: bfloat expert outputs, f32 weights, f32 accumulator and output'
      : 'Per-token weighted sum of top_k expert outputs for a prefill batch',
    math: `out[t, d] = Σ_k expert_outputs[(t·K + k)·H + d] · weights[t·K + k]${bf16Input ? ' (expert_outputs bf16 widened to f32; f32 accumulation)' : ''}`,
    params: [P_HIDDEN, P_TOP_K, P_TOKENS],
    defaults: { hidden: 2048, top_k: 8, n_tokens: 4 },
    bench: { n_tokens: 512 },
    hasTopK: true,
    inputSets: SUM_SETS,
    buffers: [
      {
        index: 0,
        name: 'expert_outputs',
        kind: 'array',
        mslType: bf16Input ? 'bfloat' : 'float',
        dtype: bf16Input ? 'bf16' : 'f32',
        access: 'read',
        length: (p) => slots(p) * num(p, 'hidden'),
      },
      { index: 1, name: 'weights', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: slots },
      { index: 2, name: 'output', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'n_tokens') * num(p, 'hidden') },
      {
        index: 3,
        name: 'params',
        kind: 'struct',
        mslType: 'MoeWeightedSumSeqParams',
        fields: [
          { name: 'hidden_size', type: 'uint', value: (p) => num(p, 'hidden') },
          { name: 'top_k', type: 'uint', value: (p) => num(p, 'top_k') },
          { name: 'n_tokens', type: 'uint', value: (p) => num(p, 'n_tokens') },
        ],
      },
    ],
    threadgroup: [],
    cases: () => cross(sumShapes(true)),
    validate: (p) => tooLarge('n_tokens × top_k × hidden (expert_outputs)', slots(p) * num(p, 'hidden')),
    inputs(p, set, rng): Tensors {
      const { y, w } = sumInputs(num(p, 'n_tokens'), num(p, 'top_k'), num(p, 'hidden'), set, rng);
      return { expert_outputs: bf16Input ? toBf16Bits(y) : y, weights: w };
    },
    launch: (p) => threads(num(p, 'hidden'), num(p, 'n_tokens')),
    reference(p, inputs) {
      const y = bf16Input ? fromBf16Bits(inputs.expert_outputs as Uint16Array) : (inputs.expert_outputs as Float32Array);
      const r = weightedSumRef(y, inputs.weights as Float32Array, num(p, 'n_tokens'), num(p, 'top_k'), num(p, 'hidden'));
      // bf16 inputs are exact values once widened: the f32 sum is judged as tightly as the f32 kernel's.
      return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'weighted sum') } };
    },
    cost(p) {
      const h = num(p, 'hidden');
      const t = num(p, 'n_tokens');
      const k = num(p, 'top_k');
      // read T·K·H expert outputs (2 or 4 bytes) and T·K f32 weights, write T·H f32; 2 flops per (t, k, d)
      return { bytes: (bf16Input ? 2 : 4) * t * k * h + 4 * (t * k + t * h), flops: 2 * t * k * h };
    },
  };
}

export const weightedSumSeq = weightedSumSeqSpec(false);
export const weightedSumSeqBf16Input = weightedSumSeqSpec(true);

// ---------------------------------------------------------------------------
// moe_accumulate
// ---------------------------------------------------------------------------

const ACC_SETS: InputSet[] = [
  { name: 'normal', description: 'accumulator ~ N(0, 1), expert output ~ N(0, 1)' },
  { name: 'large', description: 'accumulator ~ N(0, 1e4²), expert output ~ N(0, 1e3²) with every 64th ×1e3' },
  { name: 'integers', description: 'small integers in [−64, 64]: exact in f32 for the dyadic weights of the sweep' },
  { name: 'zeros', description: 'accumulator 0 at even positions, expert output 0 at every third' },
];

export const accumulate: KernelSpec = {
  name: 'accumulate',
  entry: 'moe_accumulate',
  shader: 'moe_dispatch.metal',
  group: 'ffn',
  description: 'In-place weighted accumulation of one expert’s output (stage-1 expert loop): accumulator += w · expert_output',
  math: 'accumulator[i] = accumulator[i] + routing_weight · expert_output[i] (routing_weight is an f32 in the params struct)',
  params: [
    P_ELEMENTS,
    { name: 'routing_weight', flag: 'routing-weight', description: 'routing weight of the expert (an f32 struct field; may be negative or 0)', kind: 'float' },
  ],
  defaults: { n_elements: 2048, routing_weight: 0.375 },
  bench: { n_elements: 1 << 22 },
  inputSets: ACC_SETS,
  buffers: [
    { index: 0, name: 'accumulator', kind: 'array', mslType: 'float', dtype: 'f32', access: 'readwrite', length: (p) => num(p, 'n_elements') },
    { index: 1, name: 'expert_output', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_elements') },
    {
      index: 2,
      name: 'params',
      kind: 'struct',
      mslType: 'MoeAccumParams',
      fields: [
        { name: 'n_elements', type: 'uint', value: (p) => num(p, 'n_elements') },
        { name: 'routing_weight', type: 'float', value: (p) => num(p, 'routing_weight') },
      ],
    },
  ],
  threadgroup: [],
  cases(): KernelCase[] {
    const all = ACC_SETS.map((s) => s.name);
    const rows: [string, Params, string[]][] = [];
    for (const key of ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'mixtral-8x7b', 'deepseek-v2-lite']) {
      const h = modelOf(key).hidden;
      rows.push([key, { n_elements: h, routing_weight: 0.375 }, all]);
      rows.push([key, { n_elements: h, routing_weight: -1.75 }, ['normal', 'large']]);
    }
    rows.push(
      ['edge: 1 element', { n_elements: 1, routing_weight: 1 }, all],
      ['edge: weight 0 (accumulator unchanged)', { n_elements: 257, routing_weight: 0 }, all],
      ['edge: weight 1000, 1000 elements', { n_elements: 1000, routing_weight: 1000 }, all],
      ['edge: tiny weight 2⁻²⁰', { n_elements: 300, routing_weight: 2 ** -20 }, ['normal', 'large']],
    );
    return cross(rows);
  },
  validate(p) {
    const w = num(p, 'routing_weight');
    if (!Number.isFinite(w) || Math.abs(w) > 3.4e38) return `routing_weight = ${w} is not a finite float32`;
    return tooLarge('n_elements', num(p, 'n_elements'));
  },
  inputs(p, set, rng): Tensors {
    const n = num(p, 'n_elements');
    const acc = new Float32Array(n);
    const e = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      switch (set) {
        case 'normal':
          acc[i] = rng.normal();
          e[i] = rng.normal();
          break;
        case 'large':
          acc[i] = 1e4 * rng.normal();
          e[i] = 1e3 * rng.normal() * (i % 64 === 0 ? 1e3 : 1);
          break;
        case 'integers':
          acc[i] = rng.int(-64, 65);
          e[i] = rng.int(-64, 65);
          break;
        case 'zeros': {
          const a = rng.normal();
          const b = rng.normal();
          acc[i] = i % 2 === 0 ? 0 : a;
          e[i] = i % 3 === 0 ? 0 : b;
          break;
        }
        default:
          unknownSet(set);
      }
    }
    return { accumulator: acc, expert_output: e };
  },
  launch: (p) => threads(num(p, 'n_elements')),
  reference(p, inputs) {
    // the kernel sees the weight as an f32
    const r = accumulateRef(inputs.accumulator as Float32Array, inputs.expert_output as Float32Array, Math.fround(num(p, 'routing_weight')));
    return {
      outputs: { accumulator: new Float32Array(r.values) },
      rules: {
        // w·x rounded, then the add rounded (or one fma): ≤ u·|w·x| + u·|acc + w·x| ≤ 2u·(|acc| + |w·x|)
        accumulator: boundedRule(
          r.values,
          2 * U * maxOf(r.errScale),
          2 * U,
          0.99999,
          1e-5,
          'one f32 multiply and one add (or an fma): error ≤ 2u·(|acc| + |w·x|)',
        ),
      },
    };
  },
  cost(p) {
    const n = num(p, 'n_elements');
    // read accumulator and expert output, write accumulator; multiply + add per element
    return { bytes: 12 * n, flops: 2 * n };
  },
};

// ---------------------------------------------------------------------------
// zero_buffer
// ---------------------------------------------------------------------------

export const zeroBuffer: KernelSpec = {
  name: 'zero-buffer',
  entry: 'zero_buffer',
  shader: 'moe_dispatch.metal',
  group: 'ffn',
  description: 'Zero an f32 buffer (the accumulator before the stage-1 expert loop)',
  math: 'buffer[i] = 0 for i < n_elements',
  params: [P_ELEMENTS],
  defaults: { n_elements: 2048 },
  bench: { n_elements: 1 << 22 },
  inputSets: [{ name: 'canary', description: 'the buffer starts as NaN (the canary, as pooled memory may hold): every element must be stored, not scaled' }],
  buffers: [
    { index: 0, name: 'buffer', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'n_elements') },
    {
      index: 1,
      name: 'params',
      kind: 'struct',
      mslType: 'ZeroParams',
      fields: [{ name: 'n_elements', type: 'uint', value: (p) => num(p, 'n_elements') }],
    },
  ],
  threadgroup: [],
  cases(): KernelCase[] {
    const rows: [string, Params, string[]][] = [];
    for (const key of ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'mixtral-8x7b']) rows.push([key, { n_elements: modelOf(key).hidden }, ['canary']]);
    rows.push(
      ['edge: 1 element', { n_elements: 1 }, ['canary']],
      ['edge: 257 (one thread past a threadgroup)', { n_elements: 257 }, ['canary']],
      ['edge: 1001 (odd, not a multiple of 4)', { n_elements: 1001 }, ['canary']],
    );
    return cross(rows);
  },
  validate: (p) => tooLarge('n_elements', num(p, 'n_elements')),
  inputs(_p, set): Tensors {
    if (set !== 'canary') unknownSet(set);
    return {};
  },
  launch: (p) => threads(num(p, 'n_elements')),
  reference(p) {
    return {
      outputs: { buffer: new Float32Array(num(p, 'n_elements')) },
      rules: { buffer: { kind: 'exact', reason: 'zero is exact (−0 compares equal)' } },
    };
  },
  // write n floats; no arithmetic
  cost: (p) => ({ bytes: 4 * num(p, 'n_elements'), flops: 0 }),
};

// ---------------------------------------------------------------------------
// naive_matvec_f32
// ---------------------------------------------------------------------------

const MATVEC_SETS: InputSet[] = [
  { name: 'normal', description: 'W ~ N(0, 1/k), x ~ N(0, 1)' },
  { name: 'large', description: 'W ~ N(0, 1), x ~ N(0, 1) with every 61st input ×1e4 (outlier activations)' },
  { name: 'integers', description: 'W, x small integers in [−4, 4]: every dot product is exact in f32' },
  { name: 'zeros', description: 'x 0 at even positions, every seventh row of W all zero (exact 0 outputs)' },
];
const ALL_MATVEC = MATVEC_SETS.map((s) => s.name);

export const matvec: KernelSpec = {
  name: 'matvec',
  entry: 'naive_matvec_f32',
  shader: 'moe_dispatch.metal',
  group: 'ffn',
  description: 'Naive f32 mat-vec, one thread per output row (the stage-1 expert projections gate/up/down for one token)',
  math: 'output[r] = Σ_c weight[r·k + c] · input[c] for r < n (weight [n, k] row-major; params.m = 1)',
  params: [
    { name: 'n', flag: 'rows', description: 'output rows n (rows of the weight matrix)', min: 1 },
    { name: 'k', flag: 'cols', description: 'inner dimension k (columns of the weight matrix, input length)', min: 1 },
  ],
  defaults: { n: 768, k: 2048 },
  bench: { n: 14336, k: 4096 },
  inputSets: MATVEC_SETS,
  buffers: [
    { index: 0, name: 'weight', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n') * num(p, 'k') },
    { index: 1, name: 'input', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'k') },
    { index: 2, name: 'output', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'n') },
    {
      index: 3,
      name: 'params',
      kind: 'struct',
      mslType: 'MatvecParams',
      fields: [
        { name: 'm', type: 'uint', value: () => 1 },
        { name: 'k', type: 'uint', value: (p) => num(p, 'k') },
        { name: 'n', type: 'uint', value: (p) => num(p, 'n') },
      ],
    },
  ],
  threadgroup: [],
  cases(): KernelCase[] {
    const q3 = modelOf('qwen3-30b-a3b');
    const gm = modelOf('gemma-4-26b-a4b');
    const mx = modelOf('mixtral-8x7b');
    const ds = modelOf('deepseek-v2-lite');
    return cross([
      ['qwen3-30b-a3b', { n: q3.expert_intermediate, k: q3.hidden }, ['normal', 'zeros']],
      ['qwen3-30b-a3b', { n: q3.hidden, k: q3.expert_intermediate }, ['large']],
      ['gemma-4-26b-a4b', { n: gm.expert_intermediate, k: gm.hidden }, ['normal']],
      [`mixtral-8x7b: down rows ${mx.hidden}, k capped at 512 of ${mx.expert_intermediate}`, { n: mx.hidden, k: 512 }, ['normal', 'integers']],
      [`mixtral-8x7b: gate k ${mx.hidden}, rows capped at 64 of ${mx.expert_intermediate}`, { n: 64, k: mx.hidden }, ['large']],
      [`deepseek-v2-lite: shared down rows ${ds.hidden}, k capped at 256 of ${ds.shared_intermediate ?? ds.expert_intermediate}`, { n: ds.hidden, k: 256 }, ['normal']],
      ['edge: 1 × 1', { n: 1, k: 1 }, ALL_MATVEC],
      ['edge: 257 rows (one past a threadgroup), k 3', { n: 257, k: 3 }, ALL_MATVEC],
      ['edge: 5 rows, k 1000 (odd)', { n: 5, k: 1000 }, ALL_MATVEC],
      ['edge: 300 rows, k 33', { n: 300, k: 33 }, ALL_MATVEC],
    ]);
  },
  validate: (p) => tooLarge('n × k (weight)', num(p, 'n') * num(p, 'k')),
  inputs(p, set, rng): Tensors {
    const n = num(p, 'n');
    const k = num(p, 'k');
    const w = new Float32Array(n * k);
    const x = new Float32Array(k);
    const sd = 1 / Math.sqrt(k);
    for (let c = 0; c < k; c++) {
      switch (set) {
        case 'normal':
          x[c] = rng.normal();
          break;
        case 'large':
          x[c] = rng.normal() * (c % 61 === 0 ? 1e4 : 1);
          break;
        case 'integers':
          x[c] = rng.int(-4, 5);
          break;
        case 'zeros':
          x[c] = c % 2 === 0 ? 0 : rng.normal();
          break;
        default:
          unknownSet(set);
      }
    }
    for (let i = 0; i < n * k; i++) {
      switch (set) {
        case 'normal':
        case 'zeros':
          w[i] = sd * rng.normal();
          break;
        case 'large':
          w[i] = rng.normal();
          break;
        default:
          w[i] = rng.int(-4, 5);
      }
    }
    if (set === 'zeros') for (let r = 0; r < n; r += 7) w.fill(0, r * k, (r + 1) * k);
    return { weight: w, input: x };
  },
  launch: (p) => threads(num(p, 'n')),
  reference(p, inputs) {
    const r = matvecRef(inputs.weight as Float32Array, inputs.input as Float32Array, num(p, 'n'), num(p, 'k'));
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'dot product') } };
  },
  cost(p) {
    const n = num(p, 'n');
    const k = num(p, 'k');
    // read the n·k weights once and the k inputs, write n outputs; a multiply-add per weight
    return { bytes: 4 * (n * k + k + n), flops: 2 * n * k };
  },
};

// ---------------------------------------------------------------------------
// moe_gather_topk_weights
// ---------------------------------------------------------------------------

const GATHER_SETS: InputSet[] = [
  { name: 'softmax', description: 'probs = softmax of N(0, 2²) logits, order = argsort descending, scale ~ U(0.5, 2)' },
  { name: 'ties', description: 'probs on 3 levels (many equal), order = a stable descending sort, scale ~ U(0.5, 2)' },
  { name: 'zeros', description: 'all probs 0: the sum is 0 and every weight must be 0 (no 0/0)' },
  { name: 'signed-scale', description: 'softmax probs, per-expert scale ~ ±N(0, 1e3²) (negative and large)' },
  { name: 'unsorted', description: 'order is a random permutation (the kernel must gather what it is given, not re-sort)' },
];

export const gatherTopkWeights: KernelSpec = {
  name: 'gather-topk-weights',
  entry: 'moe_gather_topk_weights',
  shader: 'moe_dispatch.metal',
  group: 'routing',
  description: 'Gather the first top_k experts of a descending order, renormalise their probabilities and apply the per-expert scale (one thread)',
  math: 'ids[k] = order[k]; weights[k] = probs[ids[k]] / Σ_{j<top_k} probs[ids[j]] · scale[ids[k]] (0 when the sum is 0)',
  hasTopK: true,
  params: [P_EXPERTS, { ...P_TOP_K, max: GATHER_MAX_TOP_K }],
  defaults: { n_experts: 128, top_k: 8 },
  inputSets: GATHER_SETS,
  buffers: [
    { index: 0, name: 'softmax_probs', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_experts') },
    { index: 1, name: 'sorted_indices', kind: 'array', mslType: 'uint', dtype: 'u32', access: 'read', length: (p) => num(p, 'n_experts') },
    { index: 2, name: 'per_expert_scale', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_experts') },
    { index: 3, name: 'out_expert_ids', kind: 'array', mslType: 'uint', dtype: 'u32', access: 'write', length: (p) => num(p, 'top_k') },
    { index: 4, name: 'out_weights', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'top_k') },
    {
      index: 5,
      name: 'params',
      kind: 'struct',
      mslType: 'MoeGatherTopkParams',
      fields: [
        { name: 'n_experts', type: 'uint', value: (p) => num(p, 'n_experts') },
        { name: 'top_k', type: 'uint', value: (p) => num(p, 'top_k') },
      ],
    },
  ],
  threadgroup: [],
  cases(): KernelCase[] {
    const all = GATHER_SETS.map((s) => s.name);
    const rows: [string, Params, string[]][] = [];
    for (const key of ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'qwen1.5-moe-a2.7b', 'mixtral-8x7b', 'deepseek-v2-lite']) {
      const m = modelOf(key);
      rows.push([key, { n_experts: m.experts, top_k: m.top_k }, all]);
    }
    rows.push(
      ['edge: top_k 1', { n_experts: 64, top_k: 1 }, all],
      ['edge: top_k = n_experts = 8', { n_experts: 8, top_k: 8 }, all],
      ['edge: 1 expert', { n_experts: 1, top_k: 1 }, all],
      ['edge: 200 experts, top_k 7 (odd)', { n_experts: 200, top_k: 7 }, all],
    );
    return cross(rows);
  },
  validate(p) {
    const e = num(p, 'n_experts');
    const k = num(p, 'top_k');
    if (k > GATHER_MAX_TOP_K) return `top_k = ${k} is above the kernel's limit of ${GATHER_MAX_TOP_K} (a fixed float[8] of selected probabilities)`;
    if (k > e) return `top_k = ${k} must not exceed n_experts = ${e}`;
    return tooLarge('n_experts', e);
  },
  inputs(p, set, rng): Tensors {
    const e = num(p, 'n_experts');
    const probs = new Float32Array(e);
    const scale = new Float32Array(e);
    switch (set) {
      case 'softmax':
      case 'signed-scale':
      case 'unsorted': {
        const l = Array.from({ length: e }, () => 2 * rng.normal());
        const m = Math.max(...l);
        const ex = l.map((v) => Math.exp(v - m));
        const s = ex.reduce((a, b) => a + b, 0);
        for (let i = 0; i < e; i++) probs[i] = (ex[i] as number) / s;
        break;
      }
      case 'ties': {
        const levels = [0.3, 0.1, 0.02];
        for (let i = 0; i < e; i++) probs[i] = levels[rng.int(0, 3)] as number;
        break;
      }
      case 'zeros':
        break;
      default:
        unknownSet(set);
    }
    for (let i = 0; i < e; i++) scale[i] = set === 'signed-scale' ? 1e3 * rng.normal() : rng.uniform(0.5, 2);
    const order = Array.from({ length: e }, (_, i) => i);
    if (set === 'unsorted') {
      for (let i = e - 1; i > 0; i--) {
        const j = rng.int(0, i + 1);
        [order[i], order[j]] = [order[j] as number, order[i] as number];
      }
    } else {
      order.sort((a, b) => (probs[b] as number) - (probs[a] as number) || a - b);
    }
    return { softmax_probs: probs, sorted_indices: Uint32Array.from(order), per_expert_scale: scale };
  },
  launch: () => ({ mode: 'threads', grid: [1, 1, 1], threadgroup: [1, 1, 1], threadgroupMemory: [] }),
  reference(p, inputs) {
    const k = num(p, 'top_k');
    const r = gatherTopkRef(inputs.softmax_probs as Float32Array, inputs.sorted_indices as Uint32Array, inputs.per_expert_scale as Float32Array, k);
    return {
      outputs: { out_expert_ids: r.ids, out_weights: new Float32Array(r.weights) },
      rules: {
        out_expert_ids: { kind: 'exact', reason: 'the ids are copied from the given order: they must match exactly' },
        out_weights: {
          kind: 'float',
          // sum of top_k positive terms (≤ (k−1)u), a reciprocal or division, two multiplies
          atol: (k + 4) * U * maxOf(r.weights),
          rtol: (k + 4) * U,
          minCosine: 0.99999,
          maxRelMaxAbs: 1e-5,
          reason: 'f32 sum of top_k positive probabilities, one division (or reciprocal) and two multiplies: ≤ (top_k+4)·u relative',
        },
      },
    };
  },
  cost(p) {
    const k = num(p, 'top_k');
    // read k indices, k gathered probs and k gathered scales; write k ids and k weights (4 bytes each)
    // flops: k adds, 1 reciprocal, 2 multiplies per slot
    return { bytes: 20 * k, flops: 3 * k + 1 };
  },
};

// ---------------------------------------------------------------------------
// moe_weighted_reduce_f32
// ---------------------------------------------------------------------------

const REDUCE_SETS: InputSet[] = [
  {
    name: 'normal',
    description: 'routing weights softmax over the slots, expert and shared outputs ~ N(0, 1), shared gate = sigmoid(N(0, 1)), residual ~ N(0, 1)',
  },
  { name: 'large', description: 'expert outputs ~ N(0, 1e4²) with outlier columns ×100, residual ~ N(0, 1e6²), signed weights ~ N(0, 3²)' },
  { name: 'integers', description: 'outputs and residual small integers, weights and gates multiples of 1/8: exact in f32' },
  { name: 'zeros', description: 'odd slots weight 0, every fifth expert output 0, shared gate 0 on even tokens' },
];

export const weightedReduce: KernelSpec = {
  name: 'weighted-reduce',
  entry: 'moe_weighted_reduce_f32',
  shader: 'moe_weighted_reduce.metal',
  group: 'ffn',
  description:
    'Fused end of a MoE layer: weighted sum of the routed experts’ outputs + gated shared expert (+ residual when add_residual); with add_residual = 0 the residual buffer is filled with NaN and must not be used',
  math: 'output[t, h] = Σ_k expert_w[t·K + k]·y_expert[t·K + k, h] + sh_gate[t]·y_shared[t, h] (+ residual[t, h] when add_residual ≠ 0)',
  hasTopK: true,
  params: [
    P_TOKENS,
    P_TOP_K,
    P_HIDDEN,
    { name: 'add_residual', flag: 'residual', description: 'add the residual: 1 yes, 0 no (the residual buffer is then a NaN-filled dummy)', min: 0, max: 1 },
  ],
  defaults: { n_tokens: 4, top_k: 8, hidden: 2048, add_residual: 1 },
  bench: { n_tokens: 512 },
  inputSets: REDUCE_SETS,
  buffers: [
    {
      index: 0,
      name: 'params',
      kind: 'struct',
      mslType: 'MoeWeightedReduceParams',
      fields: [
        { name: 'n_tokens', type: 'uint', value: (p) => num(p, 'n_tokens') },
        { name: 'top_k', type: 'uint', value: (p) => num(p, 'top_k') },
        { name: 'h', type: 'uint', value: (p) => num(p, 'hidden') },
        { name: 'add_residual', type: 'uint', value: (p) => num(p, 'add_residual') },
      ],
    },
    { index: 1, name: 'expert_w', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_tokens') * num(p, 'top_k') },
    {
      index: 2,
      name: 'y_expert',
      kind: 'array',
      mslType: 'float',
      dtype: 'f32',
      access: 'read',
      length: (p) => num(p, 'n_tokens') * num(p, 'top_k') * num(p, 'hidden'),
    },
    { index: 3, name: 'sh_gate', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_tokens') },
    { index: 4, name: 'y_shared', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_tokens') * num(p, 'hidden') },
    { index: 5, name: 'residual', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_tokens') * num(p, 'hidden') },
    { index: 6, name: 'output', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'n_tokens') * num(p, 'hidden') },
  ],
  threadgroup: [],
  cases(): KernelCase[] {
    const all = REDUCE_SETS.map((s) => s.name);
    const rows: [string, Params, string[]][] = [];
    const shape = (key: string, tokens: number, res: number): Params => {
      const m = modelOf(key);
      return { n_tokens: tokens, top_k: m.top_k, hidden: m.hidden, add_residual: res };
    };
    rows.push(
      ['qwen3-30b-a3b', shape('qwen3-30b-a3b', 3, 1), all],
      ['qwen3-30b-a3b', shape('qwen3-30b-a3b', 1, 0), all],
      ['qwen1.5-moe-a2.7b', shape('qwen1.5-moe-a2.7b', 2, 1), ['normal', 'large']],
      ['qwen1.5-moe-a2.7b', shape('qwen1.5-moe-a2.7b', 2, 0), ['normal']],
      ['deepseek-v2-lite', shape('deepseek-v2-lite', 2, 1), ['normal', 'zeros']],
      ['mixtral-8x7b', shape('mixtral-8x7b', 2, 0), ['normal', 'large']],
      ['gemma-4-26b-a4b', shape('gemma-4-26b-a4b', 2, 1), ['normal']],
      ['edge: 1 token, 1 slot, hidden 1', { n_tokens: 1, top_k: 1, hidden: 1, add_residual: 1 }, all],
      ['edge: hidden 257 (one past a threadgroup), no residual', { n_tokens: 5, top_k: 3, hidden: 257, add_residual: 0 }, all],
      ['edge: hidden 300, top_k 7', { n_tokens: 4, top_k: 7, hidden: 300, add_residual: 1 }, all],
      ['edge: 33 tokens, hidden 100', { n_tokens: 33, top_k: 2, hidden: 100, add_residual: 1 }, all],
      ['edge: 33 tokens, hidden 100, no residual', { n_tokens: 33, top_k: 2, hidden: 100, add_residual: 0 }, ['normal']],
    );
    return cross(rows);
  },
  validate(p) {
    const r = num(p, 'add_residual');
    if (r !== 0 && r !== 1) return `add_residual = ${r} must be 0 or 1`;
    return tooLarge('n_tokens × top_k × hidden (y_expert)', num(p, 'n_tokens') * num(p, 'top_k') * num(p, 'hidden'));
  },
  inputs(p, set, rng): Tensors {
    const t = num(p, 'n_tokens');
    const k = num(p, 'top_k');
    const h = num(p, 'hidden');
    const { y, w } = sumInputs(t, k, h, set, rng);
    const g = new Float32Array(t);
    const ys = new Float32Array(t * h);
    const res = new Float32Array(t * h);
    for (let i = 0; i < t; i++) {
      switch (set) {
        case 'integers':
          g[i] = rng.int(0, 9) / 8;
          break;
        case 'zeros': {
          const v = 1 / (1 + Math.exp(-rng.normal()));
          g[i] = i % 2 === 0 ? 0 : v;
          break;
        }
        default:
          g[i] = 1 / (1 + Math.exp(-rng.normal()));
      }
    }
    for (let i = 0; i < t * h; i++) {
      ys[i] = set === 'integers' ? rng.int(-8, 9) : set === 'large' ? 1e4 * rng.normal() : rng.normal();
      res[i] = set === 'integers' ? rng.int(-100, 101) : set === 'large' ? 1e6 * rng.normal() : rng.normal();
    }
    // With add_residual = 0 the host passes a dummy buffer: poison it, a kernel must not use it.
    if (num(p, 'add_residual') === 0) res.fill(NaN);
    return { expert_w: w, y_expert: y, sh_gate: g, y_shared: ys, residual: res };
  },
  launch(p) {
    return {
      mode: 'threadgroups',
      grid: [Math.ceil(num(p, 'hidden') / TG), num(p, 'n_tokens'), 1],
      threadgroup: [TG, 1, 1],
      threadgroupMemory: [],
    };
  },
  reference(p, inputs) {
    const r = weightedReduceRef(
      inputs.expert_w as Float32Array,
      inputs.y_expert as Float32Array,
      inputs.sh_gate as Float32Array,
      inputs.y_shared as Float32Array,
      num(p, 'add_residual') !== 0 ? (inputs.residual as Float32Array) : null,
      num(p, 'n_tokens'),
      num(p, 'top_k'),
      num(p, 'hidden'),
    );
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'weighted reduce') } };
  },
  cost(p) {
    const t = num(p, 'n_tokens');
    const k = num(p, 'top_k');
    const h = num(p, 'hidden');
    const r = num(p, 'add_residual') !== 0 ? 1 : 0;
    // read: T·K weights, T·K·H expert outputs, T gates, T·H shared, T·H residual (when added); write T·H
    const bytes = 4 * (t * k + t * k * h + t + t * h + r * t * h + t * h);
    // per output: K multiply-adds, the gate multiply-add, the residual add
    const flops = t * h * (2 * k + 2 + r);
    return { bytes, flops };
  },
};

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
