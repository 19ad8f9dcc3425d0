/**
 * Rotary position embedding on [n_tokens, n_heads, head_dim] f32 activations
 * (q or k), in place of a copy: the standard form (RoFormer) and YaRN's
 * context-extended form, with NeoX or interleaved pairing and partial rotary
 * (rot_dim < head_dim). Formulas and their sources: src/reference/rope.ts and
 * shaders/moe_norm_rope.metal. Theta bases and YaRN settings of the shapes
 * are the models' config.json values (rope_theta, rope_scaling).
 */
import { ropeRef, yarnConstants, type YarnScaling } from '../reference/rope.js';
import type { Rng } from '../util/rng.js';
import { arrayBuf, boundRule, casesOf, F32_U, finiteF32, inputSets, num, structBuf, threads256, unknownInputSet } from './common/extra.js';
import type { FieldType } from './pack.js';
import type { BufferDecl, KernelSpec, ParamDef, Params, Tensors } from './spec.js';

const SETS = inputSets(
  ['normal', 'x ~ N(0, 1), positions uniform in [0, 4096)'],
  ['large', '|x| log-uniform in [1e-3, 1e18], random signs; positions uniform in [0, 4096)'],
  ['zeros', 'position 0 for the first token (identity), x 0 at every third element, the rest N(0, 1)'],
  ['long', 'positions near the end of the (extended) context, x ~ N(0, 1): f32 angles up to 1e5 rad'],
);

/** Positions of one token for a set; `ctx` is the context length the case is built for. */
function position(set: string, rng: Rng, t: number, ctx: number): number {
  switch (set) {
    case 'normal':
    case 'large':
      return rng.int(0, 4096);
    case 'zeros':
      return t === 0 ? 0 : rng.int(1, 4096);
    case 'long':
      return rng.int(Math.floor(ctx * 0.9), ctx);
    default:
      return unknownInputSet(set);
  }
}

function xValue(set: string, rng: Rng, i: number): number {
  if (set === 'large') return (rng.next() < 0.5 ? -1 : 1) * 10 ** rng.uniform(-3, 18);
  if (set === 'zeros' && i % 3 === 0) return 0;
  return rng.normal();
}

const P: ParamDef[] = [
  { name: 'n_tokens', flag: 'tokens', description: 'tokens', min: 1 },
  { name: 'n_heads', flag: 'heads', description: 'attention heads (query heads)', min: 1 },
  { name: 'head_dim', flag: 'head-dim', description: 'dimension of one head (even)', min: 2 },
  { name: 'rot_dim', flag: 'rot-dim', description: 'rotated leading dimensions of a head (even, ≤ head_dim; the rest pass through)', min: 2 },
  { name: 'neox', flag: 'neox', description: 'pairing: 1 NeoX (i, i + rot_dim/2), 0 interleaved (2i, 2i+1)', min: 0, max: 1 },
  { name: 'theta', flag: 'rope-theta', description: 'RoPE base (rope_theta, > 1)', kind: 'float', min: 1 },
];
const P_YARN: ParamDef[] = [
  { name: 'factor', flag: 'yarn-factor', description: 'YaRN context extension factor s (≥ 1)', kind: 'float', min: 1 },
  { name: 'orig_ctx', flag: 'yarn-orig-ctx', description: 'original_max_position_embeddings', min: 1 },
  { name: 'beta_fast', flag: 'yarn-beta-fast', description: 'YaRN beta_fast (rotations: pairs above it extrapolate)', kind: 'float', min: 0 },
  { name: 'beta_slow', flag: 'yarn-beta-slow', description: 'YaRN beta_slow (rotations: pairs below it interpolate)', kind: 'float', min: 0 },
];

const yarnOf = (p: Params): YarnScaling => ({ factor: p.factor as number, orig_ctx: p.orig_ctx as number, beta_fast: p.beta_fast as number, beta_slow: p.beta_slow as number });
const constantsOf = (p: Params): ReturnType<typeof yarnConstants> => yarnConstants(p.rot_dim as number, p.theta as number, yarnOf(p));
const elems = (p: Params): number => (p.n_tokens as number) * (p.n_heads as number) * (p.head_dim as number);

