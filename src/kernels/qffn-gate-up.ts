/**
 * moe_qffn_gate_up_{q4,q8,f32} (shaders/moe_qffn.metal): for one decode token,
 * every top-k expert's gate and up projections and the activation in one
 * dispatch, writing the activated intermediate [top_k, out_dim].
 *
 * Also the pieces the down_accum spec (qffn-down-accum.ts) shares: the launch
 * geometry, the formats, stacked expert weights and the buffer builder.
 */
import { UsageError } from '../errors.js';
import type { QuantBits } from '../quant/affine.js';
import { ACTIVATIONS } from '../reference/quant.js';
import { ffnGateUpRef, type ExpertWeights } from '../reference/qffn.js';
import { fillUniform } from '../util/fastrng.js';
import type { Rng } from '../util/rng.js';
import { copyRows, emptyQuant, fillRandomPacked, genF32Weights, genQuantWeights, genX, QUANT_INPUT_SETS, quantRule } from './common/quant.js';
import { num as n } from './common/params.js';
import type { BufferDecl, Cost, InputSet, KernelCase, KernelSpec, ParamDef, Params, Tensors } from './spec.js';

/** Geometry of shaders/moe_qffn.metal (#define FF_*, Q4_GU_*). */
export const FF = { SG: 4, GU_ROWS: 2, DN_ROWS: 2, XT: 6144, GU4_SG: 8, GU4_U: 3, GU4_XT: 2048, DN4_XT: 6144 } as const;

/** SIMD-groups per threadgroup and rows (gate_up: row pairs) per SIMD-group of one fused kernel. */
export interface FfGeometry {
  sg: number;
  rows: number;
}

/**
 * The q4 pair's geometry (#define Q4_GU_SG and Q4_GU_U; down_accum shares FF_SG and FF_DN_ROWS). For
 * bench/qffn-variants.sh only, MOE_QFFN_Q4_GEOMETRY="guSg,guRows,dnSg,dnRows"
 * launches a candidate shader with its own geometry; a launch that does not
 * match its shader leaves rows unwritten, which verify reports.
 */
function q4Geometry(): { gu: FfGeometry; dn: FfGeometry } {
  const env = process.env.MOE_QFFN_Q4_GEOMETRY;
  const v = env ? env.split(',').map(Number) : [];
  if (env && (v.length !== 4 || !v.every((x) => Number.isInteger(x) && x >= 1 && x <= 32)))
    throw new UsageError(`MOE_QFFN_Q4_GEOMETRY = ${JSON.stringify(env)}: expected four integers 1..32 (gate_up SIMD-groups, row pairs; down SIMD-groups, rows)`);
  const [a, b, c, d] = env ? v : [FF.GU4_SG, FF.GU4_U, FF.SG, FF.DN_ROWS];
  return { gu: { sg: a!, rows: b! }, dn: { sg: c!, rows: d! } };
}

/** Launch geometry of one fused kernel in one format (`shipped`: that of shaders/moe_qffn.metal, whatever the environment says). */
export function geometryOf(kernel: 'gate-up' | 'down-accum', f: FfnFormat, shipped = false): FfGeometry {
  if (f === 'q4' && shipped) return kernel === 'gate-up' ? { sg: FF.GU4_SG, rows: FF.GU4_U } : { sg: FF.SG, rows: FF.DN_ROWS };
  if (f === 'q4') return kernel === 'gate-up' ? q4Geometry().gu : q4Geometry().dn;
  return { sg: FF.SG, rows: kernel === 'gate-up' ? FF.GU_ROWS : FF.DN_ROWS };
}

/** Inputs of the staged tile of one fused kernel in one format (the q4 pair has its own, sized for registers). */
export const tileOf = (kernel: 'gate-up' | 'down-accum', f: FfnFormat): number => (f !== 'q4' ? FF.XT : kernel === 'gate-up' ? FF.GU4_XT : FF.DN4_XT);

