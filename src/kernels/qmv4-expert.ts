/**
 * moe_qmv4_expert_f32 and moe_qmv4_expert_naive_f32 (moe_quant.metal): an
 * expert-indexed 4-bit mat-vec running the top-k experts of one token in one
 * dispatch (gather by id), tiled like qmv4-tiled or one thread per (row, slot).
 */
import type { Rng } from '../util/rng.js';
import { cross } from './common/cases.js';
import { f32In, f32Out, u32In, uintArg } from './common/buffers.js';
import { groups, threadsOf } from './common/launch.js';
import { num, P_STACKED_EXPERTS, P_TOP_K, param, product } from './common/params.js';
import { routingPreset } from './common/presets.js';
import { ALL_QUANT_SETS, copyRows, DEQ, dimBuffers, emptyQuant, fillRandomPacked, genQuantWeights, genX, NAIVE_TG, QPARAMS, QT, QUANT_GROUP, QUANT_INPUT_SETS, QUANT_SHADER, qmvCost, qmvSlotsRef, quantRule, validateQuant, weightBuffers, X_PER_PAIR } from './common/quant.js';
import { defineKernel, type Cost, type KernelSpec, type ParamDef, type Tensors } from './spec.js';

const EXPERT_PARAMS: ParamDef[] = [P_STACKED_EXPERTS, { ...P_TOP_K, description: 'experts selected for the token (slots)' }, X_PER_PAIR, ...QPARAMS];

const EXPERT_SHAPES: [origin: string, experts: number, topK: number, xPerPair: number, out: number, inDim: number, gs: number, sets: string[] | null][] = [
  // the full decode shapes of Qwen3-30B-A3B: 128 experts, top-8 (100 MB of packed weights: one input set each)
  ['qwen3-30b-a3b', 128, 8, 0, 768, 2048, 64, ['normal']],
  ['qwen3-30b-a3b', 128, 8, 1, 2048, 768, 64, ['mlx']],
  // every input set with the rows capped to 64
  ['qwen3-30b-a3b', 128, 8, 0, 64, 2048, 128, null],
  ['qwen3-30b-a3b', 128, 8, 1, 64, 768, 32, null],
  ['mixtral-8x7b', 8, 2, 0, 256, 4096, 64, null], // gate/up, rows capped to 256
  ['edge: every expert selected, in_dim 800', 3, 3, 1, 5, 800, 32, null],
  ['edge: one expert, in_dim 2112 > tile', 1, 1, 0, 17, 2112, 64, null],
  ['edge: group_size 16 (the tiled kernel\'s 4-byte path)', 4, 2, 1, 19, 400, 16, null],
];

