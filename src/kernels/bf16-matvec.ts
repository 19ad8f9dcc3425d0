/**
 * Dense mat-vec with bf16 weights and f32 activations (routers, shared
 * experts and projections of bf16 checkpoints): 8 rows per threadgroup of 256
 * threads, one SIMD-group per row. Interface and launch: shaders/matvec_bf16.metal.
 */
import { matvecBf16Ref } from '../reference/residual.js';
import type { Rng } from '../util/rng.js';
import { arrayBuf, bf16Bits, boundRule, casesOf, F32_U, inputSets, num, structBuf, unknownInputSet, widenBf16 } from './common/extra.js';
import type { KernelSpec, Params, Tensors } from './spec.js';

const ROWS_PER_TG = 8;

const SETS = inputSets(
  ['normal', 'W ~ N(0, 0.02²) (initialiser scale), x ~ N(0, 1)'],
  ['large', '|W| log-uniform in [1e-3, 1e4], |x| in [1e-3, 1e6], random signs'],
  ['cancel', 'x constant 1, each row W = [a, −a, b, −b, …] (a trailing odd column 0): the sums cancel to exactly 0'],
  ['zeros', 'every third row of W zero, x 0 at even columns, the rest N(0, 1)'],
);

const SHAPES: [string, Params][] = [
  ['qwen3-30b-a3b: router', { n: 128, k: 2048 }],
  ['mixtral-8x7b: router', { n: 8, k: 4096 }],
  ['qwen1.5-moe-a2.7b: router (60 experts)', { n: 60, k: 2048 }],
  ['edge: 1 × 1', { n: 1, k: 1 }],
  ['edge: rows not a multiple of 8, columns not of 32', { n: 33, k: 100 }],
];

function wValue(set: string, rng: Rng, r: number, j: number, k: number, prev: number): number {
  switch (set) {
    case 'normal':
      return 0.02 * rng.normal();
    case 'large':
      return (rng.next() < 0.5 ? -1 : 1) * 10 ** rng.uniform(-3, 4);
    case 'cancel':
      return j % 2 === 1 ? -prev : j === k - 1 ? 0 : rng.normal();
    case 'zeros':
      return r % 3 === 0 ? 0 : rng.normal();
    default:
      return unknownInputSet(set);
  }
}

function xValue(set: string, rng: Rng, j: number): number {
  if (set === 'large') return (rng.next() < 0.5 ? -1 : 1) * 10 ** rng.uniform(-3, 6);
  if (set === 'cancel') return 1;
  if (set === 'zeros' && j % 2 === 0) return 0;
  return rng.normal();
}

export const bf16Matvec: KernelSpec = {
  ...{ name: 'bf16-matvec', entry: 'matvec_bf16_f32', shader: 'matvec_bf16.metal', group: 'matvec' },
  description: 'Mat-vec of bf16 weights [n, k] with an f32 vector: 8 rows per threadgroup of 256, one SIMD-group per row',
  math: 'out[r] = Σ_j float(W[r, j]) · x[j] (W row-major bf16, accumulated in f32)',
  params: (['n', 'k'] as const).map((name) =>
    name === 'n' ? { name, flag: 'out-dim', description: 'output rows (n)', min: 1 } : { name, flag: 'in-dim', description: 'input columns (k)', min: 1 },
  ),
  ...{ defaults: { n: 128, k: 2048 }, bench: { n: 4096, k: 4096 } },
  inputSets: SETS,
  buffers: [
    arrayBuf(0, 'W', 'bfloat', 'read', (p) => num(p, 'n') * num(p, 'k')),
    arrayBuf(1, 'x', 'float', 'read', (p) => num(p, 'k')),
    arrayBuf(2, 'out', 'float', 'write', (p) => num(p, 'n')),
    structBuf(3, 'MatvecBf16Params', [['n', 'uint', (p) => num(p, 'n')], ['k', 'uint', (p) => num(p, 'k')]]),
  ],
  threadgroup: [],
  cases: () => casesOf(SHAPES, SETS),
  validate: (p) => ((p.n as number) * (p.k as number) > 2 ** 28 ? `n × k = ${(p.n as number) * (p.k as number)} weights is too large (at most 2^28)` : null),
  inputs(p, set, rng): Tensors {
    const n = p.n as number;
    const k = p.k as number;
    const w = new Float32Array(n * k);
    for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) w[r * k + j] = wValue(set, rng, r, j, k, Math.fround(w[r * k + j - 1] ?? 0));
    // cancel: pairs must stay exact opposites after rounding to bf16 (rounding is symmetric)
    return { W: bf16Bits(w), x: Float32Array.from({ length: k }, (_, j) => xValue(set, rng, j)) };
  },
  launch: (p) => ({ mode: 'threadgroups', grid: [Math.ceil((p.n as number) / ROWS_PER_TG), 1, 1], threadgroup: [32 * ROWS_PER_TG, 1, 1], threadgroupMemory: [] }),
  reference(p, inputs) {
    const k = p.k as number;
    const r = matvecBf16Ref(widenBf16(inputs.W as Uint16Array), inputs.x as Float32Array, p.n as number, k);
    // bf16 × f32 products are exact in f64 and rounded once in f32; a lane adds ⌈k/32⌉ of them,
    // simd_sum five more levels: |error| ≤ (⌈k/32⌉ + 7)·u·Σ|terms| (worst case, any order)
    const gamma = (Math.ceil(k / 32) + 7) * F32_U;
    const bounds = r.absTermSum.map((s) => gamma * s);
    return {
      outputs: { out: new Float32Array(r.values) },
      rules: { out: boundRule(r.values, bounds, 0.9999, 1e-3, 'f32 accumulation: (⌈k/32⌉ + 7)·u·Σ|W·x| per row, any summation order') },
    };
  },
  cost(p) {
    const n = p.n as number;
    const k = p.k as number;
    // the bf16 weights, the f32 input and output; a multiply-add per weight
    return { bytes: 2 * n * k + 4 * (k + n), flops: 2 * n * k, weightBytes: 2 * n * k };
  },
};