export type FfnFormat = 'q4' | 'q8' | 'f32';
export const bitsOf = (f: FfnFormat): QuantBits | 32 => (f === 'q4' ? 4 : f === 'q8' ? 8 : 32);
/** Inputs per 16-byte chunk: what group_size (quantized) or in_dim (f32) must be a multiple of. */
export const inputsPerChunk = (f: FfnFormat): number => (f === 'q4' ? 32 : f === 'q8' ? 16 : 4);

/** Name, entry, shader and group of one fused kernel ('gate-up' or 'down-accum') in one format. */
export function ffnIdentity(kernel: 'gate-up' | 'down-accum', f: FfnFormat): Pick<KernelSpec, 'name' | 'entry' | 'shader' | 'group' | 'hasTopK' | 'threadgroup' | 'inputSets'> {
  return { name: `qffn-${kernel}-${f}`, entry: `moe_qffn_${kernel.replace('-', '_')}_${f}`, shader: 'moe_qffn.metal', group: 'fused expert stage', hasTopK: true, threadgroup: [], inputSets: ffnInputSets(f) };
}
export const DEQ_NOTE = 'W = q·scale + bias per group (MLX affine, bf16 scale/bias) or f32';

export function ffnInputSets(f: FfnFormat): InputSet[] {
  return f === 'f32' ? QUANT_INPUT_SETS.filter((s) => s.name !== 'mlx') : QUANT_INPUT_SETS;
}

export function ffnParams(f: FfnFormat, extra: ParamDef[]): ParamDef[] {
  return [
    { name: 'n_experts', flag: 'experts', description: 'experts whose weights are stacked', min: 1 },
    { name: 'top_k', flag: 'top-k', description: 'experts selected for the token (slots)', min: 1 },
    { name: 'out_dim', flag: 'out-dim', description: 'output rows of each expert matrix', min: 1 },
    { name: 'in_dim', flag: 'in-dim', description: 'input length', min: 4 },
    ...(f === 'f32' ? [] : [{ name: 'group_size', flag: 'group-size', description: 'inputs per scale/bias group (a multiple of 32 at 4 bits, 16 at 8)', min: 16 }]),
    ...extra,
  ];
}

/** Shape checks of both fused kernels; `rows` is the number of stacked rows per matrix. */
export function validateFfn(f: FfnFormat, p: Params, matrices: number): string | null {
  const [E, K, I] = [n(p, 'n_experts'), n(p, 'top_k'), n(p, 'in_dim')];
  if (K > E) return `top_k = ${K} must not exceed n_experts = ${E}`;
  const ipc = inputsPerChunk(f);
  if (f === 'f32') {
    if (I % ipc !== 0) return `in_dim = ${I} must be a multiple of 4 (16-byte loads)`;
  } else {
    const g = n(p, 'group_size');
    if (g % ipc !== 0) return `group_size = ${g} must be a multiple of ${ipc} at ${bitsOf(f)} bits (a 16-byte chunk never straddles two groups)`;
    if (I % g !== 0) return `in_dim = ${I} must be a multiple of group_size = ${g}`;
  }
  const bytes = (matrices * E * n(p, 'out_dim') * I * bitsOf(f)) / 8;
  if (bytes > 2 ** 30) return `weights of ${(bytes / 2 ** 30).toFixed(1)} GiB are too large to verify`;
  return null;
}

type Unindexed<B> = B extends unknown ? Omit<B, 'index' | 'name'> : never;
type Decl = Unindexed<BufferDecl>;
/** A buffer without its index: name, declaration, whether only the quantized formats have it. */
export type Entry = [name: string, decl: Decl, quantOnly?: boolean];

/** Buffer declarations numbered in order, the quantized-only ones left out for f32 (as the shader numbers them). */
export function numberBuffers(f: FfnFormat, entries: Entry[]): BufferDecl[] {
  return entries.filter(([, , q]) => !(q && f === 'f32')).map(([name, d], index) => ({ ...d, index, name }) as BufferDecl);
}

