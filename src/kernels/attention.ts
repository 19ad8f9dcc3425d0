/**
 * Single-token (decode) GPU attention, the four kernels of moeflux's
 * `gpu_attn_fuse`: scores = Q·Kᵀ·scale, in-place softmax of the scores,
 * out = scores·V (all with GQA), and the sigmoid output gate.
 *
 * Interfaces follow the moeflux host code: every size is a `constant uint&`
 * (or `constant float&`) bound at its own index; launches are
 * dispatchThreadgroups of 256 threads. Scores rows are `seq_stride` floats
 * apart and only [0, seq_len) of each row belongs to the result: the rest is
 * neither compared nor checked for the canary (ReferenceResult.include), and
 * inputs fill it with poison (NaN, or 1e30 for the softmax) so a kernel that
 * reads past seq_len fails.
 */
import { attnScoresRef, attnSoftmaxRef, attnValuesRef, sigmoidGateRef } from '../reference/attention.js';
import { model } from './models.js';
import type { FloatRule, KernelCase, KernelSpec, Params, ParamDef, Tensors } from './spec.js';
import type { Rng } from '../util/rng.js';

/** Threads per threadgroup in every dispatch of gpu_attn_fuse. */
const TG = 256;
/** float32 unit roundoff. */
const U = 2 ** -24;
/** Largest element count of one buffer we accept (1 GiB of floats; 32-bit indices stay safe). */
const MAX_ELEMS = 2 ** 28;
/** Padding past seq_len in scores rows read by the softmax: reading it ruins the row. */
const SOFTMAX_PAD = 1e30;

const num = (p: Params, k: string): number => p[k] as number;

