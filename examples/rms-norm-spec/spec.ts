/**
 * A kernel spec written outside the catalog, with the public API of
 * moe-kernels: an RMS norm whose length and epsilon are bound as separate
 * scalars and whose reduction scratch is threadgroup memory given by the host.
 *
 *   npx moe verify --spec examples/rms-norm-spec/spec.ts
 *   npx moe kernels example-rms-norm --spec examples/rms-norm-spec/spec.ts
 */
import { defineSpec, F32_U, f32In, f32Out, floatRule, groups, inputSets, num, rmsOf, uintArg, type Params, type Rng, type Tensors } from 'moe-kernels';

/** Threads per threadgroup: a power of two, as the pairwise fold of the shader needs. */
const TG = 128;

const SETS = inputSets(
  ['normal', 'x ~ N(0, 1), weight ~ 1 + N(0, 0.1²)'],
  ['outlier', 'x ~ N(0, 1) with one element per row at ±1e4: the outlier dominates the mean of squares'],
  ['zeros', 'the first row all zeros (the output is 0 only thanks to eps), then every third element 0'],
);

/** Shapes of the default sweep: real hidden sizes, and edges around the threadgroup width. */
const SHAPES: Params[] = [
  { n_rows: 3, hidden: 2048, eps: 1e-6 },
  { n_rows: 2, hidden: 4096, eps: 1e-5 },
  { n_rows: 2, hidden: 2, eps: 1e-6 },
  { n_rows: 3, hidden: 129, eps: 1e-6 },
];

const elements = (p: Params): number => num(p, 'n_rows') * num(p, 'hidden');

function xValue(set: string, rng: Rng, row: number, j: number, spike: number): number {
  if (set === 'outlier' && j === spike) return rng.next() < 0.5 ? -1e4 : 1e4;
  if (set === 'zeros' && (row === 0 || j % 3 === 0)) return 0;
  return rng.normal();
}

export default defineSpec({
  name: 'example-rms-norm',
  entry: 'example_rms_norm',
  shader: './rms_norm.metal',
  group: 'example',
  description: 'RMS norm of f32 rows, one threadgroup of 128 threads per row, dim and eps bound as scalars',
  math: 'y[r, j] = x[r, j] / √(Σ_j x[r, j]² / dim + eps) · weight[j]',
  params: [
    { name: 'n_rows', flag: 'rows', description: 'rows (tokens) to normalise' },
    { name: 'hidden', flag: 'hidden', description: 'row length (hidden size)', min: 2, max: 8192 },
    { name: 'eps', flag: 'eps', description: 'epsilon added to the mean of squares', kind: 'float', min: 0 },
  ],
  defaults: { n_rows: 4, hidden: 1024, eps: 1e-6 },
  bench: { n_rows: 256 },
  inputSets: SETS,
  buffers: [
    f32In(0, 'x', elements),
    f32In(1, 'weight', (p) => num(p, 'hidden')),
    f32Out(2, 'y', elements),
    uintArg(3, 'dim', (p) => num(p, 'hidden')),
    { index: 4, name: 'eps', kind: 'scalar', mslType: 'float', value: (p) => num(p, 'eps') },
  ],
  threadgroup: [{ index: 0, name: 'partial', bytes: () => TG * 4 }],
  cases: () => SHAPES.flatMap((params) => SETS.map((s) => ({ params, inputSet: s.name, origin: `hidden ${params.hidden}` }))),
  validate(p) {
    if (!(Math.fround(num(p, 'eps')) > 0)) return `eps = ${p.eps} must be a positive float32`;
    if (num(p, 'hidden') < 2) return 'hidden must be at least 2';
    return null;
  },
  inputs(p, set, rng): Tensors {
    const rows = num(p, 'n_rows');
    const dim = num(p, 'hidden');
    const x = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      const spike = rng.int(0, dim);
      for (let j = 0; j < dim; j++) x[r * dim + j] = xValue(set, rng, r, j, spike);
    }
    const weight = Float32Array.from({ length: dim }, () => 1 + 0.1 * rng.normal());
    return { x, weight };
  },
  launch: (p) => groups(num(p, 'n_rows'), 1, TG, [TG * 4]),
  launchText: 'dispatchThreadgroups: grid (n_rows, 1, 1) threadgroups of (128, 1, 1) threads; threadgroup(0): 128 floats',
  reference(p, inputs) {
    const rows = num(p, 'n_rows');
    const dim = num(p, 'hidden');
    const x = inputs.x as Float32Array;
    const w = inputs.weight as Float32Array;
    const eps = Math.fround(num(p, 'eps'));
    const y = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      const inv = 1 / rmsOf(x, r * dim, dim, eps);
      for (let j = 0; j < dim; j++) y[r * dim + j] = (x[r * dim + j] as number) * inv * (w[j] as number);
    }
    // The f32 sum of squares (dim/128 terms per thread, then 7 pairwise folds, no cancellation)
    // is within (dim/128 + 8)·u, halved by the square root; rsqrt and two products add a few u.
    const rtol = (Math.ceil(dim / TG) / 2 + 16) * F32_U;
    return { outputs: { y }, rules: { y: floatRule(1e-30, rtol, 1e-5, 'f32 sum of positive squares, rsqrt to a few ulp and two products') } };
  },
  cost: (p) => ({ bytes: elements(p) * 8 + num(p, 'hidden') * 4, flops: 4 * elements(p) }),
});