/** The three buffers of one stacked weight tensor (prefix for gate/up). */
export function weightEntries(f: FfnFormat, prefix: string, rowsOf: (p: Params) => number): Entry[] {
  const bits = bitsOf(f);
  const groups = (p: Params): number => (rowsOf(p) * n(p, 'in_dim')) / n(p, 'group_size');
  if (f === 'f32') return [[`${prefix}w`, { kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => rowsOf(p) * n(p, 'in_dim') }]];
  return [
    [`${prefix}w`, { kind: 'array', mslType: 'uint', dtype: 'u32', access: 'read', length: (p) => (rowsOf(p) * n(p, 'in_dim') * bits) / 32 }],
    [`${prefix}scales`, { kind: 'array', mslType: 'bfloat', dtype: 'bf16', access: 'read', length: groups }, true],
    [`${prefix}biases`, { kind: 'array', mslType: 'bfloat', dtype: 'bf16', access: 'read', length: groups }, true],
  ];
}

export const scalarEntry = (name: string, quantOnly = false): Entry => [name, { kind: 'scalar', mslType: 'uint', value: (p: Params) => n(p, name) }, quantOnly];

/** The shape scalars both kernels take after their arrays. */
export const dimEntries = (): Entry[] => [scalarEntry('out_dim'), scalarEntry('in_dim'), scalarEntry('group_size', true), scalarEntry('n_experts')];

/** A row of a default sweep: its params without out_dim and group_size, and whether it runs every input set. */
export interface SweepRow {
  origin: string;
  out: number;
  gs: number;
  sets: 'all' | 'one';
  params: Params;
}

/**
 * The default sweep of a format: the full model rows for 4 bits only (the
 * other formats share the code paths; CPU verify of the catalog has a
 * budget), one input set for the 'one' rows.
 */
export function ffnCases(f: FfnFormat, rows: SweepRow[]): KernelCase[] {
  const all = ffnInputSets(f).map((s) => s.name);
  return rows.flatMap(({ origin, out, gs, sets, params }) => {
    const p: Params = { ...params, out_dim: f === 'q4' ? out : Math.min(out, 40), ...(f === 'f32' ? {} : { group_size: gs }) };
    return (sets === 'all' ? all : [f === 'q4' ? 'mlx' : 'normal']).map((inputSet) => ({ params: p, inputSet, origin }));
  });
}

/** top_k distinct experts of n_experts in random order (partial Fisher–Yates). */
export function pickExperts(E: number, K: number, rng: Rng): Uint32Array {
  const all = Uint32Array.from({ length: E }, (_, i) => i);
  for (let j = 0; j < K; j++) {
    const r = j + rng.int(0, E - j);
    const t = all[j] as number;
    all[j] = all[r] as number;
    all[r] = t;
  }
  return all.slice(0, K);
}

/**
 * Stacked weights [E, R, I] of one matrix kind: the selected experts from the
 * input set, the others arbitrary values that the kernel must never read.
 */
export function stackedWeights(f: FfnFormat, p: Params, R: number, ids: Uint32Array, set: string, seed: string): { m: ExpertWeights; tensors: Tensors } {
  const [E, I] = [n(p, 'n_experts'), n(p, 'in_dim')];
  const chosen = new Set(ids);
  if (f === 'f32') {
    const w = fillUniform(new Float32Array(E * R * I), `${seed}:others`, 7);
    for (const e of chosen) w.set(genF32Weights(R, I, 4, set, `${seed}:${e}`), e * R * I);
    return { m: { bits: 32, w }, tensors: { w } };
  }
  const bits = bitsOf(f) as QuantBits;
  const G = n(p, 'group_size');
  const q = emptyQuant(E * R, I, bits, G);
  let filler = -1;
  for (let e = 0; e < E; e++) {
    if (chosen.has(e)) genQuantWeights(R, I, bits, G, set, `${seed}:${e}`, q, e * R);
    else if (filler < 0) {
      fillRandomPacked(q, e * R, R, `${seed}:filler`);
      filler = e;
    } else copyRows(q, filler * R, e * R, R);
  }
  return { m: { bits, w: q.w, scales: q.scales, biases: q.biases }, tensors: { w: q.w, scales: q.scales, biases: q.biases } };
}

