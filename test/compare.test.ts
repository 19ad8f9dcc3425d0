import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareOutput, fillCanary, F32_CANARY_BITS } from '../src/verify/compare.js';
import type { ExactRule, FloatRule } from '../src/kernels/spec.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../src/util/bf16.js';
import { packStruct } from '../src/kernels/pack.js';
import { makeRng } from '../src/util/rng.js';

const rule: FloatRule = { kind: 'float', atol: 1e-6, rtol: 1e-4, minCosine: 0.9999, maxRelMaxAbs: 1e-3, reason: 'test' };

test('identical float outputs pass with cosine 1 and zero error', () => {
  const r = compareOutput('y', new Float32Array([1, -2, 3]), [1, -2, 3], rule);
  assert.equal(r.pass, true);
  assert.equal(r.cosine, 1);
  assert.equal(r.maxAbs, 0);
  assert.equal(r.relMaxAbs, 0);
});

test('an element out of tolerance fails and is named as the worst', () => {
  const r = compareOutput('y', new Float32Array([1, 2.01, 3, 4]), [1, 2, 3, 4], rule);
  assert.equal(r.pass, false);
  assert.equal(r.violations, 1);
  assert.equal(r.worst?.index, 1);
  assert.equal(r.firstViolation?.index, 1);
  assert.ok(Math.abs((r.maxAbs ?? 0) - 0.01) < 1e-6);
  assert.ok(Math.abs((r.relMaxAbs ?? 0) - 0.0025) < 1e-6);
  assert.match(r.failure, /1 of 4 out of tolerance/);
});

test('NaN or Inf where the reference is finite fails', () => {
  const r = compareOutput('y', new Float32Array([1, NaN, Infinity]), [1, 2, 3], rule);
  assert.equal(r.pass, false);
  assert.equal(r.nonFinite, 2);
});

test('matching non-finite values pass, mismatched ones fail', () => {
  assert.equal(compareOutput('y', new Float32Array([Infinity, 1]), [Infinity, 1], rule).pass, true);
  assert.equal(compareOutput('y', new Float32Array([-Infinity, 1]), [Infinity, 1], rule).pass, false);
});

test('elements still holding the canary are reported as never written', () => {
  const a = new Float32Array(4);
  fillCanary(a, 'float');
  assert.equal(new Uint32Array(a.buffer)[2], F32_CANARY_BITS);
  a[0] = 1;
  a[1] = 2;
  const r = compareOutput('y', a, [1, 2, 3, 4], rule);
  assert.equal(r.pass, false);
  assert.equal(r.unwritten, 2);
  assert.match(r.failure, /never written/);
});

test('include skips elements outside the written region', () => {
  const a = new Float32Array(4);
  fillCanary(a, 'float');
  a[0] = 1;
  a[2] = 3;
  const r = compareOutput('y', a, [1, 0, 3, 0], rule, undefined, (i) => i % 2 === 0);
  assert.equal(r.pass, true);
});

test('cosine floor fails a scaled output that element-wise tolerance would not catch', () => {
  const loose: FloatRule = { ...rule, atol: 10, rtol: 0 };
  const r = compareOutput('y', new Float32Array([1, -1]), [1, 1], loose);
  assert.equal(r.pass, false);
  assert.match(r.failure, /cosine/);
});

test('exact outputs: differences fail, ties pass, validate can reject', () => {
  const exact: ExactRule = { kind: 'exact', reason: 'ids', tieOk: (_i, g, e) => g + e === 5 };
  assert.equal(compareOutput('ids', new Uint32Array([1, 2]), [1, 2], exact).pass, true);
  assert.equal(compareOutput('ids', new Uint32Array([1, 3]), [1, 2], exact).pass, true); // 3 ties with 2
  const bad = compareOutput('ids', new Uint32Array([1, 4]), [1, 2], exact);
  assert.equal(bad.pass, false);
  assert.deepEqual(bad.worst, { index: 1, got: 4, expected: 2 });
  const dup: ExactRule = { kind: 'exact', reason: 'ids', validate: () => 'expert 1 selected twice' };
  assert.equal(compareOutput('ids', new Uint32Array([1, 1]), [1, 1], dup).failure, 'expert 1 selected twice');
});

test('bfloat16 rounding is round-to-nearest-even', () => {
  assert.equal(f32ToBf16Bits(1.0), 0x3f80);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1.0)
  assert.equal(f32ToBf16Bits(1.00390625), 0x3f80);
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: ties to even (0x3f82)
  assert.equal(f32ToBf16Bits(1.01171875), 0x3f82);
  assert.equal(f32ToBf16Bits(-2.0), 0xc000);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  assert.equal(bf16BitsToF32(f32ToBf16Bits(Infinity)), Infinity);
  // the largest finite float rounds up to infinity
  assert.equal(bf16BitsToF32(f32ToBf16Bits(3.4028234663852886e38)), Infinity);
});

test('param structs pack with C alignment', () => {
  const b = packStruct([
    ['uint', 7],
    ['ushort', 2],
    ['float', 1.5],
  ]);
  assert.equal(b.length, 12);
  const dv = new DataView(b.buffer);
  assert.equal(dv.getUint32(0, true), 7);
  assert.equal(dv.getUint16(4, true), 2);
  assert.equal(dv.getFloat32(8, true), 1.5);
});

test('seeded rng is reproducible and differs across seeds', () => {
  const a = makeRng('s1');
  const b = makeRng('s1');
  const c = makeRng('s2');
  const xs = [a.normal(), a.next(), a.int(0, 10)];
  assert.deepEqual([b.normal(), b.next(), b.int(0, 10)], xs);
  assert.notEqual(c.normal(), xs[0]);
});
