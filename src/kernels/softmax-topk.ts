/** Fused softmax + top-k + renormalise: MoE routing (mlx-native's moe_softmax_topk_f32). */
import { probsTie, softmaxTopkRef } from '../reference/softmax-topk.js';
import { f32In, f32Out, paramStruct, u32Out } from './common/buffers.js';
import { P_LOGIT_EXPERTS, P_LOGIT_TOKENS, P_TOP_K, product } from './common/params.js';
import { routingPreset } from './common/presets.js';
import { defineKernel, type Params, type Tensors } from './spec.js';
import type { Rng } from '../util/rng.js';
import { cross, inputSets, modelOf, setNames, SWEEP_MODELS } from './common/cases.js';

const MAX_TOP_K = 64;
const TG_CAP = 128;

function tgSize(p: Params): number {
  return Math.min(p.n_experts as number, TG_CAP);
}

/** Shapes of real routers (fixtures/models.json) and edge cases. */
const SHAPES: [origin: string, tokens: number, experts: number, topK: number][] = [
  ...SWEEP_MODELS.map((key, i): [string, number, number, number] => [key, [4, 3, 5, 6, 3][i] as number, modelOf(key).experts, modelOf(key).top_k]),
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
  params: [P_LOGIT_TOKENS, P_LOGIT_EXPERTS, { ...P_TOP_K, description: 'experts selected per token', max: MAX_TOP_K }],
  buffers: [
    paramStruct(0, 'MoeSoftmaxTopkParams', ['n_tokens', 'n_experts', 'top_k', ['_pad', () => 0, 'float']]),
    f32In(1, 'logits', product('n_tokens', 'n_experts')),
    u32Out(2, 'ids', product('n_tokens', 'top_k')),
    f32Out(3, 'weights', product('n_tokens', 'top_k')),
  ],
  threadgroup: [{ index: 0, name: 'shmem', bytes: (p) => (2 * tgSize(p) + (p.n_experts as number)) * 4 }],
  math: 'p = softmax(logits); ids = top-k of p (descending, ties to lower index); w = p_ids / Σ p_ids',
  defaults: { n_tokens: 4, n_experts: 128, top_k: 8 },
  bench: { n_tokens: 4096 },
  presetParams: routingPreset,
  inputSets: INPUT_SETS,
  cases: () => cross(SHAPES.map(([origin, n_tokens, n_experts, top_k]) => [origin, { n_tokens, n_experts, top_k }, setNames(INPUT_SETS)])),
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