/** Bytes of the packed words and of the scales + biases of `rows` rows of in_dim. */
export function matrixBytes(f: FfnFormat, p: Params, rows: number): { weights: number; sb: number } {
  const I = n(p, 'in_dim');
  return { weights: (rows * I * bitsOf(f)) / 8, sb: f === 'f32' ? 0 : (4 * rows * I) / n(p, 'group_size') };
}

export const prefixed = (t: Tensors, prefix: string): Tensors => Object.fromEntries(Object.entries(t).map(([k, v]) => [`${prefix}${k}`, v]));

/** Rows of one stacked matrix: every expert's out_dim rows. */
export const stackedRows = (p: Params): number => n(p, 'n_experts') * n(p, 'out_dim');

export const groupOf = (f: FfnFormat, p: Params): number => (f === 'f32' ? 4 : n(p, 'group_size'));

// ---------------------------------------------------------------------------

type Shape = [origin: string, experts: number, topK: number, out: number, inDim: number, gs: number, act: number, sets: 'all' | 'one'];

/** Kept small: CPU verify of the whole catalog has a budget. */
const SHAPES: Shape[] = [
  ['qwen3-30b-a3b (16 of its 128 experts stacked)', 16, 8, 768, 2048, 64, 1, 'one'],
  ['qwen3-30b-a3b, rows capped to 24', 16, 8, 24, 2048, 64, 0, 'all'],
  ['edge: in_dim 2112 (chunks not a multiple of 64 lanes·steps), 13 rows, one slot', 3, 1, 13, 2112, 64, 1, 'all'],
  ['edge: group_size 128, 9 rows, every expert selected', 4, 4, 9, 512, 128, 0, 'one'],
  ['edge: in_dim 32 (fewer chunks than lanes)', 5, 2, 11, 32, 32, 1, 'one'],
  ['edge: in_dim 6400 > the staged tile (6144 inputs; 2048 at q4), 5 rows', 3, 2, 5, 6400, 64, 0, 'one'],
];

