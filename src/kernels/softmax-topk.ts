/** Fused softmax + top-k + renormalise: MoE routing (mlx-native's moe_softmax_topk_f32). */
import { probsTie, softmaxTopkRef } from '../reference/softmax-topk.js';
import { routingPreset } from './common/presets.js';
import { defineKernel, type KernelCase, type Params, type Tensors } from './spec.js';
import type { Rng } from '../util/rng.js';
import { inputSets } from './common/cases.js';

const MAX_TOP_K = 64;
const TG_CAP = 128;

function tgSize(p: Params): number {
  return Math.min(p.n_experts as number, TG_CAP);
}

/** Shapes of real routers (fixtures/models.json) and edge cases. */
const SHAPES: [origin: string, tokens: number, experts: number, topK: number][] = [
  ['qwen3-30b-a3b', 4, 128, 8],
  ['gemma-4-26b-a4b', 3, 128, 8],
  ['qwen1.5-moe-a2.7b', 5, 60, 4],
  ['mixtral-8x7b', 6, 8, 2],
  ['deepseek-v2-lite', 3, 64, 6],
  ['edge: 1 token', 1, 128, 8],
  ['edge: 1 expert', 2, 1, 1],
  ['edge: top_k = n_experts', 2, 3, 3],
  ['edge: odd sizes', 3, 33, 7],
  ['edge: tg cap + 1', 2, 129, 64],
  ['edge: 512 experts', 2, 512, 64],
  ['edge: non-power-of-two', 2, 200, 17],
  ['edge: many tokens', 64, 96, 8],
];

const INPUT_SETS = inputSets(`
  normal: logits ~ N(0, 2²)
  large: large magnitudes: logits ~ N(0, 300²) (most probabilities underflow)
  shifted: logits ~ -1e4 + N(0,1): stable softmax must subtract the max
  ties: logits on a grid of 0.5: many exact ties
  zeros: all logits 0: every expert ties
`);