function expertSpec(tiled: boolean): KernelSpec {
  const rowsPerTg = QT.SG * QT.ROWS;
  return defineKernel({
    name: tiled ? 'qmv4-expert' : 'qmv4-expert-naive', entry: tiled ? 'moe_qmv4_expert_f32' : 'moe_qmv4_expert_naive_f32', shader: QUANT_SHADER, group: QUANT_GROUP,
    description: tiled
      ? `Expert-indexed 4-bit mat-vec: the top-k experts of one token in one dispatch (gather by id, as MLX gather_qmv / llama.cpp mul_mv_id), tiled like qmv4-tiled`
      : 'Expert-indexed 4-bit mat-vec, one thread per (row, slot): the baseline for qmv4-expert',
    buffers: [
      ...weightBuffers(4, 0, (p) => num(p, 'n_experts') * num(p, 'out_dim')),
      f32In(3, 'x', (p) => (num(p, 'x_per_pair') ? num(p, 'top_k') : 1) * num(p, 'in_dim')),
      f32Out(4, 'y', product('top_k', 'out_dim')),
      ...dimBuffers(5),
      u32In(8, 'ids', param('top_k')),
      uintArg(9, 'n_experts'),
      uintArg(10, 'x_per_pair'),
    ],
    threadgroup: tiled ? [{ index: 0, name: 'xs', bytes: () => QT.XT * 4 }] : [],
    math: `y[s,r] = Σ_i W[ids[s],r,i]·x[s·x_per_pair, i] for the top_k slots s, ${DEQ}`,
      params: EXPERT_PARAMS,
    defaults: { n_experts: 16, top_k: 4, x_per_pair: 0, out_dim: 64, in_dim: 2048, group_size: 64 },
    bench: { n_experts: 128, top_k: 8, x_per_pair: 0, out_dim: 768, in_dim: 2048, group_size: 64 },
    presetParams: routingPreset,
    inputSets: QUANT_INPUT_SETS,
    cases: () =>
      cross(EXPERT_SHAPES.map(([origin, n_experts, top_k, x_per_pair, out_dim, in_dim, group_size, sets]) => [origin, { n_experts, top_k, x_per_pair, out_dim, in_dim, group_size }, sets ?? ALL_QUANT_SETS])),
    validate(p) {
      if (num(p, 'top_k') > num(p, 'n_experts')) return `top_k = ${num(p, 'top_k')} must not exceed n_experts = ${num(p, 'n_experts')}`;
      return validateQuant(p, 4, num(p, 'n_experts') * num(p, 'out_dim'));
    },
    inputs(p, set, rng: Rng): Tensors {
      const E = num(p, 'n_experts');
      const K = num(p, 'top_k');
      const R = num(p, 'out_dim');
      // distinct random experts, in random order
      const ids = new Uint32Array(K);
      const chosen = new Set<number>();
      for (let j = 0; j < K; j++) {
        let e = rng.int(0, E);
        while (chosen.has(e)) e = (e + 1) % E;
        chosen.add(e);
        ids[j] = e;
      }
      const m = emptyQuant(E * R, num(p, 'in_dim'), 4, num(p, 'group_size'));
      const seed = `w:${rng.next()}`;
      // the selected experts' weights from the input set; the others arbitrary
      // packed weights, never to be read (one random expert copied to all of them)
      let filler = -1;
      for (let e = 0; e < E; e++) {
        if (chosen.has(e)) genQuantWeights(R, num(p, 'in_dim'), 4, num(p, 'group_size'), set, `${seed}:${e}`, m, e * R);
        else if (filler < 0) {
          fillRandomPacked(m, e * R, R, `${seed}:filler`);
          filler = e;
        } else copyRows(m, filler * R, e * R, R);
      }
      const x = genX((num(p, 'x_per_pair') ? K : 1) * num(p, 'in_dim'), set, rng);
      return { w: m.w, scales: m.scales, biases: m.biases, x, ids };
    },
    launch(p) {
      return tiled
        ? groups(Math.ceil(num(p, 'out_dim') / rowsPerTg), num(p, 'top_k'), QT.SG * 32, [QT.XT * 4])
        : threadsOf(NAIVE_TG, num(p, 'out_dim'), num(p, 'top_k'));
    },
    reference(p, t) {
      const R = num(p, 'out_dim');
      const I = num(p, 'in_dim');
      // slot s: expert ids[s]'s rows, its own input row or the shared one; an id out of range leaves zeros
      const slots = Array.from(t.ids as Uint32Array, (e, s): [number, number] | null => (e >= num(p, 'n_experts') ? null : [e * R, num(p, 'x_per_pair') ? s * I : 0]));
      const { y, mag } = qmvSlotsRef(t, R, I, num(p, 'group_size'), slots);
      return { outputs: { y }, rules: { y: quantRule(mag, I) } };
    },
    cost(p): Cost {
      // only the selected experts' packed weights, scales and biases; x (per slot or shared), y and the ids
      const K = num(p, 'top_k');
      const { weights, sb } = qmvCost(4, num(p, 'out_dim'), num(p, 'in_dim'), num(p, 'group_size'));
      const xBytes = 4 * (num(p, 'x_per_pair') ? K : 1) * num(p, 'in_dim');
      return { bytes: K * (weights + sb) + xBytes + 4 * K * num(p, 'out_dim') + 4 * K, flops: 2 * K * num(p, 'out_dim') * num(p, 'in_dim'), weightBytes: K * weights };
    },
  });
}

export const qmv4Expert = expertSpec(true);
export const qmv4ExpertNaive = expertSpec(false);
