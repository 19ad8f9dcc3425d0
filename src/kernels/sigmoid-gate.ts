/**
 * sigmoid_gate (moeflux's attention.metal): the attention output gate
 * x ← x·sigmoid(gate), in place, one thread per element in threadgroups of 256.
 */
import { sigmoidGateRef } from '../reference/attention.js';
import { attnOf } from './common/attention.js';
import { f32In, f32InOut, uintArg } from './common/buffers.js';
import { cross, inputSets, MAX_ELEMS, setNames } from './common/cases.js';
import { groups, TG } from './common/launch.js';
import { num, param } from './common/params.js';
import { floatRule } from './common/rules.js';
import { defineKernel, type KernelCase, type Tensors } from './spec.js';

const GATE_SETS = inputSets(`
  normal: x ~ N(0, 1), gate ~ N(0, 2²)
  saturating: gate ~ N(0, 40²) with ±100 and ±88.8 (e^−g overflows f32), x ~ N(0, 10²)
  large: x ~ N(0, 1) · 1e30, gate ~ N(0, 2²)
  zeros: gate = 0 (x / 2 exactly), every fourth x = 0, the rest N(0, 1)
`);

export const sigmoidGate = defineKernel({
  name: 'sigmoid-gate', entry: 'sigmoid_gate', shader: 'attention.metal', group: 'attention',
  description: 'Attention output gate x ← x·sigmoid(gate), in place, one thread per element, 256-thread threadgroups',
  params: [{ name: 'n_elements', flag: 'elements', description: 'elements (num_heads × head_dim of the gated attention output)', min: 1 }],
  buffers: [f32InOut(0, 'x', param('n_elements')), f32In(1, 'gate', param('n_elements')), uintArg(2, 'dim', param('n_elements'))],
  math: 'x[i] = x[i] · 1/(1 + e^(−gate[i]))',
  defaults: { n_elements: 4096 },
  bench: { n_elements: 1 << 20 },
  inputSets: GATE_SETS,
  cases(): KernelCase[] {
    const q3 = attnOf('qwen3-30b-a3b');
    const q15 = attnOf('qwen1.5-moe-a2.7b');
    const sets = setNames(GATE_SETS);
    return cross([
      ['qwen3-30b-a3b', { n_elements: q3.heads * q3.headDim }, sets],
      ['qwen1.5-moe-a2.7b', { n_elements: q15.heads * q15.headDim }, sets],
      ['edge: 1 element', { n_elements: 1 }, sets],
      ['edge: 255 elements (one partial threadgroup)', { n_elements: 255 }, sets],
      ['edge: 257 elements (one element past a threadgroup)', { n_elements: 257 }, sets],
      ['edge: 1000 elements', { n_elements: 1000 }, sets],
    ]);
  },
  validate(p) {
    const n = num(p, 'n_elements');
    if (n > MAX_ELEMS) return `n_elements = ${n} is too large (at most ${MAX_ELEMS})`;
    return null;
  },
  inputs(p, inputSet, rng): Tensors {
    const n = num(p, 'n_elements');
    const x = new Float32Array(n);
    const gate = new Float32Array(n);
    const special = [100, -100, 88.8, -88.8];
    for (let i = 0; i < n; i++) {
      switch (inputSet) {
        case 'normal':
          x[i] = rng.normal();
          gate[i] = 2 * rng.normal();
          break;
        case 'saturating':
          x[i] = 10 * rng.normal();
          gate[i] = i % 16 < special.length ? (special[i % 16] as number) : 40 * rng.normal();
          break;
        case 'large':
          x[i] = 1e30 * rng.normal();
          gate[i] = 2 * rng.normal();
          break;
        case 'zeros':
          x[i] = i % 4 === 0 ? 0 : rng.normal();
          gate[i] = 0;
          break;
        default:
          throw new Error(`unknown input set '${inputSet}'`);
      }
    }
    return { x, gate };
  },
  launch(p) {
    return groups(Math.ceil(num(p, 'n_elements') / TG));
  },
  reference(_p, inputs) {
    const x = inputs.x as Float32Array;
    const out = sigmoidGateRef(x, inputs.gate as Float32Array);
    let maxX = 0;
    for (const v of x) maxX = Math.max(maxX, Math.abs(v));
    return {
      outputs: { x: new Float32Array(out) },
      rules: {
        x: floatRule(
          Math.max(1e-12 * maxX, 1e-37),
          6e-6,
          1e-5,
          'f32 exp (fast math: 3+2|g| ulp) feeds σ with relative error ≤ (6+2|g|)·2⁻²³ (≤ 6e-6 for |g| ≤ 20, where σ(g) > 2e-9; beyond, absolute)',
        ),
      },
    };
  },
  cost(p) {
    const n = num(p, 'n_elements');
    // read x and gate, write x (f32)
    const bytes = 12 * n;
    // per element: exp, add, divide, multiply
    const flops = 4 * n;
    return { bytes, flops };
  },
});