export const softmaxTopk = defineKernel({
  name: 'softmax-topk', entry: 'moe_softmax_topk_f32', shader: 'moe_softmax_topk.metal', group: 'routing',
  description: 'Fused softmax over experts, top-k selection and renormalisation, one threadgroup per token',
  math: 'p = softmax(logits); ids = top-k of p (descending, ties to lower index); w = p_ids / Σ p_ids',
  params: [
    { name: 'n_tokens', flag: 'tokens', description: 'tokens (rows of logits)', min: 1 },
    { name: 'n_experts', flag: 'experts', description: 'experts (logits per token)', min: 1 },
    { name: 'top_k', flag: 'top-k', description: 'experts selected per token', min: 1, max: MAX_TOP_K },
  ],
  buffers: [
    {
      index: 0,
      name: 'params',
      kind: 'struct',
      mslType: 'MoeSoftmaxTopkParams',
      fields: [
        { name: 'n_tokens', type: 'uint', value: (p) => p.n_tokens as number },
        { name: 'n_experts', type: 'uint', value: (p) => p.n_experts as number },
        { name: 'top_k', type: 'uint', value: (p) => p.top_k as number },
        { name: '_pad', type: 'float', value: () => 0 },
      ],
    },
    { index: 1, name: 'logits', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => (p.n_tokens as number) * (p.n_experts as number) },
    { index: 2, name: 'ids', kind: 'array', mslType: 'uint', dtype: 'u32', access: 'write', length: (p) => (p.n_tokens as number) * (p.top_k as number) },
    { index: 3, name: 'weights', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => (p.n_tokens as number) * (p.top_k as number) },
  ],
  threadgroup: [{ index: 0, name: 'shmem', bytes: (p) => (2 * tgSize(p) + (p.n_experts as number)) * 4 }],
  defaults: { n_tokens: 4, n_experts: 128, top_k: 8 },
  bench: { n_tokens: 4096 },
  presetParams: routingPreset,
  inputSets: INPUT_SETS,
  cases(): KernelCase[] {
    const out: KernelCase[] = [];
    for (const [origin, n_tokens, n_experts, top_k] of SHAPES) {
      for (const s of INPUT_SETS) out.push({ params: { n_tokens, n_experts, top_k }, inputSet: s.name, origin });
    }
    return out;
  },
  validate(p) {
    const { n_tokens: t, n_experts: e, top_k: k } = p as { n_tokens: number; n_experts: number; top_k: number };
    if (e > 8192) return `n_experts = ${e} is above 8192: the threadgroup memory (${(2 * 128 + e) * 4} bytes) would exceed 32 KiB`;
    if (k > e) return `top_k = ${k} must not exceed n_experts = ${e}`;
    if (k > MAX_TOP_K) return `top_k = ${k} is above the kernel's limit of ${MAX_TOP_K}`;
    if (t * e > 256 * 1024 * 1024) return `n_tokens × n_experts = ${t * e} logits is too large`;
    return null;
  },
  inputs(p, inputSet, rng: Rng): Tensors {
    const n = (p.n_tokens as number) * (p.n_experts as number);
    const logits = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      switch (inputSet) {
        case 'normal':
          logits[i] = 2 * rng.normal();
          break;
        case 'large':
          logits[i] = 300 * rng.normal();
          break;
        case 'shifted':
          logits[i] = -1e4 + rng.normal();
          break;
        case 'ties':
          logits[i] = Math.round(rng.normal() * 4) / 2;
          break;
        case 'zeros':
          logits[i] = 0;
          break;
        default:
          throw new Error(`unknown input set '${inputSet}'`);
      }
    }
    return { logits };
  },
  launch(p) {
    return {
      mode: 'threadgroups',
      grid: [p.n_tokens as number, 1, 1],
      threadgroup: [tgSize(p), 1, 1],
      threadgroupMemory: [(2 * tgSize(p) + (p.n_experts as number)) * 4],
    };
  },
  reference(p, inputs) {
    const nT = p.n_tokens as number;
    const nE = p.n_experts as number;
    const k = p.top_k as number;
    const r = softmaxTopkRef(inputs.logits as Float32Array, nT, nE, k);
    const probOf = (i: number, id: number): number => {
      const t = Math.floor(i / k);
      return id < nE ? (r.probs[t * nE + id] as number) : NaN;
    };
    return {
      outputs: { ids: r.ids, weights: new Float32Array(r.weights) },
      rules: {
        ids: {
          kind: 'exact',
          reason: 'expert ids are integers; ids whose probabilities tie may come in either order',
          tieOk: (i, got, expected) => got < nE && probsTie(probOf(i, got), probOf(i, expected)),
          validate: (got) => {
            for (let t = 0; t < nT; t++) {
              const seen = new Set<number>();
              for (let j = 0; j < k; j++) {
                const id = got[t * k + j] as number;
                if (id >= nE) return `token ${t}: id ${id} out of range (n_experts = ${nE})`;
                if (seen.has(id)) return `token ${t}: expert ${id} selected twice`;
                seen.add(id);
              }
            }
            return null;
          },
        },
        weights: {
          kind: 'float',
          atol: 1e-6,
          rtol: 1e-5,
          minCosine: 0.99999,
          maxRelMaxAbs: 1e-4,
          reason: 'f32 exp, sum and two divisions: a few ulp of error (GPU exp is within 4 ulp)',
        },
      },
    };
  },
  cost(p) {
    const t = p.n_tokens as number;
    const e = p.n_experts as number;
    const k = p.top_k as number;
    // read logits; write ids and weights
    const bytes = t * e * 4 + t * k * 8;
    // per logit: max, subtract, exp, accumulate, (scale of selected only); per selected: sum + divide
    const flops = t * (4 * e + 3 * k);
    return { bytes, flops };
  },
});
