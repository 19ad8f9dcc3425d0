import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../src/backend/index.js';
import { findSpec, QUANT_SPECS, SPECS } from '../src/kernels/index.js';
import { qgateUp4 } from '../src/kernels/qgate-up4.js';
import { qmv4, qmv8Tiled } from '../src/kernels/qmv.js';
import { qmv4Batched } from '../src/kernels/qmv4-batched.js';
import { qmv4Expert } from '../src/kernels/qmv4-expert.js';
import type { KernelCase, KernelSpec } from '../src/kernels/spec.js';
import {
  checkQuantShape,
  dequantize,
  quantBound,
  quantize,
  quantValue,
  groupScaleBias,
  type QuantBits,
  type QuantMode,
} from '../src/quant/affine.js';
import { geluTanh, qgateUpRef, qmvRef, silu } from '../src/reference/quant.js';
import { bf16BitsToF32, f32ToBf16Bits, roundBf16 } from '../src/util/bf16.js';
import { fillUniform } from '../src/util/fastrng.js';
import { verifySpec } from '../src/harness/run.js';
import { moe, ROOT, shader, tmp } from './helpers.js';
import { QB, QG_ROWS, QT } from '../src/kernels/common/quant.js';

// ---------------------------------------------------------------------------
// The quantizer

test('quantize: hand-computed packing, lowest bits first (4-bit and 8-bit)', () => {
  // 0..15 in one group of 16: min 0, max 15 → scale 1, bias 0, q = value
  const w4 = Float32Array.from({ length: 16 }, (_, i) => i);
  const m4 = quantize(w4, 1, 16, 4, 16);
  assert.deepEqual(Array.from(m4.w), [0x76543210, 0xfedcba98]);
  assert.equal(bf16BitsToF32(m4.scales[0] as number), 1);
  assert.equal(bf16BitsToF32(m4.biases[0] as number), 0);
  assert.equal(quantValue(m4, 0, 9), 9);
  // 8-bit: [0, 255, 1, 128] → bytes 0x00, 0xff, 0x01, 0x80
  const m8 = quantize(new Float32Array([0, 255, 1, 128]), 1, 4, 8, 4);
  assert.deepEqual(Array.from(m8.w), [0x8001ff00]);
  // an offset range: [-3, -3 + 15·0.5] → scale 0.5 (bf16-exact), bias -3, q = (w + 3)/0.5
  const qs = [0, 2, 4, 6, 8, 10, 12, 15];
  const w = Float32Array.from(qs, (q) => -3 + 0.5 * q);
  const m = quantize(w, 1, 8, 4, 8);
  assert.deepEqual(groupScaleBias(m, 0, 0), [0.5, -3]);
  assert.deepEqual(Array.from({ length: 8 }, (_, c) => quantValue(m, 0, c)), qs);
  assert.equal(m.w[0], 0xfca86420);
  assert.deepEqual(Array.from(dequantize(m)), Array.from(w));
});

test('quantize: a constant group gets scale 0 and q = 0, and dequantizes to the value (bf16-rounded), no NaN', () => {
  for (const v of [0, 0.0625, 0.1, -3300, 1e-3, 65504]) {
    for (const bits of [4, 8] as const) {
      for (const mode of ['minmax', 'mlx'] as const) {
        const m = quantize(new Float32Array(32).fill(v), 1, 32, bits, 32, { mode });
        const d = dequantize(m);
        if (mode === 'minmax' || v === 0) assert.equal(bf16BitsToF32(m.scales[0] as number), 0, `${v} ${bits} ${mode}`);
        assert.ok(m.w.every((x) => x === 0) || mode === 'mlx', `q = 0 for ${v}`);
        for (const x of d) {
          assert.ok(Number.isFinite(x));
          assert.ok(Math.abs(x - v) <= quantBound(v, v, bits, mode) + Math.abs(v) * 2 ** -23, `${v} → ${x} (${bits}-bit ${mode})`);
        }
        if (mode === 'minmax') for (const x of d) assert.equal(x, roundBf16(v));
      }
    }
  }
});

