/**
 * Quantized-expert kernels (MLX affine format, shaders/moe_quant.metal):
 * dequantizing mat-vecs at 4 and 8 bits (naive: one thread per row; tiled:
 * SIMD-group per row with x cached in threadgroup memory), a fused gate + up
 * projection with a named activation, a batched variant over N tokens, and an
 * expert-indexed variant running the top-k experts of one token in one
 * dispatch.
 *
 * Buffers follow the engines' layout: packed weights uint32
 * [out_dim, in_dim·bits/32], scales and biases bfloat [out_dim, in_dim/group_size],
 * x f32, and out_dim, in_dim, group_size each a `constant uint&`.
 */
import type { QuantBits } from '../quant/affine.js';
import { ACTIVATIONS, qgateUpRef, qmvRef } from '../reference/quant.js';
import type { Rng } from '../util/rng.js';
import {
  copyRows,
  dimBuffers,
  emptyQuant,
  fillRandomPacked,
  genQuantWeights,
  genX,
  n,
  NAIVE_TG,
  QB,
  QG_ROWS,
  QPARAMS,
  QT,
  QUANT_INPUT_SETS,
  quantRule,
  validateQuant,
  weightBuffers,
} from './quant-common.js';
import type { Cost, KernelCase, KernelSpec, ParamDef, Tensors } from './spec.js';

const SHADER = 'moe_quant.metal';
const GROUP = 'quantized experts';
const DEQ = 'W[r,i] = q[r,i]·scale[r,i/gs] + bias[r,i/gs] (bf16 scale/bias, q unpacked lowest bits first)';

type Shape = [origin: string, out_dim: number, in_dim: number, group_size: number];

/** Shapes of the dense mat-vecs: real models' expert projections (one dim capped where noted) and edges. */
const DENSE_SHAPES: Shape[] = [
  ['qwen3-30b-a3b', 768, 2048, 64], // gate/up: hidden 2048 → expert intermediate 768
  ['qwen3-30b-a3b', 2048, 768, 32], // down: 768 → 2048
  ['qwen3-30b-a3b', 768, 2048, 128],
  ['mixtral-8x7b', 256, 4096, 64], // gate/up 4096 → 14336, rows capped to 256
  ['mixtral-8x7b', 4096, 512, 128], // down 14336 → 4096, in_dim capped to 512
  ['edge: in_dim 800 = 100 words (not a multiple of 32 lanes), 13 rows', 13, 800, 32],
  ['edge: in_dim 2112 > the 2048-input tile (33 groups), 33 rows', 33, 2112, 64],
  ['edge: one group, one row', 1, 128, 128],
  ['edge: in_dim 32 (fewer words than lanes)', 9, 32, 32],
  ['edge: group_size 16 (the tiled kernels\' 4-byte path), in_dim 2064 > the tile', 7, 2064, 16],
];

const ALL_SETS = QUANT_INPUT_SETS.map((s) => s.name);

function qmvCost(bits: QuantBits, out: number, inDim: number, gs: number): { weights: number; sb: number } {
  return { weights: (out * inDim * bits) / 8, sb: (2 * 2 * out * inDim) / gs };
}