/** Standard shapes: Qwen3 (rope_theta 1e6, NeoX as in HF), Mixtral (1e6), DeepSeek-V2-Lite's 64-dim rope part (1e4, interleaved). */
const STD_SHAPES: [string, Params][] = [
  ['qwen3-30b-a3b', { n_tokens: 3, n_heads: 32, head_dim: 128, rot_dim: 128, neox: 1, theta: 1e6 }],
  ['mixtral-8x7b', { n_tokens: 2, n_heads: 8, head_dim: 128, rot_dim: 128, neox: 0, theta: 1e6 }],
  ['deepseek-v2-lite: rope part of q', { n_tokens: 3, n_heads: 16, head_dim: 64, rot_dim: 64, neox: 0, theta: 1e4 }],
  ['edge: partial rotary (half), NeoX', { n_tokens: 2, n_heads: 3, head_dim: 96, rot_dim: 48, neox: 1, theta: 1e4 }],
  ['edge: partial rotary, interleaved, odd pair count', { n_tokens: 2, n_heads: 5, head_dim: 36, rot_dim: 22, neox: 0, theta: 5e5 }],
  ['edge: one pair', { n_tokens: 1, n_heads: 1, head_dim: 2, rot_dim: 2, neox: 1, theta: 1e4 }],
];

/** YaRN shapes: DeepSeek-V2-Lite (factor 40, original 4096, β 32/1; interleaved), Qwen3 with YaRN 4× over 32768 (NeoX). */
const YARN_SHAPES: [string, Params][] = [
  ['deepseek-v2-lite: rope part of q', { n_tokens: 3, n_heads: 16, head_dim: 64, rot_dim: 64, neox: 0, theta: 1e4, factor: 40, orig_ctx: 4096, beta_fast: 32, beta_slow: 1 }],
  ['qwen3-30b-a3b: yarn 4x', { n_tokens: 2, n_heads: 32, head_dim: 128, rot_dim: 128, neox: 1, theta: 1e6, factor: 4, orig_ctx: 32768, beta_fast: 32, beta_slow: 1 }],
  ['edge: partial rotary, non-power-of-two', { n_tokens: 2, n_heads: 3, head_dim: 80, rot_dim: 50, neox: 1, theta: 1e4, factor: 8, orig_ctx: 2048, beta_fast: 32, beta_slow: 1 }],
  ['edge: factor 1 (YaRN off: mscale 1, no interpolation)', { n_tokens: 2, n_heads: 2, head_dim: 64, rot_dim: 64, neox: 0, theta: 1e4, factor: 1, orig_ctx: 4096, beta_fast: 32, beta_slow: 1 }],
];

