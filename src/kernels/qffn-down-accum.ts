/**
 * moe_qffn_down_accum_{q4,q8,f32} (shaders/moe_qffn.metal): for one decode
 * token, every top-k expert's down projection times its routing weight,
 * summed into the output in one dispatch, with the shared expert's output
 * and the residual added on request. A SIMD-group owns output rows and loops
 * over all (slot, chunk) pairs of them, so the sum over the slots needs no
 * atomics.
 */
import type { QuantBits } from '../quant/affine.js';
import { ffnDownAccumRef, type ExpertWeights } from '../reference/qffn.js';
import type { Rng } from '../util/rng.js';
import { genX, quantRule } from './common/quant.js';
import { num as n } from './common/params.js';
import {
  bitsOf,
  DEQ_NOTE,
  geometryOf,
  ffnIdentity,
  ffnParams,
  groupOf,
  matrixBytes,
  numberBuffers,
  pickExperts,
  dimEntries,
  ffnCases,
  scalarEntry,
  stackedRows,
  stackedWeights,
  tileOf,
  validateFfn,
  weightEntries,
  type Entry,
  type FfnFormat,
} from './qffn-gate-up.js';
import type { Cost, KernelSpec, Params, Tensors } from './spec.js';

type Shape = [origin: string, experts: number, topK: number, out: number, inDim: number, gs: number, shared: number, residual: number, sets: 'all' | 'one'];

/** Kept small: CPU verify of the whole catalog has a budget. */
const SHAPES: Shape[] = [
  ['qwen3-30b-a3b (16 of its 128 experts stacked), with residual', 16, 8, 2048, 768, 64, 0, 1, 'one'],
  ['qwen3-30b-a3b, rows capped to 20', 16, 8, 20, 768, 64, 0, 0, 'all'],
  // top-8 × 1408 inputs: more chunks than one staged tile (6144 inputs), the boundary inside a slot
  ['edge: in_dim 1408 (as qwen1.5-moe-a2.7b), top-8, shared expert and residual, 12 rows', 12, 8, 12, 1408, 64, 1, 1, 'all'],
  ['edge: in_dim 800 (25 chunks at 4 bits), 7 rows, one slot, shared only', 3, 1, 7, 800, 32, 1, 0, 'one'],
  ['edge: every expert selected, in_dim 32 (fewer pairs than lanes)', 3, 3, 9, 32, 32, 0, 1, 'one'],
];

/** Routing weights of the input set: positive, summing to 1 (renormalised top-k); 'large' spreads them. */
function routeWeights(K: number, set: string, rng: Rng): Float32Array {
  const w = Float32Array.from({ length: K }, () => (set === 'large' ? Math.exp(3 * rng.normal()) : 0.05 + rng.next() / 2 ** 32));
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / sum);
}