test('quantize: round trip within the bound the format implies, every bits × group size × mode', () => {
  for (const bits of [4, 8] as QuantBits[]) {
    for (const gs of [32, 64, 128]) {
      for (const mode of ['minmax', 'mlx'] as QuantMode[]) {
        for (const [scale, offset] of [[0.1, 0], [0.1, 3], [50, -3e4], [1e-30, 0]] as [number, number][]) {
          const rows = 16;
          const cols = 512;
          const w = fillUniform(new Float32Array(rows * cols), `rt:${bits}:${gs}:${mode}:${scale}`, scale);
          for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) + offset;
          const m = quantize(w, rows, cols, bits, gs, { mode });
          const d = dequantize(m);
          for (let g = 0; g < (rows * cols) / gs; g++) {
            let lo = Infinity;
            let hi = -Infinity;
            for (let i = g * gs; i < (g + 1) * gs; i++) {
              lo = Math.min(lo, w[i] as number);
              hi = Math.max(hi, w[i] as number);
            }
            const bound = quantBound(lo, hi, bits, mode);
            for (let i = g * gs; i < (g + 1) * gs; i++) {
              const err = Math.abs((w[i] as number) - (d[i] as number));
              // + the f32 rounding of q·s' + b'
              assert.ok(err <= bound + Math.abs(d[i] as number) * 2 ** -24, `${bits}-bit gs ${gs} ${mode} U(±${scale})+${offset}: |err| ${err} > ${bound} at ${i}`);
            }
          }
        }
      }
    }
  }
});

test('quantize: minmax bound is s/2 for bf16-exact scale and bias (no rounding terms)', () => {
  // range [0, 15·0.25]: scale 0.25, bias 0, both exact in bf16 → bound 0.125
  assert.equal(quantBound(0, 3.75, 4), 0.125);
  assert.equal(quantBound(2, 2, 8), 0);
  assert.ok(quantBound(0.1, 0.1, 4) > 0); // 0.1 is not bf16-exact: the bias rounding term
});

test('quantize: shape checks', () => {
  assert.equal(checkQuantShape(2048, 4, 64), null);
  assert.match(checkQuantShape(100, 4, 64) ?? '', /in_dim = 100 must be a multiple of group_size = 64/);
  assert.match(checkQuantShape(64, 4, 12) ?? '', /multiple of 8/);
  assert.match(checkQuantShape(64, 3, 32) ?? '', /only 4 and 8/);
  assert.throws(() => quantize(new Float32Array(10), 1, 10, 4, 8), /multiple of group_size/);
});

// ---------------------------------------------------------------------------
// References, by hand

test('qmvRef: hand-computed 4-bit example', () => {
  // one row, 8 inputs, group of 8; word 0x76543210 → q_j = j; scale 0.5, bias -1 → W_j = 0.5j − 1
  // x_j = j + 1: y = Σ (0.5j − 1)(j + 1) = 0.5·Σ j(j+1) − Σ(j+1) = 0.5·168 − 36 = 48
  // magnitude Σ (|0.5j| + 1)(j + 1) = 84 + 36 = 120
  const r = qmvRef(
    { bits: 4, w: new Uint32Array([0x76543210]), scales: new Uint16Array([f32ToBf16Bits(0.5)]), biases: new Uint16Array([f32ToBf16Bits(-1)]) },
    0, 1, 8, 8, Float32Array.from({ length: 8 }, (_, j) => j + 1),
  );
  assert.equal(r.y[0], 48);
  assert.equal(r.mag[0], 120);
});

test('qmvRef: hand-computed 8-bit example with two groups and a row offset', () => {
  // rows 0..1, 8 inputs, groups of 4; row 1: words [0x04030201, 0x000000ff]
  // group 0: q = 1,2,3,4, scale 2, bias 0 → W = 2,4,6,8; group 1: q = 255,0,0,0, scale 1, bias -255 → W = 0,-255,-255,-255
  // x = 1: y = 20 + (−765) = −745
  const w = new Uint32Array([0, 0, 0x04030201, 0x000000ff]);
  const s = new Uint16Array([0, 0, f32ToBf16Bits(2), f32ToBf16Bits(1)]);
  const b = new Uint16Array([0, 0, 0, f32ToBf16Bits(-255)]);
  const r = qmvRef({ bits: 8, w, scales: s, biases: b }, 1, 1, 8, 4, new Float32Array(8).fill(1));
  assert.equal(r.y[0], -745);
});

