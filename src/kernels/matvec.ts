/** naive_matvec_f32 (moe_dispatch.metal): one thread per output row, the stage-1 expert projections for one token. */
import { matvecRef } from '../reference/ffn.js';
import { f32In, f32Out, paramStruct } from './common/buffers.js';
import { cross, inputSets, modelOf, setNames, tooLarge, unknownSet } from './common/cases.js';
import { threads } from './common/launch.js';
import { num, P_MATVEC_COLS, P_MATVEC_ROWS, param, product } from './common/params.js';
import { sumRule } from './common/sums.js';
import { defineKernel, type KernelCase, type Tensors } from './spec.js';

const MATVEC_SETS = inputSets(`
  normal: W ~ N(0, 1/k), x ~ N(0, 1)
  large: W ~ N(0, 1), x ~ N(0, 1) with every 61st input ×1e4 (outlier activations)
  integers: W, x small integers in [−4, 4]: every dot product is exact in f32
  zeros: x 0 at even positions, every seventh row of W all zero (exact 0 outputs)
`);
const ALL_MATVEC = setNames(MATVEC_SETS);

export const matvec = defineKernel({
  name: 'matvec', entry: 'naive_matvec_f32', shader: 'moe_dispatch.metal', group: 'ffn',
  description: 'Naive f32 mat-vec, one thread per output row (the stage-1 expert projections gate/up/down for one token)',
  params: [P_MATVEC_ROWS, P_MATVEC_COLS],
  buffers: [f32In(0, 'weight', product('n', 'k')), f32In(1, 'input', param('k')), f32Out(2, 'output', param('n')), paramStruct(3, 'MatvecParams', [['m', () => 1], 'k', 'n'])],

  math: 'output[r] = Σ_c weight[r·k + c] · input[c] for r < n (weight [n, k] row-major; params.m = 1)',
  defaults: { n: 768, k: 2048 },
  bench: { n: 14336, k: 4096 },
  inputSets: MATVEC_SETS,
  cases(): KernelCase[] {
    const q3 = modelOf('qwen3-30b-a3b');
    const gm = modelOf('gemma-4-26b-a4b');
    const mx = modelOf('mixtral-8x7b');
    const ds = modelOf('deepseek-v2-lite');
    return cross([
      ['qwen3-30b-a3b', { n: q3.expert_intermediate, k: q3.hidden }, ['normal', 'zeros']],
      ['qwen3-30b-a3b', { n: q3.hidden, k: q3.expert_intermediate }, ['large']],
      ['gemma-4-26b-a4b', { n: gm.expert_intermediate, k: gm.hidden }, ['normal']],
      [`mixtral-8x7b: down rows ${mx.hidden}, k capped at 512 of ${mx.expert_intermediate}`, { n: mx.hidden, k: 512 }, ['normal', 'integers']],
      [`mixtral-8x7b: gate k ${mx.hidden}, rows capped at 64 of ${mx.expert_intermediate}`, { n: 64, k: mx.hidden }, ['large']],
      [`deepseek-v2-lite: shared down rows ${ds.hidden}, k capped at 256 of ${ds.shared_intermediate ?? ds.expert_intermediate}`, { n: ds.hidden, k: 256 }, ['normal']],
      ['edge: 1 × 1', { n: 1, k: 1 }, ALL_MATVEC],
      ['edge: 257 rows (one past a threadgroup), k 3', { n: 257, k: 3 }, ALL_MATVEC],
      ['edge: 5 rows, k 1000 (odd)', { n: 5, k: 1000 }, ALL_MATVEC],
      ['edge: 300 rows, k 33', { n: 300, k: 33 }, ALL_MATVEC],
    ]);
  },
  validate: (p) => tooLarge('n × k (weight)', num(p, 'n') * num(p, 'k')),
  inputs(p, set, rng): Tensors {
    const n = num(p, 'n');
    const k = num(p, 'k');
    const w = new Float32Array(n * k);
    const x = new Float32Array(k);
    const sd = 1 / Math.sqrt(k);
    for (let c = 0; c < k; c++) {
      switch (set) {
        case 'normal':
          x[c] = rng.normal();
          break;
        case 'large':
          x[c] = rng.normal() * (c % 61 === 0 ? 1e4 : 1);
          break;
        case 'integers':
          x[c] = rng.int(-4, 5);
          break;
        case 'zeros':
          x[c] = c % 2 === 0 ? 0 : rng.normal();
          break;
        default:
          unknownSet(set);
      }
    }
    for (let i = 0; i < n * k; i++) {
      switch (set) {
        case 'normal':
        case 'zeros':
          w[i] = sd * rng.normal();
          break;
        case 'large':
          w[i] = rng.normal();
          break;
        default:
          w[i] = rng.int(-4, 5);
      }
    }
    if (set === 'zeros') for (let r = 0; r < n; r += 7) w.fill(0, r * k, (r + 1) * k);
    return { weight: w, input: x };
  },
  launch: (p) => threads(num(p, 'n')),
  reference(p, inputs) {
    const r = matvecRef(inputs.weight as Float32Array, inputs.input as Float32Array, num(p, 'n'), num(p, 'k'));
    return { outputs: { output: new Float32Array(r.values) }, rules: { output: sumRule(r, 'dot product') } };
  },
  cost(p) {
    const n = num(p, 'n');
    const k = num(p, 'k');
    // read the n·k weights once and the k inputs, write n outputs; a multiply-add per weight
    return { bytes: 4 * (n * k + k + n), flops: 2 * n * k };
  },
});
