/**
 * attn_softmax_batched (moeflux's gpu_attn_fuse, attention.metal): in-place
 * softmax of each head's scores over [0, seq_len), one threadgroup of 256 per
 * head. The padding past seq_len holds 1e30: a kernel that reads it ruins the row.
 */
import { attnSoftmaxRef } from '../reference/attention.js';
import { attnOf, P_HEADS, P_SEQ_LEN, P_SEQ_STRIDE, rowPrefix, validateSeq } from './common/attention.js';
import { f32InOut, uintArg } from './common/buffers.js';
import { cross, inputSets, setNames } from './common/cases.js';
import { groups } from './common/launch.js';
import { num, product } from './common/params.js';
import { floatRule, U } from './common/rules.js';
import { defineKernel, type KernelCase, type Params, type Tensors } from './spec.js';
import type { ModelShape } from './models.js';

/** Padding past seq_len in scores rows read by the softmax: reading it ruins the row. */
const SOFTMAX_PAD = 1e30;

const SOFTMAX_SETS = inputSets(`
  normal: scores ~ N(0, 3²)
  large: scores ~ N(0, 100²): most probabilities underflow
  shifted: scores ~ ∓1e4 + N(0, 1) (even heads −1e4, odd +1e4): the max must be subtracted
  ties: scores on a grid of 0.5, head 0 all equal (uniform 1/seq_len)
`);
const ALL_SOFTMAX = setNames(SOFTMAX_SETS);

function softmaxParams(heads: number, seqLen: number, seqStride: number): Params {
  return { num_heads: heads, seq_len: seqLen, seq_stride: seqStride };
}

export const attnSoftmax = defineKernel({
  name: 'attn-softmax', entry: 'attn_softmax_batched', shader: 'attention.metal', group: 'attention',
  description: 'In-place softmax of each head’s scores over [0, seq_len), one threadgroup of 256 threads per head',
  params: [P_HEADS, P_SEQ_LEN, P_SEQ_STRIDE],
  buffers: [f32InOut(0, 'scores', product('num_heads', 'seq_stride')), uintArg(1, 'seq_len'), uintArg(2, 'seq_stride')],
  math: 'scores[h, p] = exp(s_p − max_q s_q) / Σ_q exp(s_q − max) over p, q < seq_len; the rest of each row is untouched',
  defaults: { num_heads: 32, seq_len: 100, seq_stride: 4096 },
  bench: { seq_len: 4096, seq_stride: 4096 },
  presetParams: (m: ModelShape) => ({ num_heads: m.heads }),
  inputSets: SOFTMAX_SETS,
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
    return groups(num(p, 'num_heads'));
  },
  reference(p, inputs) {
    const S = num(p, 'seq_len');
    const st = num(p, 'seq_stride');
    const out = attnSoftmaxRef(inputs.scores as Float32Array, num(p, 'num_heads'), S, st);
    return {
      outputs: { scores: new Float32Array(out) },
      rules: {
        // exp (Metal fast math: ≤ 3+2|x| ulp) + a sum of seq_len positive terms + one division
        scores: floatRule(
          1e-8,
          4e-6 + S * U,
          1e-4,
          'f32 exp (fast math: 3+2|x| ulp, so ≤ 4e-6 relative where p ≥ 1e-7), a sum of seq_len positive terms (≤ seq_len·u) and a division',
        ),
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
});