test('activations: hand values of SiLU and GELU-tanh', () => {
  assert.equal(silu(0), 0);
  assert.ok(Math.abs(silu(1) - 0.7310585786300049) < 1e-15);
  assert.ok(Math.abs(silu(-1) + 0.2689414213699951) < 1e-15);
  assert.ok(Math.abs(geluTanh(1) - 0.8411919906082768) < 1e-12);
  assert.equal(geluTanh(0), 0);
  assert.equal(geluTanh(-1e9), -0); // saturates cleanly
  assert.equal(silu(-1e9), -0);
});

test('qgateUpRef: act(gate)·up by hand', () => {
  // gate row: all q = 0, bias 0.125 → gate = 0.125·Σx; up: q = 0, bias 1 → up = Σx; x = 1 (8 inputs): gate 1, up 8
  const one = (bias: number) => ({ bits: 4 as const, w: new Uint32Array([0]), scales: new Uint16Array([0]), biases: new Uint16Array([f32ToBf16Bits(bias)]) });
  const x = new Float32Array(8).fill(1);
  assert.ok(Math.abs((qgateUpRef(one(0.125), one(1), 1, 8, 8, x, 0).y[0] as number) - 8 * silu(1)) < 1e-12);
  assert.ok(Math.abs((qgateUpRef(one(0.125), one(1), 1, 8, 8, x, 1).y[0] as number) - 8 * geluTanh(1)) < 1e-12);
  assert.throws(() => qgateUpRef(one(1), one(1), 1, 8, 8, x, 2), /unknown activation/);
});

// ---------------------------------------------------------------------------
// Cost models

test('cost models by hand: packed weights + scales + biases + input + output', () => {
  // qmv4 768 × 2048, gs 64: 768·2048/2 bytes packed, 768·32·2 scales + as many biases, 2048·4 in, 768·4 out
  const c4 = qmv4.cost({ out_dim: 768, in_dim: 2048, group_size: 64 });
  assert.equal(c4.bytes, 786432 + 49152 + 49152 + 8192 + 3072);
  assert.equal(c4.flops, 2 * 768 * 2048);
  // qmv8-tiled 2048 × 768, gs 32: 2048·768 packed bytes, 2048·24·2·2
  assert.equal(qmv8Tiled.cost({ out_dim: 2048, in_dim: 768, group_size: 32 }).bytes, 1572864 + 196608 + 3072 + 8192);
  // batched: weights once, 5 tokens of x and y
  assert.equal(qmv4Batched.cost({ n_tokens: 5, out_dim: 768, in_dim: 2048, group_size: 64 }).bytes, 786432 + 98304 + 5 * 4 * (2048 + 768));
  // expert, Qwen3 decode gate: 8 experts of 768 × 2048 read, one x, 8 rows of y, 8 ids
  const ce = qmv4Expert.cost({ n_experts: 128, top_k: 8, x_per_pair: 0, out_dim: 768, in_dim: 2048, group_size: 64 });
  assert.equal(ce.bytes, 8 * (786432 + 98304) + 8192 + 8 * 768 * 4 + 32);
  assert.equal(ce.flops, 8 * 2 * 768 * 2048);
  // down: one x row per slot
  const cd = qmv4Expert.cost({ n_experts: 128, top_k: 8, x_per_pair: 1, out_dim: 2048, in_dim: 768, group_size: 64 });
  assert.equal(cd.bytes, 8 * (786432 + 98304) + 8 * 768 * 4 + 8 * 2048 * 4 + 32);
  // gate + up: two matrices
  const cg = qgateUp4.cost({ out_dim: 768, in_dim: 2048, group_size: 64, act: 0 });
  assert.equal(cg.bytes, 2 * (786432 + 98304) + 8192 + 3072);
  assert.equal(cg.flops, 4 * 768 * 2048 + 8 * 768);
});

