/**
 * MoE combine into the residual stream: out = res + Σ_k w·y, and the scaled
 * form out = res + scale·Σ_k w·y (DeepSeek-V2/V3's routed_scaling_factor,
 * applied to the experts' sum only). Interface and launch:
 * shaders/moe_residual.metal.
 */
import { moeCombineRef } from '../reference/residual.js';
import type { Rng } from '../util/rng.js';
import { arrayBuf, boundRule, casesOf, F32_U, finiteF32, inputSets, num, structBuf, threads256, unknownInputSet } from './common/extra.js';
import type { FieldType } from './pack.js';
import type { KernelSpec, ParamDef, Params, Tensors } from './spec.js';

const SETS = inputSets(
  ['normal', 'y ~ N(0, 1), w renormalised top-k weights (positive, sum 1), res ~ N(0, 1)'],
  ['large', "y ~ N(0, 1e4²), res ~ N(0, 1e6²): the residual dominates, the experts' sum must still land"],
  ['cancel', "res = −(f32 experts' sum) per element: results at the rounding noise, judged against Σ|terms|"],
  ['zeros', 'w 0 for the last slot of each token, y 0 at every fourth element, res 0 for the first token'],
);

const P: ParamDef[] = [
  { name: 'n_tokens', flag: 'tokens', description: 'tokens', min: 1 },
  { name: 'top_k', flag: 'top-k', description: 'expert slots per token (top-k)', min: 1 },
  { name: 'hidden', flag: 'hidden', description: 'hidden size (model dimension)', min: 1 },
];

function weights(set: string, rng: Rng, T: number, K: number): Float32Array {
  const w = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    const raw = Array.from({ length: K }, (_, k) => (set === 'zeros' && k === K - 1 ? 0 : rng.uniform(0.05, 1)));
    const sum = raw.reduce((a, b) => a + b, 0);
    raw.forEach((v, k) => (w[t * K + k] = sum > 0 ? v / sum : 0));
  }
  return w;
}

/** Shapes, with the scale the scaled spec uses for each and where it comes from. */
const BASE_SHAPES: [string, Params, number, string][] = [
  ['qwen3-30b-a3b', { n_tokens: 3, top_k: 8, hidden: 2048 }, 2.5, "DeepSeek-V3's routed_scaling_factor"],
  ['deepseek-v2-lite', { n_tokens: 2, top_k: 6, hidden: 2048 }, 1, 'its routed_scaling_factor'],
  ['edge: 1 token, 1 slot, 1 element', { n_tokens: 1, top_k: 1, hidden: 1 }, 16, "DeepSeek-V2's routed_scaling_factor"],
  ['edge: non-power-of-two, partial threadgroup', { n_tokens: 3, top_k: 3, hidden: 257 }, 16, "DeepSeek-V2's routed_scaling_factor"],
];