/** Dense mat-vec y = W·x, naive or tiled. */
function denseSpec(bits: QuantBits, tiled: boolean): KernelSpec {
  const name = `qmv${bits}${tiled ? '-tiled' : ''}`;
  const entry = `moe_qmv${bits}${tiled ? '_tiled' : ''}_f32`;
  const rowsPerTg = QT.SG * QT.ROWS;
  return {
    name,
    entry,
    shader: SHADER,
    group: GROUP,
    description: tiled
      ? `${bits}-bit dequantizing mat-vec: SIMD-group per row (${QT.ROWS} rows each, ${rowsPerTg} per threadgroup), x cached in threadgroup memory ${QT.XT} inputs at a time, lanes read consecutive words`
      : `${bits}-bit dequantizing mat-vec: one thread per output row, x read from device memory`,
    math: `y[r] = Σ_i W[r,i]·x[i], ${DEQ}`,
    params: QPARAMS,
    defaults: { out_dim: 768, in_dim: 2048, group_size: 64 },
    bench: { out_dim: 768, in_dim: 2048, group_size: 64 },
    inputSets: QUANT_INPUT_SETS,
    buffers: [
      ...weightBuffers(bits, 0, (p) => n(p, 'out_dim')),
      { index: 3, name: 'x', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => n(p, 'in_dim') },
      { index: 4, name: 'y', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => n(p, 'out_dim') },
      ...dimBuffers(5),
    ],
    threadgroup: tiled ? [{ index: 0, name: 'xs', bytes: () => QT.XT * 4 }] : [],
    cases(): KernelCase[] {
      const out: KernelCase[] = [];
      for (const [origin, out_dim, in_dim, group_size] of DENSE_SHAPES) {
        for (const s of ALL_SETS) out.push({ params: { out_dim, in_dim, group_size }, inputSet: s, origin });
      }
      return out;
    },
    validate: (p) => validateQuant(p, bits, n(p, 'out_dim')),
    inputs(p, set, rng: Rng): Tensors {
      const m = genQuantWeights(n(p, 'out_dim'), n(p, 'in_dim'), bits, n(p, 'group_size'), set, `w:${rng.next()}`);
      return { w: m.w, scales: m.scales, biases: m.biases, x: genX(n(p, 'in_dim'), set, rng) };
    },
    launch(p) {
      return tiled
        ? { mode: 'threadgroups', grid: [Math.ceil(n(p, 'out_dim') / rowsPerTg), 1, 1], threadgroup: [QT.SG * 32, 1, 1], threadgroupMemory: [QT.XT * 4] }
        : { mode: 'threads', grid: [n(p, 'out_dim'), 1, 1], threadgroup: [NAIVE_TG, 1, 1], threadgroupMemory: [] };
    },
    reference(p, t) {
      const r = qmvRef(
        { bits, w: t.w as Uint32Array, scales: t.scales as Uint16Array, biases: t.biases as Uint16Array },
        0,
        n(p, 'out_dim'),
        n(p, 'in_dim'),
        n(p, 'group_size'),
        t.x as Float32Array,
      );
      return { outputs: { y: Float32Array.from(r.y) }, rules: { y: quantRule(r.mag, n(p, 'in_dim')) } };
    },
    cost(p): Cost {
      // packed weights + scales + biases + x + y; one multiply-add per weight (dequantization not counted)
      const { weights, sb } = qmvCost(bits, n(p, 'out_dim'), n(p, 'in_dim'), n(p, 'group_size'));
      return { bytes: weights + sb + 4 * n(p, 'in_dim') + 4 * n(p, 'out_dim'), flops: 2 * n(p, 'out_dim') * n(p, 'in_dim'), weightBytes: weights };
    },
  };
}

export const qmv4 = denseSpec(4, false);
export const qmv4Tiled = denseSpec(4, true);
export const qmv8 = denseSpec(8, false);
export const qmv8Tiled = denseSpec(8, true);

// ---------------------------------------------------------------------------

const BATCHED_SHAPES: [origin: string, tokens: number, out: number, inDim: number, gs: number][] = [
  ['qwen3-30b-a3b', 5, 768, 2048, 64], // 5 tokens: not a multiple of the 4 per threadgroup
  ['qwen3-30b-a3b', 8, 2048, 768, 128],
  ['mixtral-8x7b', 3, 128, 4096, 32], // rows capped to 128
  ['edge: 1 token, in_dim 544 > the 512-input tile', 1, 3, 544, 32],
  ['edge: 7 tokens, 5 rows, one group', 7, 5, 64, 64],
];