// ---------------------------------------------------------------------------
// Specs and registry

test('every quantized spec is registered, with the engines\' buffer layout', () => {
  const names = ['qmv4', 'qmv4-tiled', 'qmv8', 'qmv8-tiled', 'qgate-up4', 'qmv4-batched', 'qmv4-expert', 'qmv4-expert-naive'];
  assert.deepEqual(QUANT_SPECS.map((s) => s.name), names);
  for (const s of QUANT_SPECS) {
    assert.equal(findSpec(s.name), s);
    assert.equal(findSpec(s.entry), s);
    assert.ok(SPECS.includes(s));
    const byName = new Map(s.buffers.map((b) => [b.name, b]));
    for (const [name, type] of [['w', 'uint'], ['scales', 'bfloat'], ['biases', 'bfloat']] as const) {
      const b = byName.get(name) ?? byName.get(`gate_${name}`);
      assert.ok(b && b.kind === 'array' && b.mslType === type, `${s.name}: ${name}`);
    }
    for (const name of ['out_dim', 'in_dim', 'group_size']) {
      const b = byName.get(name);
      assert.ok(b && b.kind === 'scalar' && b.mslType === 'uint', `${s.name}: ${name} is a constant uint&`);
    }
    for (const c of s.cases()) assert.equal(s.validate(c.params), null, `${s.name} ${JSON.stringify(c.params)}`);
  }
  assert.equal(qmv4Expert.hasTopK, true);
  assert.match(qgateUp4.math, /SiLU/);
  assert.match(qgateUp4.math, /GELU-tanh/);
});

test('default sweeps: Qwen3-30B-A3B and a 4096-hidden model, group sizes 32/64/128, in_dim off the tile reach', () => {
  for (const s of QUANT_SPECS) {
    const cases = s.cases();
    assert.ok(cases.some((c) => c.origin === 'qwen3-30b-a3b'), s.name);
    assert.ok(cases.some((c) => c.origin === 'mixtral-8x7b' && (c.params.in_dim === 4096 || c.params.out_dim === 4096)), s.name);
    for (const set of ['constant-groups', 'large', 'zeros']) assert.ok(cases.some((c) => c.inputSet === set), `${s.name}: ${set}`);
  }
  for (const s of [qmv4, qmv8Tiled]) {
    const gs = new Set(s.cases().map((c) => c.params.group_size));
    // 32, 64 and 128 of the issue, and 16: the tiled 4-bit kernels' path for groups that are not a multiple of 32
    assert.deepEqual([...gs].sort((a, b) => (a as number) - (b as number)), [16, 32, 64, 128]);
    // a SIMD-group reads 32 words a pass: in_dim not a multiple of 32 words' values
    assert.ok(s.cases().some((c) => (c.params.in_dim as number) % (32 * 8) !== 0));
  }
  const full = qmv4Expert.cases().find((c) => c.params.n_experts === 128 && c.params.top_k === 8 && c.params.out_dim === 768 && c.params.in_dim === 2048);
  assert.ok(full, 'the full Qwen3 gate/up decode shape');
  assert.ok(qmv4Expert.cases().some((c) => c.params.x_per_pair === 1 && c.params.out_dim === 2048 && c.params.in_dim === 768));
  assert.ok(qmv4Expert.cases().some((c) => (c.params.group_size as number) % 32 !== 0), 'the expert kernel\'s 4-byte path');
  assert.deepEqual([...new Set(qgateUp4.cases().map((c) => c.params.act))].sort(), [0, 1]);
});

test('the launch geometry in the specs matches the shader\'s #defines', () => {
  const src = readFileSync(join(ROOT, 'shaders', 'moe_quant.metal'), 'utf8');
  const def = (name: string): number => Number(new RegExp(`#define ${name}\\s+(\\d+)`).exec(src)?.[1]);
  assert.deepEqual([def('QT_SG'), def('QT_ROWS'), def('QT_XT')], [QT.SG, QT.ROWS, QT.XT]);
  assert.deepEqual([def('QB_SG'), def('QB_ROWS'), def('QB_TOK'), def('QB_XT')], [QB.SG, QB.ROWS, QB.TOK, QB.XT]);
  assert.equal(def('QG_ROWS'), QG_ROWS);
});