interface AttnShape {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Attention shape of a model in fixtures/models.json. */
function attnOf(key: string): AttnShape {
  const m = model(key);
  if (!m) throw new Error(`fixtures/models.json has no model '${key}'`);
  return { heads: m.heads, kvHeads: m.kv_heads, headDim: m.head_dim };
}

const P_HEADS: ParamDef = { name: 'num_heads', flag: 'heads', description: 'query heads', min: 1 };
const P_KV_HEADS: ParamDef = { name: 'num_kv_heads', flag: 'kv-heads', description: 'key/value heads (GQA: divides num_heads)', min: 1 };
const P_HEAD_DIM: ParamDef = { name: 'head_dim', flag: 'head-dim', description: 'dimension of one head', min: 1 };
const P_SEQ_LEN: ParamDef = { name: 'seq_len', flag: 'seq-len', description: 'cached positions attended to', min: 1 };
const P_SEQ_STRIDE: ParamDef = {
  name: 'seq_stride',
  flag: 'seq-stride',
  description: 'floats between scores rows (KV-cache capacity), at least seq_len',
  min: 1,
};
const P_SCALE_DIM: ParamDef = {
  name: 'scale_dim',
  flag: 'scale-dim',
  description: 'scale = 1/sqrt(scale_dim), passed as float (head_dim: the usual 1/√head_dim; 1: no scaling)',
  min: 1,
};

/** The float32 scale the host passes at buffer(7). */
export function attnScale(p: Params): number {
  return Math.fround(1 / Math.sqrt(num(p, 'scale_dim')));
}

function validateHeads(p: Params): string | null {
  const h = num(p, 'num_heads');
  const kv = num(p, 'num_kv_heads');
  if (h % kv !== 0) return `num_heads = ${h} must be a multiple of num_kv_heads = ${kv} (GQA: head h reads kv head h / (num_heads / num_kv_heads))`;
  if (h * num(p, 'head_dim') > MAX_ELEMS) return `num_heads × head_dim = ${h * num(p, 'head_dim')} is too large (at most ${MAX_ELEMS})`;
  return null;
}

function validateSeq(p: Params, withKv: boolean): string | null {
  const s = num(p, 'seq_len');
  const st = num(p, 'seq_stride');
  if (st < s) return `seq_stride = ${st} must be at least seq_len = ${s} (scores rows are seq_stride floats apart; set --seq-stride)`;
  if (num(p, 'num_heads') * st > MAX_ELEMS) return `num_heads × seq_stride = ${num(p, 'num_heads') * st} scores is too large (at most ${MAX_ELEMS})`;
  if (withKv && s * num(p, 'num_kv_heads') * num(p, 'head_dim') > MAX_ELEMS) {
    return `seq_len × num_kv_heads × head_dim = ${s * num(p, 'num_kv_heads') * num(p, 'head_dim')} cache floats is too large (at most ${MAX_ELEMS})`;
  }
  return null;
}

function normals(n: number, rng: Rng, sigma = 1, mean = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = mean + sigma * rng.normal();
  return a;
}

/** "Only [0, seq_len) of each seq_stride row": the elements a scores-writing kernel is specified to write. */
function rowPrefix(seqLen: number, seqStride: number): (i: number) => boolean {
  return (i) => i % seqStride < seqLen;
}

function cross(rows: [origin: string, params: Params, sets: string[]][]): KernelCase[] {
  const out: KernelCase[] = [];
  for (const [origin, params, sets] of rows) for (const inputSet of sets) out.push({ params, inputSet, origin });
  return out;
}

// ---------------------------------------------------------------------------
// attn_scores_batched
// ---------------------------------------------------------------------------

const SCORES_SETS = [
  { name: 'normal', description: 'Q, K ~ N(0, 1)' },
  { name: 'large', description: 'Q, K ~ N(0, 30²) with three outlier channels per head ×1000 (dot products ~1e9)' },
  { name: 'integers', description: 'Q, K small integers in [-4, 4]: every dot product is exact in f32, only the scale rounds' },
  { name: 'zeros', description: 'Q of even heads all zero, K of position 0 all zero (scores exactly 0), the rest N(0, 1)' },
];
const ALL_SCORES = SCORES_SETS.map((s) => s.name);

function scoresParams(a: AttnShape, seqLen: number, seqStride: number, scaleDim = a.headDim): Params {
  return { num_heads: a.heads, num_kv_heads: a.kvHeads, head_dim: a.headDim, seq_len: seqLen, seq_stride: seqStride, scale_dim: scaleDim };
}

export const attnScores: KernelSpec = {
  name: 'attn-scores',
  entry: 'attn_scores_batched',
  shader: 'attention.metal',
  group: 'attention',
  description: 'Decode attention scores Q·Kᵀ·scale for every (position, head), one threadgroup of 256 threads each, GQA',
  math: 'scores[h·seq_stride + p] = scale · Σ_d Q[h,d]·K[p, h/(heads/kv_heads), d] for p < seq_len (rest of the row unwritten)',
  params: [P_HEADS, P_KV_HEADS, P_HEAD_DIM, P_SEQ_LEN, P_SEQ_STRIDE, P_SCALE_DIM],
  defaults: { num_heads: 32, num_kv_heads: 4, head_dim: 128, seq_len: 7, seq_stride: 4096, scale_dim: 128 },
  bench: { seq_len: 4096, seq_stride: 4096 },
  inputSets: SCORES_SETS,
  buffers: [
    { index: 0, name: 'q', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'num_heads') * num(p, 'head_dim') },
    {
      index: 1,
      name: 'k_cache',
      kind: 'array',
      mslType: 'float',
      dtype: 'f32',
      access: 'read',
      length: (p) => num(p, 'seq_len') * num(p, 'num_kv_heads') * num(p, 'head_dim'),
    },
    { index: 2, name: 'scores', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'num_heads') * num(p, 'seq_stride') },
    { index: 3, name: 'head_dim', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'head_dim') },
    { index: 4, name: 'kv_dim', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'num_kv_heads') * num(p, 'head_dim') },
    { index: 5, name: 'seq_len', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'seq_len') },
    { index: 6, name: 'seq_stride', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'seq_stride') },
    { index: 7, name: 'scale', kind: 'scalar', mslType: 'float', value: attnScale },
    { index: 8, name: 'heads_per_kv', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'num_heads') / num(p, 'num_kv_heads') },
    // num_seq_tgs: threadgroups per head; the host sets it to seq_len.
    { index: 9, name: 'num_seq_tgs', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'seq_len') },
  ],
  threadgroup: [],

  cases(): KernelCase[] {
    const q3 = attnOf('qwen3-30b-a3b');
    const gm = attnOf('gemma-4-26b-a4b');
    const mx = attnOf('mixtral-8x7b');
    const q15 = attnOf('qwen1.5-moe-a2.7b');
    return cross([
      ['qwen3-30b-a3b', scoresParams(q3, 1, 1), ALL_SCORES],
      ['qwen3-30b-a3b', scoresParams(q3, 7, 64), ALL_SCORES],
      ['qwen3-30b-a3b', scoresParams(q3, 100, 128), ALL_SCORES],
      ['qwen3-30b-a3b', scoresParams(q3, 257, 300), ['normal']],
      ['gemma-4-26b-a4b', scoresParams(gm, 7, 16), ALL_SCORES],
      ['gemma-4-26b-a4b', scoresParams(gm, 100, 128), ['normal', 'large']],
      ['mixtral-8x7b', scoresParams(mx, 5, 8), ALL_SCORES],
      ['qwen1.5-moe-a2.7b', scoresParams(q15, 3, 3), ['normal']],
      ['edge: seq_len 257, 4 heads on 1 kv head', scoresParams({ heads: 4, kvHeads: 1, headDim: 128 }, 257, 300), ['large', 'integers']],
      ['edge: head_dim 80 (not a multiple of 32), 6 heads / 2 kv heads', scoresParams({ heads: 6, kvHeads: 2, headDim: 80 }, 9, 11), ALL_SCORES],
      ['edge: head_dim 300 > threadgroup', scoresParams({ heads: 2, kvHeads: 1, headDim: 300 }, 5, 5), ['normal', 'large']],
      ['edge: head_dim 1, 3 heads (MHA)', scoresParams({ heads: 3, kvHeads: 3, headDim: 1 }, 2, 2), ['normal', 'integers']],
      ['edge: scale 1 (scale_dim 1)', scoresParams(q3, 3, 4, 1), ['normal']],
      ['edge: scale_dim 144 ≠ head_dim (gemma head shape)', scoresParams(gm, 2, 2, 144), ['normal']],
    ]);
  },

  validate(p) {
    return validateHeads(p) ?? validateSeq(p, true);
  },

  inputs(p, inputSet, rng): Tensors {
    const H = num(p, 'num_heads');
    const D = num(p, 'head_dim');
    const S = num(p, 'seq_len');
    const kvd = num(p, 'num_kv_heads') * D;
    switch (inputSet) {
      case 'normal':
        return { q: normals(H * D, rng), k_cache: normals(S * kvd, rng) };
      case 'large': {
        const q = normals(H * D, rng, 30);
        const k = normals(S * kvd, rng, 30);
        const outliers = [0, Math.floor(D / 2), D - 1];
        for (const d of outliers) {
          for (let h = 0; h < H; h++) q[h * D + d] = (q[h * D + d] as number) * 1000;
          for (let r = 0; r < (S * kvd) / D; r++) k[r * D + d] = (k[r * D + d] as number) * 1000;
        }
        return { q, k_cache: k };
      }
      case 'integers': {
        const q = new Float32Array(H * D);
        const k = new Float32Array(S * kvd);
        for (let i = 0; i < q.length; i++) q[i] = rng.int(-4, 5);
        for (let i = 0; i < k.length; i++) k[i] = rng.int(-4, 5);
        return { q, k_cache: k };
      }
      case 'zeros': {
        const q = normals(H * D, rng);
        const k = normals(S * kvd, rng);
        for (let h = 0; h < H; h += 2) q.fill(0, h * D, (h + 1) * D);
        k.fill(0, 0, kvd);
        return { q, k_cache: k };
      }
      default:
        throw new Error(`unknown input set '${inputSet}'`);
    }
  },

  launch(p) {
    return { mode: 'threadgroups', grid: [num(p, 'seq_len') * num(p, 'num_heads'), 1, 1], threadgroup: [TG, 1, 1], threadgroupMemory: [] };
  },

  reference(p, inputs) {
    const D = num(p, 'head_dim');
    const scale = attnScale(p);
    const r = attnScoresRef(
      inputs.q as Float32Array,
      inputs.k_cache as Float32Array,
      num(p, 'num_heads'),
      num(p, 'num_kv_heads'),
      D,
      num(p, 'seq_len'),
      num(p, 'seq_stride'),
      scale,
    );
    const rule: FloatRule = {
      kind: 'float',
      // Any summation order of D products: |err| ≤ (D+2)·u·Σ|q·k|·scale; +4u for the scale multiply and the store.
      atol: (D + 2) * U * r.maxAbsTermSum * scale,
      rtol: 4 * U,
      minCosine: 0.99999,
      maxRelMaxAbs: 1e-4,
      reason: 'f32 dot product of head_dim terms in any order: error ≤ (head_dim+2)·u·Σ|q·k|·scale, plus one rounding of the scale',
    };
    return {
      outputs: { scores: new Float32Array(r.values) },
      rules: { scores: rule },
      include: { scores: rowPrefix(num(p, 'seq_len'), num(p, 'seq_stride')) },
    };
  },

  cost(p) {
    const H = num(p, 'num_heads');
    const D = num(p, 'head_dim');
    const S = num(p, 'seq_len');
    const kvd = num(p, 'num_kv_heads') * D;
    // read Q (H·D) and the K cache once (S·kv_dim), write H·S scores, all f32
    const bytes = 4 * (H * D + S * kvd + H * S);
    // per score: D multiply-adds (2 flops each) and one multiply by scale
    const flops = H * S * (2 * D + 1);
    return { bytes, flops };
  },
};