export const qmv4Batched: KernelSpec = {
  name: 'qmv4-batched',
  entry: 'moe_qmv4_batched_f32',
  shader: SHADER,
  group: GROUP,
  description: `4-bit dequantizing mat-vec over N tokens (prefill of one expert): SIMD-group per ${QB.ROWS} rows × ${QB.TOK} tokens, each word dequantized once and used for every token`,
  math: `Y[t,r] = Σ_i W[r,i]·X[t,i], ${DEQ}`,
  params: [{ name: 'n_tokens', flag: 'tokens', description: 'tokens', min: 1 }, ...QPARAMS],
  defaults: { n_tokens: 5, out_dim: 768, in_dim: 2048, group_size: 64 },
  bench: { n_tokens: 32, out_dim: 768, in_dim: 2048, group_size: 64 },
  inputSets: QUANT_INPUT_SETS,
  buffers: [
    ...weightBuffers(4, 0, (p) => n(p, 'out_dim')),
    { index: 3, name: 'x', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => n(p, 'n_tokens') * n(p, 'in_dim') },
    { index: 4, name: 'y', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => n(p, 'n_tokens') * n(p, 'out_dim') },
    ...dimBuffers(5),
    { index: 8, name: 'n_tokens', kind: 'scalar', mslType: 'uint', value: (p) => n(p, 'n_tokens') },
  ],
  threadgroup: [{ index: 0, name: 'xs', bytes: () => QB.TOK * QB.XT * 4 }],
  cases(): KernelCase[] {
    const out: KernelCase[] = [];
    for (const [origin, n_tokens, out_dim, in_dim, group_size] of BATCHED_SHAPES) {
      for (const s of ALL_SETS) out.push({ params: { n_tokens, out_dim, in_dim, group_size }, inputSet: s, origin });
    }
    return out;
  },
  validate: (p) => validateQuant(p, 4, n(p, 'out_dim')),
  inputs(p, set, rng: Rng): Tensors {
    const m = genQuantWeights(n(p, 'out_dim'), n(p, 'in_dim'), 4, n(p, 'group_size'), set, `w:${rng.next()}`);
    return { w: m.w, scales: m.scales, biases: m.biases, x: genX(n(p, 'n_tokens') * n(p, 'in_dim'), set, rng) };
  },
  launch(p) {
    return {
      mode: 'threadgroups',
      grid: [Math.ceil(n(p, 'out_dim') / (QB.SG * QB.ROWS)), Math.ceil(n(p, 'n_tokens') / QB.TOK), 1],
      threadgroup: [QB.SG * 32, 1, 1],
      threadgroupMemory: [QB.TOK * QB.XT * 4],
    };
  },
  reference(p, t) {
    const T = n(p, 'n_tokens');
    const R = n(p, 'out_dim');
    const K = n(p, 'in_dim');
    const m = { bits: 4 as const, w: t.w as Uint32Array, scales: t.scales as Uint16Array, biases: t.biases as Uint16Array };
    const y = new Float32Array(T * R);
    const mag = new Float64Array(T * R);
    for (let tok = 0; tok < T; tok++) {
      const r = qmvRef(m, 0, R, K, n(p, 'group_size'), t.x as Float32Array, tok * K);
      y.set(r.y, tok * R);
      mag.set(r.mag, tok * R);
    }
    return { outputs: { y }, rules: { y: quantRule(mag, K) } };
  },
  cost(p): Cost {
    // the weights once for all tokens; every token's x and y
    const T = n(p, 'n_tokens');
    const { weights, sb } = qmvCost(4, n(p, 'out_dim'), n(p, 'in_dim'), n(p, 'group_size'));
    return { bytes: weights + sb + 4 * T * (n(p, 'in_dim') + n(p, 'out_dim')), flops: 2 * T * n(p, 'out_dim') * n(p, 'in_dim'), weightBytes: weights };
  },
};

// ---------------------------------------------------------------------------