test('validation: bad shapes are refused with the reason', () => {
  assert.match(qmv4.validate({ out_dim: 4, in_dim: 100, group_size: 64 }) ?? '', /multiple of group_size/);
  assert.match(qmv4Expert.validate({ n_experts: 4, top_k: 5, x_per_pair: 0, out_dim: 4, in_dim: 64, group_size: 64 }) ?? '', /top_k = 5 must not exceed n_experts = 4/);
  assert.match(qgateUp4.validate({ out_dim: 4, in_dim: 64, group_size: 64, act: 2 }) ?? '', /act = 2/);
});

// ---------------------------------------------------------------------------
// Verification through the public API

const cpu = getBackend('cpu');

async function run(spec: KernelSpec, file: string | undefined, cases: KernelCase[] = spec.cases()) {
  const { results } = await verifySpec(spec, cpu, cases, { seed: 42, shaderFile: file });
  return results;
}

/** A quick subset for planted bugs: the edge shapes and one model shape, every input set but zeros. */
function quick(spec: KernelSpec): KernelCase[] {
  const cases = spec.cases().filter((c) => c.inputSet !== 'zeros');
  const model = cases.find((c) => !c.origin.startsWith('edge'))?.params;
  return cases.filter((c) => c.origin.startsWith('edge') || c.params === model);
}

const BUGS: [kernel: string, file: string, why: string][] = [
  ['qmv4', 'wrong_nibble_order.metal', 'nibbles read highest first'],
  ['qmv4', 'scale_bias_swapped.metal', 'q·bias + scale'],
  ['qmv4', 'last_group_skipped.metal', 'last group of each row skipped'],
  ['qmv4-tiled', 'wrong_nibble_order.metal', 'nibbles read highest first'],
  ['qmv4-tiled', 'scale_bias_swapped.metal', 'bias·Σqx + scale·Σx'],
  ['qmv4-tiled', 'last_group_skipped.metal', 'last group skipped'],
  ['qmv8', 'wrong_byte_order.metal', 'bytes read highest first'],
  ['qmv8', 'scale_bias_swapped.metal', 'q·bias + scale'],
  ['qmv8', 'last_group_skipped.metal', 'last group skipped'],
  ['qmv4-expert', 'gather_by_slot.metal', 'slot i uses expert i, not ids[i]'],
  ['qmv4-expert', 'shared_x.metal', 'x_per_pair ignored'],
  ['qgate-up4', 'act_ignored.metal', 'always SiLU'],
  ['qgate-up4', 'gate_up_swapped.metal', 'act(up)·gate'],
  ['qmv4-batched', 'tail_tokens_dropped.metal', 'partial token tile never written'],
];

for (const [kernel, file, why] of BUGS) {
  test(`planted bug ${kernel}/${file} (${why}) FAILS through verifySpec`, async () => {
    const spec = findSpec(kernel);
    const results = await run(spec, shader(kernel, file), quick(spec));
    assert.ok(results.some((r) => r.status === 'FAIL'), `${kernel}/${file} passed every case`);
  });
}

const ALTS: [kernel: string, file: string][] = [
  ['qmv4', 'alt_group_sums.metal'],
  ['qmv4-tiled', 'alt_prescaled.metal'],
  ['qmv8', 'alt_uchar_view.metal'],
  ['qmv4-expert', 'alt_dequant_first.metal'],
  ['qgate-up4', 'alt_split_threads.metal'],
  ['qmv4-batched', 'alt_shuffle_reduce.metal'],
];