// ---------------------------------------------------------------------------
// attn_softmax_batched
// ---------------------------------------------------------------------------

const SOFTMAX_SETS = [
  { name: 'normal', description: 'scores ~ N(0, 3²)' },
  { name: 'large', description: 'scores ~ N(0, 100²): most probabilities underflow' },
  { name: 'shifted', description: 'scores ~ ∓1e4 + N(0, 1) (even heads −1e4, odd +1e4): the max must be subtracted' },
  { name: 'ties', description: 'scores on a grid of 0.5, head 0 all equal (uniform 1/seq_len)' },
];
const ALL_SOFTMAX = SOFTMAX_SETS.map((s) => s.name);

function softmaxParams(heads: number, seqLen: number, seqStride: number): Params {
  return { num_heads: heads, seq_len: seqLen, seq_stride: seqStride };
}

export const attnSoftmax: KernelSpec = {
  name: 'attn-softmax',
  entry: 'attn_softmax_batched',
  shader: 'attention.metal',
  group: 'attention',
  description: 'In-place softmax of each head’s scores over [0, seq_len), one threadgroup of 256 threads per head',
  math: 'scores[h, p] = exp(s_p − max_q s_q) / Σ_q exp(s_q − max) over p, q < seq_len; the rest of each row is untouched',
  params: [P_HEADS, P_SEQ_LEN, P_SEQ_STRIDE],
  defaults: { num_heads: 32, seq_len: 100, seq_stride: 4096 },
  bench: { seq_len: 4096, seq_stride: 4096 },
  inputSets: SOFTMAX_SETS,
  buffers: [
    { index: 0, name: 'scores', kind: 'array', mslType: 'float', dtype: 'f32', access: 'readwrite', length: (p) => num(p, 'num_heads') * num(p, 'seq_stride') },
    { index: 1, name: 'seq_len', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'seq_len') },
    { index: 2, name: 'seq_stride', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'seq_stride') },
  ],
  threadgroup: [],

  cases(): KernelCase[] {
    const q3 = attnOf('qwen3-30b-a3b').heads;
    const gm = attnOf('gemma-4-26b-a4b').heads;
    const mx = attnOf('mixtral-8x7b').heads;
    return cross([
      ['qwen3-30b-a3b', softmaxParams(q3, 1, 1), ALL_SOFTMAX],
      ['qwen3-30b-a3b', softmaxParams(q3, 7, 64), ALL_SOFTMAX],
      ['qwen3-30b-a3b', softmaxParams(q3, 100, 128), ALL_SOFTMAX],
      ['qwen3-30b-a3b', softmaxParams(q3, 257, 260), ALL_SOFTMAX],
      ['gemma-4-26b-a4b', softmaxParams(gm, 100, 100), ALL_SOFTMAX],
      ['mixtral-8x7b', softmaxParams(mx, 33, 40), ALL_SOFTMAX],
      ['edge: seq_len 256 = threadgroup', softmaxParams(2, 256, 256), ALL_SOFTMAX],
      ['edge: seq_len 255, odd stride', softmaxParams(3, 255, 257), ALL_SOFTMAX],
      ['edge: seq_len 1000 (several per thread, not a multiple of 256)', softmaxParams(2, 1000, 1024), ALL_SOFTMAX],
      ['edge: 1 head, seq_len 2', softmaxParams(1, 2, 5), ALL_SOFTMAX],
    ]);
  },

  validate(p) {
    return validateSeq(p, false);
  },

  inputs(p, inputSet, rng): Tensors {
    const H = num(p, 'num_heads');
    const S = num(p, 'seq_len');
    const st = num(p, 'seq_stride');
    const scores = new Float32Array(H * st).fill(SOFTMAX_PAD);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < S; i++) {
        let v: number;
        switch (inputSet) {
          case 'normal':
            v = 3 * rng.normal();
            break;
          case 'large':
            v = 100 * rng.normal();
            break;
          case 'shifted':
            v = (h % 2 === 0 ? -1e4 : 1e4) + rng.normal();
            break;
          case 'ties':
            v = h === 0 ? 1.5 : Math.round(rng.normal() * 4) / 2;
            break;
          default:
            throw new Error(`unknown input set '${inputSet}'`);
        }
        scores[h * st + i] = v;
      }
    }
    return { scores };
  },

  launch(p) {
    return { mode: 'threadgroups', grid: [num(p, 'num_heads'), 1, 1], threadgroup: [TG, 1, 1], threadgroupMemory: [] };
  },

  reference(p, inputs) {
    const S = num(p, 'seq_len');
    const st = num(p, 'seq_stride');
    const out = attnSoftmaxRef(inputs.scores as Float32Array, num(p, 'num_heads'), S, st);
    return {
      outputs: { scores: new Float32Array(out) },
      rules: {
        scores: {
          kind: 'float',
          // exp (Metal fast math: ≤ 3+2|x| ulp) + a sum of seq_len positive terms + one division
          atol: 1e-8,
          rtol: 4e-6 + S * U,
          minCosine: 0.99999,
          maxRelMaxAbs: 1e-4,
          reason: 'f32 exp (fast math: 3+2|x| ulp, so ≤ 4e-6 relative where p ≥ 1e-7), a sum of seq_len positive terms (≤ seq_len·u) and a division',
        },
      },
      include: { scores: rowPrefix(S, st) },
    };
  },

  cost(p) {
    const n = num(p, 'num_heads') * num(p, 'seq_len');
    // read and write each score once (f32)
    const bytes = 8 * n;
    // per score: max, subtract, exp, add, multiply by 1/sum
    const flops = 5 * n;
    return { bytes, flops };
  },
};