function gateUpSpec(f: FfnFormat): KernelSpec {
  const shipped = geometryOf('gate-up', f, true);
  return {
    ...ffnIdentity('gate-up', f),
    description:
      `Fused decode expert stage, part 1 (${f}): every top-k expert's gate and up projections and the activation in one dispatch; ` +
      `SIMD-group per ${shipped.rows} rows of gate and up of one slot (${shipped.sg * shipped.rows} per threadgroup), 16-byte chunks, clamped loads, x staged pre-scaled in threadgroup memory (${tileOf('gate-up', f)} inputs a tile)` +
      (f === 'q4' ? ', one row pair after the other with the next one\'s loads in flight' : ', every load of a step in flight at once'),
    math:
      `h[s,r] = act(Σ_i Wg[ids[s],r,i]·x[i]) · Σ_i Wu[ids[s],r,i]·x[i], ${DEQ_NOTE}; an id ≥ n_experts gives a row of zeros; ` +
      'act=0: SiLU g/(1+e^−g); act=1: GELU-tanh 0.5·g·(1+tanh(√(2/π)(g+0.044715g³)))',
    params: ffnParams(f, [{ name: 'act', flag: 'act', description: `activation: ${ACTIVATIONS.map((a, i) => `${i} = ${a}`).join(', ')}`, min: 0, max: 1 }]),
    defaults: { n_experts: 16, top_k: 8, out_dim: 24, in_dim: 2048, ...(f === 'f32' ? {} : { group_size: 64 }), act: 0 },
    // f32: 32 experts stacked (128 would be 1.5 GiB); a dispatch reads the selected 8 either way
    bench: { n_experts: f === 'f32' ? 32 : 128, top_k: 8, out_dim: 768, in_dim: 2048, ...(f === 'f32' ? {} : { group_size: 64 }), act: 0 },
    buffers: numberBuffers(f, [
      ...weightEntries(f, 'gate_', stackedRows),
      ...weightEntries(f, 'up_', stackedRows),
      ['x', { kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => n(p, 'in_dim') }],
      ['h', { kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => n(p, 'top_k') * n(p, 'out_dim') }],
      ['ids', { kind: 'array', mslType: 'uint', dtype: 'u32', access: 'read', length: (p) => n(p, 'top_k') }],
      ...dimEntries(),
      scalarEntry('act'),
    ]),
    cases: () => ffnCases(f, SHAPES.map(([origin, n_experts, top_k, out, in_dim, gs, act, sets]) => ({ origin, out, gs, sets, params: { n_experts, top_k, in_dim, act } }))),
    validate(p) {
      if (n(p, 'act') !== 0 && n(p, 'act') !== 1) return `act = ${n(p, 'act')}: 0 = silu, 1 = gelu-tanh`;
      return validateFfn(f, p, 2);
    },
    inputs(p, set, rng: Rng): Tensors {
      const ids = pickExperts(n(p, 'n_experts'), n(p, 'top_k'), rng);
      const seed = `w:${rng.next()}`;
      const g = stackedWeights(f, p, n(p, 'out_dim'), ids, set, `${seed}:gate`);
      const u = stackedWeights(f, p, n(p, 'out_dim'), ids, set, `${seed}:up`);
      return { ...prefixed(g.tensors, 'gate_'), ...prefixed(u.tensors, 'up_'), x: genX(n(p, 'in_dim'), set, rng), ids };
    },
    launch(p) {
      const { sg, rows } = geometryOf('gate-up', f);
      return { mode: 'threadgroups', grid: [Math.ceil(n(p, 'out_dim') / (sg * rows)), n(p, 'top_k'), 1], threadgroup: [sg * 32, 1, 1], threadgroupMemory: [] };
    },
    reference(p, t) {
      const m = (prefix: string): ExpertWeights =>
        f === 'f32'
          ? { bits: 32, w: t[`${prefix}w`] as Float32Array }
          : { bits: bitsOf(f) as QuantBits, w: t[`${prefix}w`] as Uint32Array, scales: t[`${prefix}scales`] as Uint16Array, biases: t[`${prefix}biases`] as Uint16Array };
      const shape = { nExperts: n(p, 'n_experts'), outDim: n(p, 'out_dim'), inDim: n(p, 'in_dim'), groupSize: groupOf(f, p) };
      const r = ffnGateUpRef(m('gate_'), m('up_'), t.ids as Uint32Array, shape, t.x as Float32Array, n(p, 'act'));
      return {
        outputs: { h: Float32Array.from(r.y) },
        rules: { h: quantRule(r.mag, n(p, 'in_dim'), `, through act (|act'| ≤ 1.13) and the product; f32 act: a few ulp (rtol)`) },
      };
    },
    cost(p): Cost {
      // the selected experts' gate and up (words, scales, biases), x, h and the ids; 2 multiply-adds per weight pair, ~8 flops per output
      const K = n(p, 'top_k');
      const R = n(p, 'out_dim');
      const { weights, sb } = matrixBytes(f, p, K * R);
      return { bytes: 2 * (weights + sb) + 4 * n(p, 'in_dim') + 4 * K * R + 4 * K, flops: 4 * K * R * n(p, 'in_dim') + 8 * K * R, weightBytes: 2 * weights };
    },
  };
}

export const qffnGateUpQ4 = gateUpSpec('q4');
export const qffnGateUpQ8 = gateUpSpec('q8');
export const qffnGateUpF32 = gateUpSpec('f32');
