/**
 * RMS norm, one threadgroup per row (sum of squares, then apply), with f32 or
 * bf16 weights: out = x · rsqrt(mean(x²) + eps) · w (Hugging Face's
 * LlamaRMSNorm; llama.cpp's rms_norm followed by the weight multiply). The
 * weight is applied as given: Gemma-style (1 + w) weights are folded by the
 * host. Interface and launch: shaders/moe_norm_rope.metal.
 */
import { rmsNormRef } from '../reference/rms-norm.js';
import type { Rng } from '../util/rng.js';
import { arrayBuf, bf16Bits, casesOf, F32_U, finiteF32, inputSets, num, structBuf, unknownInputSet, widenBf16 } from './common/extra.js';
import type { KernelSpec, Params, Tensors } from './spec.js';

/** Threadgroup width: whole SIMD-groups, at most 256. */
function tgWidth(dim: number): number {
  return Math.min(256, Math.ceil(dim / 32) * 32);
}

const SETS = inputSets(
  ['normal', 'x ~ N(0, 1), w ~ 1 + N(0, 0.1²)'],
  ['large', '|x| log-uniform in [1, 1e15], random sign (squares up to 1e30; the sum must not overflow), w ~ N(0, 4²)'],
  ['outlier', "x ~ N(0, 1) with one element per row at ±1e4 (the activation outliers of LLMs): the mean is the outlier's"],
  ['tiny', 'x ~ N(0, 1)·1e-4: mean(x²) ≈ 1e-8 sits next to eps, which must be added inside the square root'],
  ['zeros', 'the first row all zeros (output 0 only through eps), then every third element 0; w 0 at every fifth column'],
);

const SHAPES: [string, Params][] = [
  ['qwen3-30b-a3b', { n_rows: 3, hidden: 2048, eps: 1e-6 }],
  ['mixtral-8x7b', { n_rows: 2, hidden: 4096, eps: 1e-5 }],
  ['gemma-4-26b-a4b', { n_rows: 2, hidden: 2816, eps: 1e-6 }],
  ['edge: 1 element', { n_rows: 2, hidden: 1, eps: 1e-6 }],
  ['edge: non-power-of-two, below one SIMD-group', { n_rows: 3, hidden: 27, eps: 1e-5 }],
  ['edge: one element past 256', { n_rows: 2, hidden: 257, eps: 1e-6 }],
];

function xValue(set: string, rng: Rng, row: number, j: number, spike: number): number {
  switch (set) {
    case 'normal':
      return rng.normal();
    case 'large':
      return (rng.next() < 0.5 ? -1 : 1) * 10 ** rng.uniform(0, 15);
    case 'outlier':
      return j === spike ? (rng.next() < 0.5 ? -1e4 : 1e4) : rng.normal();
    case 'tiny':
      return 1e-4 * rng.normal();
    case 'zeros':
      return row === 0 || j % 3 === 0 ? 0 : rng.normal();
    default:
      return unknownInputSet(set);
  }
}

function wValue(set: string, rng: Rng, j: number): number {
  if (set === 'large') return 4 * rng.normal();
  if (set === 'zeros' && j % 5 === 0) return 0;
  return 1 + 0.1 * rng.normal();
}

const elems = (p: Params): number => num(p, 'n_rows') * num(p, 'hidden');

function rmsNormSpec(bf16: boolean): KernelSpec {
  return {
    ...(bf16 ? { name: 'rms-norm-bf16w', entry: 'rms_norm_bf16w_f32' } : { name: 'rms-norm', entry: 'rms_norm_f32' }),
    ...{ shader: 'moe_norm_rope.metal', group: 'norm' },
    description: `RMS norm of f32 rows with ${bf16 ? 'bf16' : 'f32'} weights: one threadgroup per row, sum of squares then apply`,
    math: `out[r, j] = x[r, j] · rsqrt(Σ_j x[r, j]² / dim + eps) · w[j]${bf16 ? ' (w widened from bf16)' : ''}`,
    params: [
      { name: 'n_rows', flag: 'rows', description: 'rows (tokens) to normalise', min: 1 },
      { name: 'hidden', flag: 'hidden', description: 'hidden size (model dimension)', min: 1 },
      { name: 'eps', flag: 'eps', description: 'epsilon added to mean(x²) (an f32 struct field, > 0)', kind: 'float', min: 0 },
    ],
    defaults: { n_rows: 4, hidden: 2048, eps: 1e-6 },
    bench: { n_rows: 512 },
    inputSets: SETS,
    buffers: [
      arrayBuf(0, 'x', 'float', 'read', elems),
      arrayBuf(1, 'w', bf16 ? 'bfloat' : 'float', 'read', (p) => num(p, 'hidden')),
      arrayBuf(2, 'out', 'float', 'write', elems),
      structBuf(3, 'RmsNormParams', [['n_rows', 'uint', (p) => num(p, 'n_rows')], ['dim', 'uint', (p) => num(p, 'hidden')], ['eps', 'float', (p) => num(p, 'eps')]]),
    ],
    threadgroup: [],
    cases: () => casesOf(SHAPES, SETS),
    validate(p) {
      const eps = p.eps as number;
      if (!(Math.fround(eps) > 0)) return `eps = ${eps} must be a positive float32 (0 divides by zero on an all-zero row)`;
      if (elems(p) > 2 ** 28) return `n_rows × hidden = ${elems(p)} is too large (at most 2^28)`;
      return finiteF32('eps', eps);
    },
    inputs(p, set, rng): Tensors {
      const rows = p.n_rows as number;
      const dim = p.hidden as number;
      const x = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        const spike = rng.int(0, dim);
        for (let j = 0; j < dim; j++) x[r * dim + j] = xValue(set, rng, r, j, spike);
      }
      const wf = Float32Array.from({ length: dim }, (_, j) => wValue(set, rng, j));
      return { x, w: bf16 ? bf16Bits(wf) : wf };
    },
    launch: (p) => ({ mode: 'threadgroups', grid: [num(p, 'n_rows'), 1, 1], threadgroup: [tgWidth(num(p, 'hidden')), 1, 1], threadgroupMemory: [] }),
    reference(p, inputs) {
      const w = bf16 ? widenBf16(inputs.w as Uint16Array) : (inputs.w as Float32Array);
      const out = rmsNormRef(inputs.x as Float32Array, w, p.n_rows as number, p.hidden as number, Math.fround(p.eps as number));
      // f32 sum of dim/tg + 5 + 8 rounded positive terms (relative error ≤ 32u of a sum, halved by
      // the square root), the division, rsqrt (a few ulp on GPUs) and two products: 64u relative.
      const reason = 'f32 sum of positive squares (no cancellation), rsqrt to a few ulp and two products: 64u relative; atol only under subnormals';
      const rule = { kind: 'float', atol: 1e-35, rtol: 64 * F32_U, minCosine: 0.99999, maxRelMaxAbs: 1e-5, reason } as const;
      return { outputs: { out: new Float32Array(out) }, rules: { out: rule } };
    },
    // read x and w, write out; per element a square-add, ·rsqrt and ·w (4 flops), per row mean + eps + rsqrt (3)
    cost: (p) => ({ bytes: elems(p) * 8 + num(p, 'hidden') * (bf16 ? 2 : 4), flops: 4 * elems(p) + 3 * num(p, 'n_rows') }),
  };
}

export const rmsNorm = rmsNormSpec(false);
export const rmsNormBf16w = rmsNormSpec(true);
