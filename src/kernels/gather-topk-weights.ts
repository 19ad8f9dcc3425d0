/** moe_gather_topk_weights (moe_dispatch.metal): gather, renormalise and scale the top_k routing weights (one thread). */
import { gatherTopkRef, maxOf } from '../reference/ffn.js';
import { f32In, f32Out, paramStruct, u32In, u32Out } from './common/buffers.js';
import { type CaseRow, cross, inputSets, modelOf, setNames, SWEEP_MODELS, tooLarge, unknownSet } from './common/cases.js';
import { num, P_EXPERTS, P_TOP_K, param } from './common/params.js';
import { routingPreset } from './common/presets.js';
import { U } from './common/rules.js';
import { defineKernel, type KernelCase, type Tensors } from './spec.js';

/** moe_gather_topk_weights keeps the selected probabilities in a float[8]. */
const GATHER_MAX_TOP_K = 8;

const GATHER_SETS = inputSets(`
  softmax: probs = softmax of N(0, 2²) logits, order = argsort descending, scale ~ U(0.5, 2)
  ties: probs on 3 levels (many equal), order = a stable descending sort, scale ~ U(0.5, 2)
  zeros: all probs 0: the sum is 0 and every weight must be 0 (no 0/0)
  signed-scale: softmax probs, per-expert scale ~ ±N(0, 1e3²) (negative and large)
  unsorted: order is a random permutation (the kernel must gather what it is given, not re-sort)
`);

export const gatherTopkWeights = defineKernel({
  name: 'gather-topk-weights', entry: 'moe_gather_topk_weights', shader: 'moe_dispatch.metal', group: 'routing',
  description: 'Gather the first top_k experts of a descending order, renormalise their probabilities and apply the per-expert scale (one thread)',
  params: [P_EXPERTS, { ...P_TOP_K, max: GATHER_MAX_TOP_K }],
  buffers: [
    f32In(0, 'softmax_probs', param('n_experts')),
    u32In(1, 'sorted_indices', param('n_experts')),
    f32In(2, 'per_expert_scale', param('n_experts')),
    u32Out(3, 'out_expert_ids', param('top_k')),
    f32Out(4, 'out_weights', param('top_k')),
    paramStruct(5, 'MoeGatherTopkParams', ['n_experts', 'top_k']),
  ],
  math: 'ids[k] = order[k]; weights[k] = probs[ids[k]] / Σ_{j<top_k} probs[ids[j]] · scale[ids[k]] (0 when the sum is 0)',
  defaults: { n_experts: 128, top_k: 8 },
  presetParams: routingPreset,
  inputSets: GATHER_SETS,
  cases(): KernelCase[] {
    const all = setNames(GATHER_SETS);
    const rows: CaseRow[] = [];
    for (const key of SWEEP_MODELS) {
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
});