// ---------------------------------------------------------------------------
// attn_values_batched
// ---------------------------------------------------------------------------

const VALUES_SETS = [
  { name: 'softmax', description: 'scores rows are softmax probabilities (of N(0, 2²)), V ~ N(0, 1)' },
  { name: 'normal', description: 'scores ~ N(0, 1) (signed), V ~ N(0, 1)' },
  { name: 'large', description: 'softmax scores, V ~ N(0, 1000²) with three outlier channels ×100' },
  { name: 'one-hot', description: 'each head’s scores are one-hot at a random position: out is that V row exactly' },
];
const ALL_VALUES = VALUES_SETS.map((s) => s.name);

function valuesParams(a: AttnShape, seqLen: number, seqStride: number): Params {
  return { num_heads: a.heads, num_kv_heads: a.kvHeads, head_dim: a.headDim, seq_len: seqLen, seq_stride: seqStride };
}

export const attnValues: KernelSpec = {
  name: 'attn-values',
  entry: 'attn_values_batched',
  shader: 'attention.metal',
  group: 'attention',
  description: 'Decode attention output scores·V, one thread per (head, dim) element, 256-thread threadgroups, GQA',
  math: 'out[h·head_dim + d] = Σ_{p<seq_len} scores[h·seq_stride + p] · V[p, h/(heads/kv_heads), d]',
  params: [P_HEADS, P_KV_HEADS, P_HEAD_DIM, P_SEQ_LEN, P_SEQ_STRIDE],
  defaults: { num_heads: 32, num_kv_heads: 4, head_dim: 128, seq_len: 100, seq_stride: 4096 },
  bench: { seq_len: 4096, seq_stride: 4096 },
  inputSets: VALUES_SETS,
  buffers: [
    { index: 0, name: 'scores', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'num_heads') * num(p, 'seq_stride') },
    {
      index: 1,
      name: 'v_cache',
      kind: 'array',
      mslType: 'float',
      dtype: 'f32',
      access: 'read',
      length: (p) => num(p, 'seq_len') * num(p, 'num_kv_heads') * num(p, 'head_dim'),
    },
    { index: 2, name: 'out', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => num(p, 'num_heads') * num(p, 'head_dim') },
    { index: 3, name: 'head_dim', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'head_dim') },
    { index: 4, name: 'kv_dim', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'num_kv_heads') * num(p, 'head_dim') },
    { index: 5, name: 'seq_len', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'seq_len') },
    { index: 6, name: 'seq_stride', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'seq_stride') },
    { index: 7, name: 'heads_per_kv', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'num_heads') / num(p, 'num_kv_heads') },
  ],
  threadgroup: [],

  cases(): KernelCase[] {
    const q3 = attnOf('qwen3-30b-a3b');
    const gm = attnOf('gemma-4-26b-a4b');
    const mx = attnOf('mixtral-8x7b');
    const q15 = attnOf('qwen1.5-moe-a2.7b');
    return cross([
      ['qwen3-30b-a3b', valuesParams(q3, 1, 1), ALL_VALUES],
      ['qwen3-30b-a3b', valuesParams(q3, 7, 64), ALL_VALUES],
      ['qwen3-30b-a3b', valuesParams(q3, 100, 128), ALL_VALUES],
      ['qwen3-30b-a3b', valuesParams(q3, 257, 300), ALL_VALUES],
      ['gemma-4-26b-a4b', valuesParams(gm, 7, 16), ALL_VALUES],
      ['gemma-4-26b-a4b', valuesParams(gm, 100, 128), ['softmax', 'large']],
      ['mixtral-8x7b', valuesParams(mx, 5, 8), ALL_VALUES],
      ['qwen1.5-moe-a2.7b', valuesParams(q15, 3, 3), ['softmax', 'one-hot']],
      // num_heads·head_dim not a multiple of 256: the last threadgroup is partly idle and must not write past `out`
      ['edge: 6 heads × head_dim 80 = 480 threads of 512', valuesParams({ heads: 6, kvHeads: 2, headDim: 80 }, 9, 11), ALL_VALUES],
      ['edge: 3 heads × head_dim 5, one kv head', valuesParams({ heads: 3, kvHeads: 1, headDim: 5 }, 4, 4), ALL_VALUES],
      ['edge: 1 head, head_dim 300', valuesParams({ heads: 1, kvHeads: 1, headDim: 300 }, 2, 3), ['softmax', 'one-hot']],
    ]);
  },

  validate(p) {
    return validateHeads(p) ?? validateSeq(p, true);
  },

  inputs(p, inputSet, rng): Tensors {
    const H = num(p, 'num_heads');
    const D = num(p, 'head_dim');
    const S = num(p, 'seq_len');
    const st = num(p, 'seq_stride');
    const kvd = num(p, 'num_kv_heads') * D;
    // Padding past seq_len is NaN: a kernel that reads it poisons its output.
    const scores = new Float32Array(H * st).fill(NaN);
    const softmaxRows = (): void => {
      const e = new Float64Array(S);
      for (let h = 0; h < H; h++) {
        let m = -Infinity;
        for (let i = 0; i < S; i++) {
          e[i] = 2 * rng.normal();
          m = Math.max(m, e[i] as number);
        }
        let s = 0;
        for (let i = 0; i < S; i++) {
          e[i] = Math.exp((e[i] as number) - m);
          s += e[i] as number;
        }
        for (let i = 0; i < S; i++) scores[h * st + i] = (e[i] as number) / s;
      }
    };
    let v: Float32Array;
    switch (inputSet) {
      case 'softmax':
        softmaxRows();
        v = normals(S * kvd, rng);
        break;
      case 'normal':
        for (let h = 0; h < H; h++) for (let i = 0; i < S; i++) scores[h * st + i] = rng.normal();
        v = normals(S * kvd, rng);
        break;
      case 'large': {
        softmaxRows();
        v = normals(S * kvd, rng, 1000);
        const outliers = [0, Math.floor(D / 2), D - 1];
        for (let r = 0; r < (S * kvd) / D; r++) for (const d of outliers) v[r * D + d] = (v[r * D + d] as number) * 100;
        break;
      }
      case 'one-hot':
        for (let h = 0; h < H; h++) {
          scores.fill(0, h * st, h * st + S);
          scores[h * st + rng.int(0, S)] = 1;
        }
        v = normals(S * kvd, rng);
        break;
      default:
        throw new Error(`unknown input set '${inputSet}'`);
    }
    return { scores, v_cache: v };
  },

  launch(p) {
    const threads = num(p, 'num_heads') * num(p, 'head_dim');
    return { mode: 'threadgroups', grid: [Math.ceil(threads / TG), 1, 1], threadgroup: [TG, 1, 1], threadgroupMemory: [] };
  },

  reference(p, inputs) {
    const S = num(p, 'seq_len');
    const r = attnValuesRef(
      inputs.scores as Float32Array,
      inputs.v_cache as Float32Array,
      num(p, 'num_heads'),
      num(p, 'num_kv_heads'),
      num(p, 'head_dim'),
      S,
      num(p, 'seq_stride'),
    );
    return {
      outputs: { out: new Float32Array(r.values) },
      rules: {
        out: {
          kind: 'float',
          atol: (S + 2) * U * r.maxAbsTermSum,
          rtol: 2 * U,
          minCosine: 0.99999,
          maxRelMaxAbs: 1e-4,
          reason: 'f32 dot product of seq_len terms in any order: error ≤ (seq_len+2)·u·Σ|score·v|',
        },
      },
    };
  },

  cost(p) {
    const H = num(p, 'num_heads');
    const D = num(p, 'head_dim');
    const S = num(p, 'seq_len');
    const kvd = num(p, 'num_kv_heads') * D;
    // read H·S scores and the V cache once (S·kv_dim), write H·D outputs, all f32
    const bytes = 4 * (H * S + S * kvd + H * D);
    // per output: S multiply-adds
    const flops = 2 * H * D * S;
    return { bytes, flops };
  },
};

