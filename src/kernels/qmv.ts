/**
 * Dense dequantizing mat-vecs y = W·x over MLX affine weights (moe_quant.metal),
 * 4 and 8 bits: naive (one thread per row, x from device memory) and tiled
 * (SIMD-group per row, x cached in threadgroup memory).
 *
 * Buffers follow the engines' layout: packed weights uint32
 * [out_dim, in_dim·bits/32], scales and biases bfloat [out_dim, in_dim/group_size],
 * x f32, and out_dim, in_dim, group_size each a `constant uint&`.
 */
import type { QuantBits } from '../quant/affine.js';
import { qmvRef } from '../reference/quant.js';
import type { Rng } from '../util/rng.js';
import { cross } from './common/cases.js';
import { f32In, f32Out } from './common/buffers.js';
import { groups, threadsOf } from './common/launch.js';
import { num, param } from './common/params.js';
import { ALL_QUANT_SETS, DEQ, dimBuffers, genQuantWeights, genX, NAIVE_TG, QPARAMS, QT, QUANT_GROUP, QUANT_INPUT_SETS, QUANT_SHADER, qmvCost, quantRule, validateQuant, weightBuffers } from './common/quant.js';
import { defineKernel, type Cost, type KernelSpec, type Tensors } from './spec.js';

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

/** Dense mat-vec y = W·x, naive or tiled. */
function denseSpec(bits: QuantBits, tiled: boolean): KernelSpec {
  const rowsPerTg = QT.SG * QT.ROWS;
  return defineKernel({
    name: `qmv${bits}${tiled ? '-tiled' : ''}`, entry: `moe_qmv${bits}${tiled ? '_tiled' : ''}_f32`, shader: QUANT_SHADER, group: QUANT_GROUP,
    description: tiled
      ? `${bits}-bit dequantizing mat-vec: SIMD-group per row (${QT.ROWS} rows each, ${rowsPerTg} per threadgroup), x cached in threadgroup memory ${QT.XT} inputs at a time, lanes read consecutive words`
      : `${bits}-bit dequantizing mat-vec: one thread per output row, x read from device memory`,
    params: QPARAMS,
    buffers: [
      ...weightBuffers(bits, 0, (p) => num(p, 'out_dim')),
      f32In(3, 'x', param('in_dim')),
      f32Out(4, 'y', param('out_dim')),
      ...dimBuffers(5),
    ],
    threadgroup: tiled ? [{ index: 0, name: 'xs', bytes: () => QT.XT * 4 }] : [],
    math: `y[r] = Σ_i W[r,i]·x[i], ${DEQ}`,
    defaults: { out_dim: 768, in_dim: 2048, group_size: 64 },
    bench: { out_dim: 768, in_dim: 2048, group_size: 64 },
    inputSets: QUANT_INPUT_SETS,
    cases: () => cross(DENSE_SHAPES.map(([origin, out_dim, in_dim, group_size]) => [origin, { out_dim, in_dim, group_size }, ALL_QUANT_SETS])),
    validate: (p) => validateQuant(p, bits, num(p, 'out_dim')),
    inputs(p, set, rng: Rng): Tensors {
      const m = genQuantWeights(num(p, 'out_dim'), num(p, 'in_dim'), bits, num(p, 'group_size'), set, `w:${rng.next()}`);
      return { w: m.w, scales: m.scales, biases: m.biases, x: genX(num(p, 'in_dim'), set, rng) };
    },
    launch(p) {
      return tiled
        ? groups(Math.ceil(num(p, 'out_dim') / rowsPerTg), 1, QT.SG * 32, [QT.XT * 4])
        : threadsOf(NAIVE_TG, num(p, 'out_dim'));
    },
    reference(p, t) {
      const r = qmvRef(
        { bits, w: t.w as Uint32Array, scales: t.scales as Uint16Array, biases: t.biases as Uint16Array },
        0,
        num(p, 'out_dim'),
        num(p, 'in_dim'),
        num(p, 'group_size'),
        t.x as Float32Array,
      );
      return { outputs: { y: Float32Array.from(r.y) }, rules: { y: quantRule(r.mag, num(p, 'in_dim')) } };
    },
    cost(p): Cost {
      // packed weights + scales + biases + x + y; one multiply-add per weight (dequantization not counted)
      const { weights, sb } = qmvCost(bits, num(p, 'out_dim'), num(p, 'in_dim'), num(p, 'group_size'));
      return { bytes: weights + sb + 4 * num(p, 'in_dim') + 4 * num(p, 'out_dim'), flops: 2 * num(p, 'out_dim') * num(p, 'in_dim'), weightBytes: weights };
    },
  });
}

export const qmv4 = denseSpec(4, false);
export const qmv4Tiled = denseSpec(4, true);
export const qmv8 = denseSpec(8, false);
export const qmv8Tiled = denseSpec(8, true);