function ropeSpec(yarn: boolean): KernelSpec {
  const fields: [string, FieldType, (p: Params) => number][] = [
    ...(['n_tokens', 'n_heads', 'head_dim', 'rot_dim', 'neox'] as const).map((k): [string, FieldType, (p: Params) => number] => [k, 'uint', (p) => num(p, k)]),
    ['theta_base', 'float', (p) => num(p, 'theta')],
  ];
  if (yarn) {
    for (const k of ['freqScale', 'low', 'high', 'mscale'] as const) {
      const field = { freqScale: 'freq_scale', low: 'corr_low', high: 'corr_high', mscale: 'mscale' }[k];
      fields.push([field, 'float', (p) => constantsOf(p)[k]]);
    }
  }
  const buffers: BufferDecl[] = [
    structBuf(0, yarn ? 'RopeYarnParams' : 'RopeParams', fields),
    arrayBuf(1, 'x', 'float', 'read', elems),
    arrayBuf(2, 'pos', 'uint', 'read', (p) => num(p, 'n_tokens')),
    arrayBuf(3, 'out', 'float', 'write', elems),
  ];
  /** Context the positions of the 'long' set come from. */
  const ctx = (p: Params): number => (yarn ? Math.floor((p.factor as number) * (p.orig_ctx as number)) : 32768);
  const shapes = yarn ? YARN_SHAPES : STD_SHAPES;
  return {
    ...(yarn ? { name: 'rope-yarn', entry: 'rope_yarn_f32' } : { name: 'rope', entry: 'rope_f32' }),
    ...{ shader: 'moe_norm_rope.metal', group: 'attention' },
    description: yarn
      ? 'YaRN-scaled rotary position embedding (ramp between interpolated and original frequencies, mscale on cos/sin), one thread per pair'
      : 'Rotary position embedding, NeoX or interleaved pairs, partial rotary, one thread per pair',
    math: yarn
      ? 'θ_i = pos·(ramp_i·inv_i/s + (1 − ramp_i)·inv_i), inv_i = base^(−2i/rot_dim), ramp_i = clamp((i − low)/(high − low), 0, 1); (a, b) → m·(a cos θ − b sin θ, a sin θ + b cos θ), m = 0.1·ln s + 1'
      : 'θ_i = pos·base^(−2i/rot_dim); (a, b) → (a cos θ − b sin θ, a sin θ + b cos θ) on pairs (i, i + rot_dim/2) (NeoX) or (2i, 2i+1); dims ≥ rot_dim copied',
    params: yarn ? [...P, ...P_YARN] : P,
    defaults: (shapes[0] as [string, Params])[1],
    bench: { n_tokens: 512 },
    inputSets: SETS,
    buffers,
    threadgroup: [],
    cases: () => casesOf(shapes, SETS),
    validate(p) {
      const hd = p.head_dim as number;
      const rd = p.rot_dim as number;
      if (hd % 2 !== 0 || rd % 2 !== 0) return `head_dim = ${hd} and rot_dim = ${rd} must be even`;
      if (rd > hd) return `rot_dim = ${rd} must not exceed head_dim = ${hd}`;
      if (p.neox !== 0 && p.neox !== 1) return `neox = ${p.neox} must be 0 or 1`;
      if (!((p.theta as number) > 1)) return `theta = ${p.theta} must be above 1`;
      if (elems(p) > 2 ** 28) return `n_tokens × n_heads × head_dim = ${elems(p)} is too large (at most 2^28)`;
      if (yarn) {
        if (!((p.factor as number) >= 1)) return `factor = ${p.factor} must be at least 1`;
        if (!((p.beta_fast as number) > (p.beta_slow as number) && (p.beta_slow as number) > 0)) return `beta_fast = ${p.beta_fast} must exceed beta_slow = ${p.beta_slow} > 0`;
        if (ctx(p) > 2 ** 24) return `factor × orig_ctx = ${ctx(p)} positions exceed 2^24 (not exact in f32)`;
        return finiteF32('factor', p.factor as number);
      }
      return finiteF32('theta', p.theta as number);
    },
    inputs(p, set, rng): Tensors {
      const pos = Uint32Array.from({ length: p.n_tokens as number }, (_, t) => position(set, rng, t, ctx(p)));
      const x = Float32Array.from({ length: elems(p) }, (_, i) => xValue(set, rng, i));
      return { x, pos };
    },
    launch: (p) => threads256((p.head_dim as number) / 2, p.n_heads as number, p.n_tokens as number),
    reference(p, inputs) {
      const theta = Math.fround(p.theta as number);
      const shape = { n_tokens: p.n_tokens as number, n_heads: p.n_heads as number, head_dim: p.head_dim as number, rot_dim: p.rot_dim as number, neox: p.neox as number, theta };
      const r = ropeRef(inputs.x as Float32Array, inputs.pos as Uint32Array, shape, yarn ? constantsOf(p) : null);
      // Phase error of the f32 angle: pow to 16 ulp, the rounded exponent −2i/rot_dim (ln(base)·u
      // relative after pow), the product with pos, and YaRN's ramp mix (8u).
      const phase = (20 + Math.log(theta) + (yarn ? 8 : 0)) * F32_U;
      const bounds = r.angle.map((a, i) => (r.amp[i] as number) * (a * phase + 2 ** -16));
      return {
        outputs: { out: new Float32Array(r.values) },
        rules: {
          out: boundRule(r.values, bounds, 0.99999, 1e-3, 'f32 angle pos·inv_freq carries |θ|·(20 + ln base)·u of phase error; sin/cos and the rotation 2⁻¹⁶ of the pair amplitude'),
        },
      };
    },
    cost(p) {
      const n = elems(p);
      const pairs = (p.n_tokens as number) * (p.n_heads as number) * ((p.rot_dim as number) / 2);
      // read x and positions, write out; per rotated pair: angle (1), 4 products + 2 adds, YaRN adds the ramp mix (4) and mscale (2)
      return { bytes: 8 * n + 4 * (p.n_tokens as number), flops: pairs * (yarn ? 13 : 7) };
    },
  };
}

export const rope = ropeSpec(false);
export const ropeYarn = ropeSpec(true);