for (const [kernel, file] of ALTS) {
  test(`a correct variant written differently, ${kernel}/${file}, PASSES the whole default sweep`, async () => {
    const spec = findSpec(kernel);
    const results = await run(spec, shader(kernel, file));
    const bad = results.filter((r) => r.status !== 'PASS');
    assert.equal(bad.length, 0, bad.map((r) => `${r.shape} ${r.inputSet}: ${r.error ?? r.outputs.map((o) => o.failure).join('; ')}`).join('\n'));
  });
}

// ---------------------------------------------------------------------------
// Through the CLI (the built dist/)

const ALL = QUANT_SPECS.map((s) => s.name).join(',');

test('moe verify --kernel <every quantized kernel> --backend cpu: all PASS, exit 0', () => {
  const r = moe(['verify', '--kernel', ALL, '--backend', 'cpu', '--verbose']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const s of QUANT_SPECS) assert.match(r.stdout, new RegExp(`${s.name} \\(${s.entry}\\): (\\d+)/\\1 PASS`));
  assert.doesNotMatch(r.stdout, /FAIL|ERROR/);
});

for (const [kernel, file] of [
  ['qmv4', 'wrong_nibble_order.metal'],
  ['qmv4-tiled', 'scale_bias_swapped.metal'],
  ['qmv8', 'last_group_skipped.metal'],
  ['qmv4-expert', 'gather_by_slot.metal'],
] as const) {
  test(`moe verify --kernel ${kernel} --shader ${file}: exit 1 with FAIL rows and a repro line`, () => {
    const r = moe(['verify', '--kernel', kernel, '--backend', 'cpu', '--inputs', 'normal', '--shader', shader(kernel, file)]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /FAIL/);
    assert.match(r.stdout, new RegExp(`reproduce: npx moe verify --kernel ${kernel} .*--out-dim \\d+ --in-dim \\d+ --group-size \\d+ --inputs normal --seed 42`));
  });
}

test('a user shader taking scales/biases as ushort verifies (bf16 bits decoded by the kernel)', () => {
  const r = moe(['verify', '--kernel', 'qmv4', '--backend', 'cpu', '--shader', shader('qmv4', 'alt_group_sums.metal')]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test('CLI shapes: --out-dim/--in-dim/--group-size and --act; the activation is named in --json', () => {
  const r = moe(['verify', '--kernel', 'qgate-up4', '--backend', 'cpu', '--out-dim', '40', '--in-dim', '320', '--group-size', '32,64', '--act', '0,1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { kernels: { math: string }[]; cases: { status: string; params: Record<string, number> }[] };
  assert.match(doc.kernels[0]?.math ?? '', /act=0: SiLU .*act=1: GELU-tanh/);
  assert.equal(doc.cases.length, 2 * 2 * 5);
  assert.ok(doc.cases.every((c) => c.status === 'PASS' && c.params.out_dim === 40));
  assert.deepEqual([...new Set(doc.cases.map((c) => c.params.act))].sort(), [0, 1]);
});

test('CLI: a bad quantized shape or a mismatched signature exits 2 with the reason', () => {
  const bad = moe(['verify', '--kernel', 'qmv4', '--backend', 'cpu', '--in-dim', '100']);
  assert.equal(bad.code, 2, bad.stdout + bad.stderr);
  assert.match(bad.stderr, /in_dim = 100 must be a multiple of group_size = 64/);
  const dir = tmp('qsig');
  const file = join(dir, 'half_scales.metal');
  writeFileSync(
    file,
    [
      '#include <metal_stdlib>',
      'using namespace metal;',
      'kernel void moe_qmv4_f32(device const uint* w [[buffer(0)]], device const half* s [[buffer(1)]],',
      '  device const bfloat* b [[buffer(2)]], device const float* x [[buffer(3)]], device float* y [[buffer(4)]],',
      '  constant uint& out_dim [[buffer(5)]], constant uint& in_dim [[buffer(6)]], constant uint& gs [[buffer(7)]],',
      '  uint row [[thread_position_in_grid]]) {',
      '}',
      '',
    ].join('\n'),
  );
  const r = moe(['verify', '--kernel', 'qmv4', '--backend', 'cpu', '--shader', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /buffer\(1\) type mismatch: the spec binds scales as device const bfloat\*/);
});