function combineSpec(scaled: boolean): KernelSpec {
  const scaleOf = (p: Params): number => (scaled ? (p.scale as number) : 1);
  const fields = P.map((d): [string, FieldType, (p: Params) => number] => [d.name, 'uint', (p) => num(p, d.name)]);
  if (scaled) fields.push(['scale', 'float', (p) => num(p, 'scale')]);
  const out = (p: Params): number => (p.n_tokens as number) * (p.hidden as number);
  const slots = (p: Params): number => (p.n_tokens as number) * (p.top_k as number);
  const shapes: [string, Params][] = BASE_SHAPES.map(([o, p, s, why]) => [scaled ? `${o}${o.startsWith('edge') ? ',' : ':'} scale ${s} (${why})` : o, scaled ? { ...p, scale: s } : p]);
  return {
    ...(scaled ? { name: 'moe-combine-scaled', entry: 'moe_combine_residual_scaled_f32' } : { name: 'moe-combine', entry: 'moe_combine_residual_f32' }),
    ...{ shader: 'moe_residual.metal', group: 'ffn' },
    description: scaled ? 'Weighted sum of the routed experts\' outputs, scaled, added to the residual' : 'Weighted sum of the routed experts\' outputs added to the residual',
    math: scaled ? 'out[t, d] = res[t, d] + scale · Σ_k w[t, k] · y[t, k, d] (scale on the experts only)' : 'out[t, d] = res[t, d] + Σ_k w[t, k] · y[t, k, d]',
    hasTopK: true,
    params: scaled ? [...P, { name: 'scale', flag: 'routed-scale', description: 'routed scaling factor (an f32 struct field)', kind: 'float' }] : P,
    defaults: (shapes[0] as [string, Params])[1],
    bench: { n_tokens: 512 },
    inputSets: SETS,
    buffers: [
      arrayBuf(0, 'y', 'float', 'read', (p) => slots(p) * num(p, 'hidden')),
      arrayBuf(1, 'w', 'float', 'read', slots),
      arrayBuf(2, 'res', 'float', 'read', out),
      arrayBuf(3, 'out', 'float', 'write', out),
      structBuf(4, scaled ? 'MoeCombineScaledParams' : 'MoeCombineParams', fields),
    ],
    threadgroup: [],
    cases: () => casesOf(shapes, SETS),
    validate(p) {
      if (slots(p) * (p.hidden as number) > 2 ** 28) return `n_tokens × top_k × hidden = ${slots(p) * (p.hidden as number)} is too large (at most 2^28)`;
      return scaled ? finiteF32('scale', p.scale as number) : null;
    },
    inputs(p, set, rng): Tensors {
      const T = p.n_tokens as number;
      const K = p.top_k as number;
      const H = p.hidden as number;
      if (!['normal', 'large', 'cancel', 'zeros'].includes(set)) unknownInputSet(set);
      const ys = set === 'large' ? 1e4 : 1;
      const y = Float32Array.from({ length: T * K * H }, (_, i) => (set === 'zeros' && i % 4 === 0 ? 0 : ys * rng.normal()));
      const w = weights(set, rng, T, K);
      const res = new Float32Array(T * H);
      const s = Math.fround(scaleOf(p));
      for (let t = 0; t < T; t++) {
        for (let d = 0; d < H; d++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc = Math.fround(acc + Math.fround((w[t * K + k] as number) * (y[(t * K + k) * H + d] as number)));
          res[t * H + d] = set === 'cancel' ? -Math.fround(s * acc) : set === 'large' ? 1e6 * rng.normal() : set === 'zeros' && t === 0 ? 0 : rng.normal();
        }
      }
      return { y, w, res };
    },
    launch: (p) => threads256(p.hidden as number, p.n_tokens as number),
    reference(p, inputs) {
      const K = p.top_k as number;
      const r = moeCombineRef(inputs.y as Float32Array, inputs.w as Float32Array, inputs.res as Float32Array, p.n_tokens as number, K, p.hidden as number, Math.fround(scaleOf(p)));
      // K fma steps, the scale product and the residual add, each rounding once: (K + 3)·u·Σ|terms|
      const bounds = r.absTermSum.map((s) => (K + 3) * F32_U * s);
      return {
        outputs: { out: new Float32Array(r.values) },
        rules: { out: boundRule(r.values, bounds, 0.9999, 1e-3, 'f32 sum of top_k products, the scale and the residual: (top_k + 3)·u·Σ|terms| per element') },
      };
    },
    cost(p) {
      const o = out(p);
      // read y, w, res; write out; per output top_k multiply-adds and the residual add (+ the scale)
      return { bytes: 4 * (slots(p) * (p.hidden as number) + slots(p) + 2 * o), flops: o * (2 * (p.top_k as number) + 1 + (scaled ? 1 : 0)) };
    },
  };
}

export const moeCombine = combineSpec(false);
export const moeCombineScaled = combineSpec(true);
