/**
 * attn_values_batched (moeflux's gpu_attn_fuse, attention.metal): decode
 * attention output scores·V with GQA, one thread per (head, dim) element in
 * threadgroups of 256. Scores padding past seq_len is NaN.
 */
import { attnValuesRef } from '../reference/attention.js';
import { cacheArgs, cacheDims, cacheParams, decodeRows, headsPerKv, normals, P_HEAD_DIM, P_HEADS, P_KV_HEADS, P_SEQ_LEN, P_SEQ_STRIDE, validateHeads, validateSeq } from './common/attention.js';
import { f32In, f32Out } from './common/buffers.js';
import { cross, inputSets, setNames } from './common/cases.js';
import { groups, TG } from './common/launch.js';
import { num, product } from './common/params.js';
import { headsPreset } from './common/presets.js';
import { floatRule, U } from './common/rules.js';
import { defineKernel, type KernelCase, type Tensors } from './spec.js';

const VALUES_SETS = inputSets(`
  softmax: scores rows are softmax probabilities (of N(0, 2²)), V ~ N(0, 1)
  normal: scores ~ N(0, 1) (signed), V ~ N(0, 1)
  large: softmax scores, V ~ N(0, 1000²) with three outlier channels ×100
  one-hot: each head’s scores are one-hot at a random position: out is that V row exactly
`);
const ALL_VALUES = setNames(VALUES_SETS);

export const attnValues = defineKernel({
  name: 'attn-values', entry: 'attn_values_batched', shader: 'attention.metal', group: 'attention',
  description: 'Decode attention output scores·V, one thread per (head, dim) element, 256-thread threadgroups, GQA',
  params: [P_HEADS, P_KV_HEADS, P_HEAD_DIM, P_SEQ_LEN, P_SEQ_STRIDE],
  buffers: [
    f32In(0, 'scores', product('num_heads', 'seq_stride')),
    f32In(1, 'v_cache', product('seq_len', 'num_kv_heads', 'head_dim')),
    f32Out(2, 'out', product('num_heads', 'head_dim')),
    ...cacheArgs(),
    headsPerKv(7),
  ],
  math: 'out[h·head_dim + d] = Σ_{p<seq_len} scores[h·seq_stride + p] · V[p, h/(heads/kv_heads), d]',
  defaults: { num_heads: 32, num_kv_heads: 4, head_dim: 128, seq_len: 100, seq_stride: 4096 },
  bench: { seq_len: 4096, seq_stride: 4096 },
  presetParams: headsPreset,
  inputSets: VALUES_SETS,
  cases(): KernelCase[] {
    const all = ALL_VALUES;
    return cross([
      ...decodeRows(cacheParams, [all, all, all, all, all, ['softmax', 'large'], all, ['softmax', 'one-hot']]),
      // num_heads·head_dim not a multiple of 256: the last threadgroup is partly idle and must not write past `out`
      ['edge: 6 heads × head_dim 80 = 480 threads of 512', cacheParams({ heads: 6, kvHeads: 2, headDim: 80 }, 9, 11), ALL_VALUES],
      ['edge: 3 heads × head_dim 5, one kv head', cacheParams({ heads: 3, kvHeads: 1, headDim: 5 }, 4, 4), ALL_VALUES],
      ['edge: 1 head, head_dim 300', cacheParams({ heads: 1, kvHeads: 1, headDim: 300 }, 2, 3), ['softmax', 'one-hot']],
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
    return groups(Math.ceil(threads / TG));
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
        out: floatRule((S + 2) * U * r.maxAbsTermSum, 2 * U, 1e-4, 'f32 dot product of seq_len terms in any order: error ≤ (seq_len+2)·u·Σ|score·v|'),
      },
    };
  },
  cost(p) {
    const { H, D, S, kvd } = cacheDims(p);
    // read H·S scores and the V cache once (S·kv_dim), write H·D outputs, all f32
    const bytes = 4 * (H * S + S * kvd + H * D);
    // per output: S multiply-adds
    const flops = 2 * H * D * S;
    return { bytes, flops };
  },
});