const EXPERT_PARAMS: ParamDef[] = [
  { name: 'n_experts', flag: 'experts', description: 'experts whose weights are stacked', min: 1 },
  { name: 'top_k', flag: 'top-k', description: 'experts selected for the token (slots)', min: 1 },
  { name: 'x_per_pair', flag: 'x-per-pair', description: '1: one input row per slot (down projection), 0: one input shared by all slots (gate/up)', min: 0, max: 1 },
  ...QPARAMS,
];

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
  return {
    name: tiled ? 'qmv4-expert' : 'qmv4-expert-naive',
    entry: tiled ? 'moe_qmv4_expert_f32' : 'moe_qmv4_expert_naive_f32',
    shader: SHADER,
    group: GROUP,
    description: tiled
      ? `Expert-indexed 4-bit mat-vec: the top-k experts of one token in one dispatch (gather by id, as MLX gather_qmv / llama.cpp mul_mv_id), tiled like qmv4-tiled`
      : 'Expert-indexed 4-bit mat-vec, one thread per (row, slot): the baseline for qmv4-expert',
    math: `y[s,r] = Σ_i W[ids[s],r,i]·x[s·x_per_pair, i] for the top_k slots s, ${DEQ}`,
    hasTopK: true,
    params: EXPERT_PARAMS,
    defaults: { n_experts: 16, top_k: 4, x_per_pair: 0, out_dim: 64, in_dim: 2048, group_size: 64 },
    bench: { n_experts: 128, top_k: 8, x_per_pair: 0, out_dim: 768, in_dim: 2048, group_size: 64 },
    inputSets: QUANT_INPUT_SETS,
    buffers: [
      ...weightBuffers(4, 0, (p) => n(p, 'n_experts') * n(p, 'out_dim')),
      { index: 3, name: 'x', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => (n(p, 'x_per_pair') ? n(p, 'top_k') : 1) * n(p, 'in_dim') },
      { index: 4, name: 'y', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => n(p, 'top_k') * n(p, 'out_dim') },
      ...dimBuffers(5),
      { index: 8, name: 'ids', kind: 'array', mslType: 'uint', dtype: 'u32', access: 'read', length: (p) => n(p, 'top_k') },
      { index: 9, name: 'n_experts', kind: 'scalar', mslType: 'uint', value: (p) => n(p, 'n_experts') },
      { index: 10, name: 'x_per_pair', kind: 'scalar', mslType: 'uint', value: (p) => n(p, 'x_per_pair') },
    ],
    threadgroup: tiled ? [{ index: 0, name: 'xs', bytes: () => QT.XT * 4 }] : [],
    cases(): KernelCase[] {
      const out: KernelCase[] = [];
      for (const [origin, n_experts, top_k, x_per_pair, out_dim, in_dim, group_size, sets] of EXPERT_SHAPES) {
        for (const s of sets ?? ALL_SETS) {
          out.push({ params: { n_experts, top_k, x_per_pair, out_dim, in_dim, group_size }, inputSet: s, origin });
        }
      }
      return out;
    },
    validate(p) {
      if (n(p, 'top_k') > n(p, 'n_experts')) return `top_k = ${n(p, 'top_k')} must not exceed n_experts = ${n(p, 'n_experts')}`;
      return validateQuant(p, 4, n(p, 'n_experts') * n(p, 'out_dim'));
    },
    inputs(p, set, rng: Rng): Tensors {
      const E = n(p, 'n_experts');
      const K = n(p, 'top_k');
      const R = n(p, 'out_dim');
      // distinct random experts, in random order
      const ids = new Uint32Array(K);
      const chosen = new Set<number>();
      for (let j = 0; j < K; j++) {
        let e = rng.int(0, E);
        while (chosen.has(e)) e = (e + 1) % E;
        chosen.add(e);
        ids[j] = e;
      }
      const m = emptyQuant(E * R, n(p, 'in_dim'), 4, n(p, 'group_size'));
      const seed = `w:${rng.next()}`;
      // the selected experts' weights from the input set; the others arbitrary
      // packed weights, never to be read (one random expert copied to all of them)
      let filler = -1;
      for (let e = 0; e < E; e++) {
        if (chosen.has(e)) genQuantWeights(R, n(p, 'in_dim'), 4, n(p, 'group_size'), set, `${seed}:${e}`, m, e * R);
        else if (filler < 0) {
          fillRandomPacked(m, e * R, R, `${seed}:filler`);
          filler = e;
        } else copyRows(m, filler * R, e * R, R);
      }
      const x = genX((n(p, 'x_per_pair') ? K : 1) * n(p, 'in_dim'), set, rng);
      return { w: m.w, scales: m.scales, biases: m.biases, x, ids };
    },
    launch(p) {
      return tiled
        ? { mode: 'threadgroups', grid: [Math.ceil(n(p, 'out_dim') / rowsPerTg), n(p, 'top_k'), 1], threadgroup: [QT.SG * 32, 1, 1], threadgroupMemory: [QT.XT * 4] }
        : { mode: 'threads', grid: [n(p, 'out_dim'), n(p, 'top_k'), 1], threadgroup: [NAIVE_TG, 1, 1], threadgroupMemory: [] };
    },
    reference(p, t) {
      const K = n(p, 'top_k');
      const R = n(p, 'out_dim');
      const I = n(p, 'in_dim');
      const m = { bits: 4 as const, w: t.w as Uint32Array, scales: t.scales as Uint16Array, biases: t.biases as Uint16Array };
      const ids = t.ids as Uint32Array;
      const y = new Float32Array(K * R);
      const mag = new Float64Array(K * R);
      for (let s = 0; s < K; s++) {
        const e = ids[s] as number;
        if (e >= n(p, 'n_experts')) continue; // zeros
        const r = qmvRef(m, e * R, R, I, n(p, 'group_size'), t.x as Float32Array, n(p, 'x_per_pair') ? s * I : 0);
        y.set(r.y, s * R);
        mag.set(r.mag, s * R);
      }
      return { outputs: { y }, rules: { y: quantRule(mag, I) } };
    },
    cost(p): Cost {
      // only the selected experts' packed weights, scales and biases; x (per slot or shared), y and the ids
      const K = n(p, 'top_k');
      const { weights, sb } = qmvCost(4, n(p, 'out_dim'), n(p, 'in_dim'), n(p, 'group_size'));
      const xBytes = 4 * (n(p, 'x_per_pair') ? K : 1) * n(p, 'in_dim');
      return { bytes: K * (weights + sb) + xBytes + 4 * K * n(p, 'out_dim') + 4 * K, flops: 2 * K * n(p, 'out_dim') * n(p, 'in_dim'), weightBytes: K * weights };
    },
  };
}