function downSpec(f: FfnFormat): KernelSpec {
  const shipped = geometryOf('down-accum', f, true);
  const vec = (name: string, length: (p: Params) => number, access: 'read' | 'write' = 'read'): Entry => [name, { kind: 'array', mslType: 'float', dtype: 'f32', access, length }];
  return {
    ...ffnIdentity('down-accum', f),
    description:
      `Fused decode expert stage, part 2 (${f}): every top-k expert's down projection, weighted by routing and summed into the output in one dispatch (+ shared expert, + residual); ` +
      `SIMD-group per ${shipped.rows} output rows (${shipped.sg * shipped.rows} per threadgroup) over all (slot, chunk) pairs, 16-byte chunks, clamped loads all in flight, h staged pre-scaled in threadgroup memory (${tileOf('down-accum', f)} inputs a tile)`,
    math: `out[r] = Σ_s route_w[s]·Σ_i Wd[ids[s],r,i]·h[s,i] (+ shared_gate·shared[r] if add_shared) (+ residual[r] if add_residual), ${DEQ_NOTE}; an id ≥ n_experts adds nothing`,
    params: ffnParams(f, [
      { name: 'add_shared', flag: 'add-shared', description: '1: add shared_gate·shared (the shared expert output)', min: 0, max: 1 },
      { name: 'add_residual', flag: 'add-residual', description: '1: add the residual', min: 0, max: 1 },
    ]),
    defaults: { n_experts: 16, top_k: 8, out_dim: 20, in_dim: 768, ...(f === 'f32' ? {} : { group_size: 64 }), add_shared: 0, add_residual: 1 },
    // f32: 32 experts stacked (128 would be 1.5 GiB); a dispatch reads the selected 8 either way
    bench: { n_experts: f === 'f32' ? 32 : 128, top_k: 8, out_dim: 2048, in_dim: 768, ...(f === 'f32' ? {} : { group_size: 64 }), add_shared: 0, add_residual: 1 },
    buffers: numberBuffers(f, [
      ...weightEntries(f, '', stackedRows),
      vec('h', (p) => n(p, 'top_k') * n(p, 'in_dim')),
      vec('out', (p) => n(p, 'out_dim'), 'write'),
      ['ids', { kind: 'array', mslType: 'uint', dtype: 'u32', access: 'read', length: (p) => n(p, 'top_k') }],
      vec('route_w', (p) => n(p, 'top_k')),
      vec('shared', (p) => n(p, 'out_dim')),
      vec('shared_gate', () => 1),
      vec('residual', (p) => n(p, 'out_dim')),
      ...dimEntries(),
      scalarEntry('top_k'),
      scalarEntry('add_shared'),
      scalarEntry('add_residual'),
    ]),
    cases: () => ffnCases(f, SHAPES.map(([origin, n_experts, top_k, out, in_dim, gs, add_shared, add_residual, sets]) => ({ origin, out, gs, sets, params: { n_experts, top_k, in_dim, add_shared, add_residual } }))),
    validate(p) {
      for (const k of ['add_shared', 'add_residual']) if (n(p, k) !== 0 && n(p, k) !== 1) return `${k} = ${n(p, k)} must be 0 or 1`;
      return validateFfn(f, p, 1);
    },
    inputs(p, set, rng: Rng): Tensors {
      const [K, R, I] = [n(p, 'top_k'), n(p, 'out_dim'), n(p, 'in_dim')];
      const ids = pickExperts(n(p, 'n_experts'), K, rng);
      const { tensors } = stackedWeights(f, p, R, ids, set, `w:${rng.next()}`);
      // the activated intermediate of every slot (zeros for the zeros set: only the extras remain)
      const h = genX(K * I, set, rng);
      return {
        ...tensors,
        h,
        ids,
        route_w: routeWeights(K, set, rng),
        shared: genX(R, 'normal', rng),
        shared_gate: Float32Array.of(0.25 + rng.next() / 2 ** 33),
        residual: genX(R, 'normal', rng),
      };
    },
    launch(p) {
      const { sg, rows } = geometryOf('down-accum', f);
      return { mode: 'threadgroups', grid: [Math.ceil(n(p, 'out_dim') / (sg * rows)), 1, 1], threadgroup: [sg * 32, 1, 1], threadgroupMemory: [] };
    },
    reference(p, t) {
      const m: ExpertWeights =
        f === 'f32'
          ? { bits: 32, w: t.w as Float32Array }
          : { bits: bitsOf(f) as QuantBits, w: t.w as Uint32Array, scales: t.scales as Uint16Array, biases: t.biases as Uint16Array };
      const shape = { nExperts: n(p, 'n_experts'), outDim: n(p, 'out_dim'), inDim: n(p, 'in_dim'), groupSize: groupOf(f, p) };
      const r = ffnDownAccumRef(m, t.ids as Uint32Array, t.route_w as Float32Array, shape, t.h as Float32Array, {
        shared: n(p, 'add_shared') ? (t.shared as Float32Array) : undefined,
        sharedGate: (t.shared_gate as Float32Array)[0],
        residual: n(p, 'add_residual') ? (t.residual as Float32Array) : undefined,
      });
      return {
        outputs: { out: Float32Array.from(r.y) },
        rules: { out: quantRule(r.mag, n(p, 'top_k') * n(p, 'in_dim'), '; summed over the top_k slots (length top_k·in_dim), routing weights and extras included in the magnitude') },
      };
    },
    cost(p): Cost {
      // the selected experts' down matrices (words, scales, biases), h, route_w, ids, out and the extras read
      const [K, R, I] = [n(p, 'top_k'), n(p, 'out_dim'), n(p, 'in_dim')];
      const { weights, sb } = matrixBytes(f, p, K * R);
      const extras = 4 * R * (n(p, 'add_shared') + n(p, 'add_residual'));
      return { bytes: weights + sb + 4 * K * I + 8 * K + 4 * R + extras, flops: 2 * K * R * I + 2 * R, weightBytes: weights };
    },
  };
}

export const qffnDownAccumQ4 = downSpec('q4');
export const qffnDownAccumQ8 = downSpec('q8');
export const qffnDownAccumF32 = downSpec('f32');
