/**
 * Residual add: out = a + b element-wise in f32 (the skip connection around
 * attention and the MoE block). Interface and launch: shaders/moe_residual.metal.
 */
import { residualAddRef } from '../reference/residual.js';
import type { Rng } from '../util/rng.js';
import { arrayBuf, casesOf, inputSets, num, structBuf, threads256, unknownInputSet } from './common/extra.js';
import type { KernelSpec, Params } from './spec.js';


const SHAPES: [string, Params][] = [
  ['qwen3-30b-a3b: 3 tokens', { n_elements: 3 * 2048 }],
  ['gemma-4-26b-a4b', { n_elements: 2816 }],
  ['mixtral-8x7b', { n_elements: 4096 }],
  ['edge: 1 element', { n_elements: 1 }],
  ['edge: one past 256 (partial threadgroup)', { n_elements: 257 }],
  ['edge: non-power-of-two', { n_elements: 1000 }],
];

const SETS = inputSets(
  ['normal', 'a ~ N(0, 1), b ~ N(0, 0.1²)'],
  ['large', '|a|, |b| log-uniform in [1e-30, 1e30], random signs: huge and tiny operands together'],
  ['cancel', 'b = −a, or −a plus one ulp of a: exact zeros and results far below the operands'],
  ['zeros', 'signed zeros in both operands (−0 + −0 = −0), every other element N(0, 1)'],
);

function pair(set: string, rng: Rng, i: number): [number, number] {
  const sign = (): number => (rng.next() < 0.5 ? -1 : 1);
  switch (set) {
    case 'normal':
      return [rng.normal(), 0.1 * rng.normal()];
    case 'large':
      return [sign() * 10 ** rng.uniform(-30, 30), sign() * 10 ** rng.uniform(-30, 30)];
    case 'cancel': {
      const a = Math.fround(rng.normal() * 10 ** rng.uniform(-3, 3));
      return [a, i % 2 === 0 ? -a : -Math.fround(a * (1 + 2 ** -23))];
    }
    case 'zeros':
      return i % 2 === 0 ? [i % 4 === 0 ? -0 : 0, -0] : [rng.normal(), rng.normal()];
    default:
      return unknownInputSet(set);
  }
}

export const residualAdd: KernelSpec = {
  ...{ name: 'residual-add', entry: 'residual_add_f32', shader: 'moe_residual.metal', group: 'residual' },
  description: 'Residual add of two f32 vectors, one thread per element',
  math: 'out[i] = a[i] + b[i]',
  params: [{ name: 'n_elements', flag: 'elements', description: 'elements (floats) processed', min: 1 }],
  defaults: { n_elements: 2048 },
  bench: { n_elements: 4096 * 512 },
  inputSets: SETS,
  buffers: [
    ...(['a', 'b'] as const).map((name, i) => arrayBuf(i, name, 'float', 'read', (p) => num(p, 'n_elements'))),
    arrayBuf(2, 'out', 'float', 'write', (p) => num(p, 'n_elements')),
    structBuf(3, 'ResidualAddParams', [['n_elements', 'uint', (p) => num(p, 'n_elements')]]),
  ],
  threadgroup: [],
  cases: () => casesOf(SHAPES, SETS),
  validate: (p) => ((p.n_elements as number) > 2 ** 28 ? `n_elements = ${p.n_elements} is too large (at most 2^28)` : null),
  inputs(p, set, rng) {
    const n = p.n_elements as number;
    const a = new Float32Array(n);
    const b = new Float32Array(n);
    for (let i = 0; i < n; i++) [a[i], b[i]] = pair(set, rng, i);
    return { a, b };
  },
  launch: (p) => threads256(p.n_elements as number),
  reference(_p, inputs) {
    // the f64 sum of two floats is exact (or, past a 29-bit exponent gap, far from an f32 rounding
    // midpoint), so rounding it to f32 gives the correctly rounded f32 sum
    const out = new Float32Array(residualAddRef(inputs.a as Float32Array, inputs.b as Float32Array));
    return {
      outputs: { out },
      rules: {
        out: { kind: 'float', atol: 0, rtol: 0, minCosine: 0.99999, maxRelMaxAbs: 0, reason: 'one IEEE f32 addition is correctly rounded: bit-exact (signed zeros compare equal)' },
      },
    };
  },
  // read a and b, write out; one add per element
  cost: (p) => ({ bytes: 12 * (p.n_elements as number), flops: p.n_elements as number }),
};