export const qmv4Expert = expertSpec(true);
export const qmv4ExpertNaive = expertSpec(false);

// ---------------------------------------------------------------------------

const GATE_UP_SHAPES: [origin: string, out: number, inDim: number, gs: number, act: number][] = [
  ['qwen3-30b-a3b', 768, 2048, 64, 0],
  ['qwen3-30b-a3b', 768, 2048, 64, 1],
  ['mixtral-8x7b', 256, 4096, 128, 0], // rows capped to 256
  ['edge: in_dim 800, 13 rows', 13, 800, 32, 1],
  ['edge: in_dim 2112 > tile, 3 rows', 3, 2112, 64, 0],
];

export const qgateUp4: KernelSpec = {
  name: 'qgate-up4',
  entry: 'moe_qgate_up4_f32',
  shader: SHADER,
  group: GROUP,
  description: `Fused 4-bit gate + up projection with the activation as a parameter: act(Wg·x)·(Wu·x), both matrices in one pass over x cached in threadgroup memory (SIMD-group per ${QG_ROWS} rows)`,
  math:
    `y[r] = act(Σ_i Wg[r,i]·x[i]) · Σ_i Wu[r,i]·x[i], ${DEQ}; ` +
    'act=0: SiLU g/(1+e^−g); act=1: GELU-tanh 0.5·g·(1+tanh(√(2/π)(g+0.044715g³)))',
  params: [...QPARAMS, { name: 'act', flag: 'act', description: `activation: ${ACTIVATIONS.map((a, i) => `${i} = ${a}`).join(', ')}`, min: 0, max: 1 }],
  defaults: { out_dim: 768, in_dim: 2048, group_size: 64, act: 0 },
  bench: { out_dim: 768, in_dim: 2048, group_size: 64, act: 0 },
  inputSets: QUANT_INPUT_SETS,
  buffers: [
    ...weightBuffers(4, 0, (p) => n(p, 'out_dim'), 'gate_'),
    ...weightBuffers(4, 3, (p) => n(p, 'out_dim'), 'up_'),
    { index: 6, name: 'x', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => n(p, 'in_dim') },
    { index: 7, name: 'y', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => n(p, 'out_dim') },
    ...dimBuffers(8),
    { index: 11, name: 'act', kind: 'scalar', mslType: 'uint', value: (p) => n(p, 'act') },
  ],
  threadgroup: [{ index: 0, name: 'xs', bytes: () => QT.XT * 4 }],
  cases(): KernelCase[] {
    const out: KernelCase[] = [];
    for (const [origin, out_dim, in_dim, group_size, act] of GATE_UP_SHAPES) {
      for (const s of ALL_SETS) out.push({ params: { out_dim, in_dim, group_size, act }, inputSet: s, origin });
    }
    return out;
  },
  validate(p) {
    if (n(p, 'act') !== 0 && n(p, 'act') !== 1) return `act = ${n(p, 'act')}: 0 = silu, 1 = gelu-tanh`;
    return validateQuant(p, 4, 2 * n(p, 'out_dim'));
  },
  inputs(p, set, rng: Rng): Tensors {
    const [R, I, G] = [n(p, 'out_dim'), n(p, 'in_dim'), n(p, 'group_size')];
    const seed = `w:${rng.next()}`;
    const g = genQuantWeights(R, I, 4, G, set, `${seed}:gate`);
    const u = genQuantWeights(R, I, 4, G, set, `${seed}:up`);
    return {
      gate_w: g.w,
      gate_scales: g.scales,
      gate_biases: g.biases,
      up_w: u.w,
      up_scales: u.scales,
      up_biases: u.biases,
      x: genX(I, set, rng),
    };
  },
  launch(p) {
    return {
      mode: 'threadgroups',
      grid: [Math.ceil(n(p, 'out_dim') / (QT.SG * QG_ROWS)), 1, 1],
      threadgroup: [QT.SG * 32, 1, 1],
      threadgroupMemory: [QT.XT * 4],
    };
  },
  reference(p, t) {
    const r = qgateUpRef(
      { bits: 4, w: t.gate_w as Uint32Array, scales: t.gate_scales as Uint16Array, biases: t.gate_biases as Uint16Array },
      { bits: 4, w: t.up_w as Uint32Array, scales: t.up_scales as Uint16Array, biases: t.up_biases as Uint16Array },
      n(p, 'out_dim'),
      n(p, 'in_dim'),
      n(p, 'group_size'),
      t.x as Float32Array,
      n(p, 'act'),
    );
    return {
      outputs: { y: Float32Array.from(r.y) },
      rules: { y: quantRule(r.mag, n(p, 'in_dim'), `, through act (|act'| ≤ 1.13) and the product; f32 act: a few ulp (rtol)`) },
    };
  },
  cost(p): Cost {
    // two matrices' packed weights, scales and biases + x + y; 2 multiply-adds per weight pair, ~8 flops per output for act and the product
    const { weights, sb } = qmvCost(4, n(p, 'out_dim'), n(p, 'in_dim'), n(p, 'group_size'));
    return { bytes: 2 * (weights + sb) + 4 * n(p, 'in_dim') + 4 * n(p, 'out_dim'), flops: 4 * n(p, 'out_dim') * n(p, 'in_dim') + 8 * n(p, 'out_dim'), weightBytes: 2 * weights };
  },
};

/** Every quantized spec, in the order `moe kernels` lists them. */
export const QUANT_SPECS: KernelSpec[] = [qmv4, qmv4Tiled, qmv8, qmv8Tiled, qgateUp4, qmv4Batched, qmv4Expert, qmv4ExpertNaive];
