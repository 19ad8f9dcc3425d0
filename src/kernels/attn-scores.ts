/**
 * attn_scores_batched (moeflux's gpu_attn_fuse, attention.metal): decode
 * attention scores Q·Kᵀ·scale with GQA, one threadgroup of 256 per
 * (position, head). Scores rows are seq_stride floats apart; only [0, seq_len)
 * of each row is written (the rest is poisoned with NaN by the inputs).
 */
import { attnScoresRef } from '../reference/attention.js';
import { attnOf, attnScale, cacheArgs, cacheDims, cacheParams, decodeRows, headsPerKv, normals, P_HEAD_DIM, P_HEADS, P_KV_HEADS, P_SCALE_DIM, P_SEQ_LEN, P_SEQ_STRIDE, rowPrefix, validateHeads, validateSeq, type AttnShape } from './common/attention.js';
import { f32In, f32Out, uintArg } from './common/buffers.js';
import { cross, inputSets, setNames } from './common/cases.js';
import { groups } from './common/launch.js';
import { num, param, product } from './common/params.js';
import { headsPreset } from './common/presets.js';
import { floatRule, U } from './common/rules.js';
import { defineKernel, type KernelCase, type Params, type Tensors } from './spec.js';

const SCORES_SETS = inputSets(`
  normal: Q, K ~ N(0, 1)
  large: Q, K ~ N(0, 30²) with three outlier channels per head ×1000 (dot products ~1e9)
  integers: Q, K small integers in [-4, 4]: every dot product is exact in f32, only the scale rounds
  zeros: Q of even heads all zero, K of position 0 all zero (scores exactly 0), the rest N(0, 1)
`);
const ALL_SCORES = setNames(SCORES_SETS);

function scoresParams(a: AttnShape, seqLen: number, seqStride: number, scaleDim = a.headDim): Params {
  return { ...cacheParams(a, seqLen, seqStride), scale_dim: scaleDim };
}

export const attnScores = defineKernel({
  name: 'attn-scores', entry: 'attn_scores_batched', shader: 'attention.metal', group: 'attention',
  description: 'Decode attention scores Q·Kᵀ·scale for every (position, head), one threadgroup of 256 threads each, GQA',
  params: [P_HEADS, P_KV_HEADS, P_HEAD_DIM, P_SEQ_LEN, P_SEQ_STRIDE, P_SCALE_DIM],
  buffers: [
    f32In(0, 'q', product('num_heads', 'head_dim')),
    f32In(1, 'k_cache', product('seq_len', 'num_kv_heads', 'head_dim')),
    f32Out(2, 'scores', product('num_heads', 'seq_stride')),
    ...cacheArgs(),
    { index: 7, name: 'scale', kind: 'scalar', mslType: 'float', value: attnScale },
    headsPerKv(8),
    // num_seq_tgs: threadgroups per head; the host sets it to seq_len.
    uintArg(9, 'num_seq_tgs', param('seq_len')),
  ],
  math: 'scores[h·seq_stride + p] = scale · Σ_d Q[h,d]·K[p, h/(heads/kv_heads), d] for p < seq_len (rest of the row unwritten)',
  defaults: { num_heads: 32, num_kv_heads: 4, head_dim: 128, seq_len: 7, seq_stride: 4096, scale_dim: 128 },
  bench: { seq_len: 4096, seq_stride: 4096 },
  presetParams: headsPreset,
  inputSets: SCORES_SETS,
  cases(): KernelCase[] {
    const q3 = attnOf('qwen3-30b-a3b');
    const gm = attnOf('gemma-4-26b-a4b');
    const all = ALL_SCORES;
    return cross([
      ...decodeRows(scoresParams, [all, all, all, ['normal'], all, ['normal', 'large'], all, ['normal']]),
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
    const { H, D, S, kvd } = cacheDims(p);
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
    return groups(num(p, 'seq_len') * num(p, 'num_heads'));
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
    // Any summation order of D products: |err| ≤ (D+2)·u·Σ|q·k|·scale; +4u for the scale multiply and the store.
    const rule = floatRule(
      (D + 2) * U * r.maxAbsTermSum * scale,
      4 * U,
      1e-4,
      'f32 dot product of head_dim terms in any order: error ≤ (head_dim+2)·u·Σ|q·k|·scale, plus one rounding of the scale',
    );
    return {
      outputs: { scores: new Float32Array(r.values) },
      rules: { scores: rule },
      include: { scores: rowPrefix(num(p, 'seq_len'), num(p, 'seq_stride')) },
    };
  },
  cost(p) {
    const { H, D, S, kvd } = cacheDims(p);
    // read Q (H·D) and the K cache once (S·kv_dim), write H·S scores, all f32
    const bytes = 4 * (H * D + S * kvd + H * S);
    // per score: D multiply-adds (2 flops each) and one multiply by scale
    const flops = H * S * (2 * D + 1);
    return { bytes, flops };
  },
});