// ---------------------------------------------------------------------------
// sigmoid_gate
// ---------------------------------------------------------------------------

const GATE_SETS = [
  { name: 'normal', description: 'x ~ N(0, 1), gate ~ N(0, 2²)' },
  { name: 'saturating', description: 'gate ~ N(0, 40²) with ±100 and ±88.8 (e^−g overflows f32), x ~ N(0, 10²)' },
  { name: 'large', description: 'x ~ N(0, 1) · 1e30, gate ~ N(0, 2²)' },
  { name: 'zeros', description: 'gate = 0 (x / 2 exactly), every fourth x = 0, the rest N(0, 1)' },
];

export const sigmoidGate: KernelSpec = {
  name: 'sigmoid-gate',
  entry: 'sigmoid_gate',
  shader: 'attention.metal',
  group: 'attention',
  description: 'Attention output gate x ← x·sigmoid(gate), in place, one thread per element, 256-thread threadgroups',
  math: 'x[i] = x[i] · 1/(1 + e^(−gate[i]))',
  params: [{ name: 'n_elements', flag: 'elements', description: 'elements (num_heads × head_dim of the gated attention output)', min: 1 }],
  defaults: { n_elements: 4096 },
  bench: { n_elements: 1 << 20 },
  inputSets: GATE_SETS,
  buffers: [
    { index: 0, name: 'x', kind: 'array', mslType: 'float', dtype: 'f32', access: 'readwrite', length: (p) => num(p, 'n_elements') },
    { index: 1, name: 'gate', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => num(p, 'n_elements') },
    { index: 2, name: 'dim', kind: 'scalar', mslType: 'uint', value: (p) => num(p, 'n_elements') },
  ],
  threadgroup: [],

  cases(): KernelCase[] {
    const q3 = attnOf('qwen3-30b-a3b');
    const q15 = attnOf('qwen1.5-moe-a2.7b');
    const sets = GATE_SETS.map((s) => s.name);
    return cross([
      ['qwen3-30b-a3b', { n_elements: q3.heads * q3.headDim }, sets],
      ['qwen1.5-moe-a2.7b', { n_elements: q15.heads * q15.headDim }, sets],
      ['edge: 1 element', { n_elements: 1 }, sets],
      ['edge: 255 elements (one partial threadgroup)', { n_elements: 255 }, sets],
      ['edge: 257 elements (one element past a threadgroup)', { n_elements: 257 }, sets],
      ['edge: 1000 elements', { n_elements: 1000 }, sets],
    ]);
  },

  validate(p) {
    const n = num(p, 'n_elements');
    if (n > MAX_ELEMS) return `n_elements = ${n} is too large (at most ${MAX_ELEMS})`;
    return null;
  },

  inputs(p, inputSet, rng): Tensors {
    const n = num(p, 'n_elements');
    const x = new Float32Array(n);
    const gate = new Float32Array(n);
    const special = [100, -100, 88.8, -88.8];
    for (let i = 0; i < n; i++) {
      switch (inputSet) {
        case 'normal':
          x[i] = rng.normal();
          gate[i] = 2 * rng.normal();
          break;
        case 'saturating':
          x[i] = 10 * rng.normal();
          gate[i] = i % 16 < special.length ? (special[i % 16] as number) : 40 * rng.normal();
          break;
        case 'large':
          x[i] = 1e30 * rng.normal();
          gate[i] = 2 * rng.normal();
          break;
        case 'zeros':
          x[i] = i % 4 === 0 ? 0 : rng.normal();
          gate[i] = 0;
          break;
        default:
          throw new Error(`unknown input set '${inputSet}'`);
      }
    }
    return { x, gate };
  },

  launch(p) {
    return { mode: 'threadgroups', grid: [Math.ceil(num(p, 'n_elements') / TG), 1, 1], threadgroup: [TG, 1, 1], threadgroupMemory: [] };
  },

  reference(_p, inputs) {
    const x = inputs.x as Float32Array;
    const out = sigmoidGateRef(x, inputs.gate as Float32Array);
    let maxX = 0;
    for (const v of x) maxX = Math.max(maxX, Math.abs(v));
    return {
      outputs: { x: new Float32Array(out) },
      rules: {
        x: {
          kind: 'float',
          atol: Math.max(1e-12 * maxX, 1e-37),
          rtol: 6e-6,
          minCosine: 0.99999,
          maxRelMaxAbs: 1e-5,
          reason: 'f32 exp (fast math: 3+2|g| ulp) feeds σ with relative error ≤ (6+2|g|)·2⁻²³ (≤ 6e-6 for |g| ≤ 20, where σ(g) > 2e-9; beyond, absolute)',
        },
      },
    };
  },

  cost(p) {
    const n = num(p, 'n_elements');
    // read x and gate, write x (f32)
    const bytes = 12 * n;
    // per element: exp, add, divide, multiply
    const flops = 4 * n;
    return { bytes, flops };
  },
};

export const ATTENTION_SPECS: KernelSpec[] = [attnScores, attnSoftmax, attnValues, sigmoidGate];
