/**
 * Metal semantics of the CPU backend (MOE_TEST_BACKEND=cuda or metal runs the
 * same checks on a GPU backend), through the public backend API: every
 * builtin, both launch modes with grids that are not a multiple of the
 * threadgroup, barriers with static and dynamic threadgroup memory, and each
 * SIMD-group collective (32 lanes, a partial last SIMD-group).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { getBackend } from '../src/backend/index.js';
import type { Dim3 } from '../src/backend/addon-types.js';
import { shader } from './helpers.js';

const be = getBackend(process.env.MOE_TEST_BACKEND ?? 'cpu');
const u8 = (a: Uint32Array | Int32Array | Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const src = (f: string): string => readFileSync(shader('semantics', f), 'utf8');

async function runBuiltins(mode: 'threads' | 'threadgroups', grid: Dim3, tg: Dim3): Promise<void> {
  const p = await be.compile(src('builtins.metal'), shader('semantics', 'builtins.metal'), 'builtins');
  assert.equal(p.usesSync, false, 'no barrier or collective: runs as a plain loop');
  const groups: Dim3 = mode === 'threads' ? [Math.ceil(grid[0] / tg[0]), Math.ceil(grid[1] / tg[1]), Math.ceil(grid[2] / tg[2])] : grid;
  const total: Dim3 = mode === 'threads' ? grid : [grid[0] * tg[0], grid[1] * tg[1], grid[2] * tg[2]];
  const n = total[0] * total[1] * total[2];
  const out = new Uint32Array(n * 20);
  await be.run(p, [u8(out), u8(new Uint32Array([...total, 0]))], { mode, grid, threadgroup: tg, threadgroupMemory: [] });
  for (let z = 0; z < total[2]; z++) {
    for (let y = 0; y < total[1]; y++) {
      for (let x = 0; x < total[0]; x++) {
        const i = (z * total[1] + y) * total[0] + x;
        const o = Array.from(out.subarray(i * 20, i * 20 + 20));
        const pos = [x, y, z];
        const inTg = pos.map((v, d) => v % (tg[d] as number));
        const tgPos = pos.map((v, d) => Math.floor(v / (tg[d] as number)));
        // edge threadgroups of dispatchThreads are smaller: threads_per_threadgroup is their real size
        const size = tgPos.map((g, d) => Math.min(tg[d] as number, (total[d] as number) - g * (tg[d] as number)));
        const index = inTg[0]! + inTg[1]! * size[0]! + inTg[2]! * size[0]! * size[1]!;
        const want = [
          ...pos, ...inTg, ...tgPos, ...size,
          groups[0] * 10000 + groups[1] * 100 + groups[2],
          total[0] * 10000 + total[1] * 100 + total[2],
          index, index % 32, Math.floor(index / 32), 32,
          (x & 0xffff) + (y & 0xffff) * 1000,
          1,
        ];
        assert.deepEqual(o, want, `thread (${x},${y},${z})`);
      }
    }
  }
}

test('every builtin, dispatchThreads with a grid not a multiple of the threadgroup (non-uniform edge groups)', async () => {
  await runBuiltins('threads', [37, 5, 3], [8, 2, 2]);
});

test('every builtin, dispatchThreadgroups', async () => {
  await runBuiltins('threadgroups', [3, 2, 2], [5, 3, 2]);
});

test('barriers with static and dynamic threadgroup memory, non-power-of-two threadgroups', async () => {
  const f = shader('semantics', 'barriers.metal');
  const p = await be.compile(src('barriers.metal'), f, 'reverse_sum');
  assert.equal(p.usesSync, true);
  for (const n of [1, 31, 96, 200]) {
    const groups = 7;
    const input = Float32Array.from({ length: groups * n }, (_, i) => (i % 17) - 8);
    const out = new Float32Array(groups * n);
    const sums = new Float32Array(groups);
    for (const schedule of ['forward', 'reverse', 'shuffle'] as const) {
      await be.run(p, [u8(input), u8(out), u8(sums)], { mode: 'threadgroups', grid: [groups, 1, 1], threadgroup: [n, 1, 1], threadgroupMemory: [n * 4] }, { schedule, scheduleSeed: 3 });
      assert.deepEqual(Array.from(out), Array.from(input, (v) => 2 * v), `n=${n} ${schedule}`);
      for (let g = 0; g < groups; g++) {
        assert.equal(sums[g], input.subarray(g * n, (g + 1) * n).reduce((a, b) => a + b, 0));
      }
    }
  }
});

test('each SIMD-group collective over 32 lanes and a partial SIMD-group of 16', async () => {
  const f = shader('semantics', 'simd.metal');
  const p = await be.compile(src('simd.metal'), f, 'collectives');
  assert.equal(p.usesSync, true);
  const tg = 48;
  const groups = 2;
  const n = tg * groups;
  const input = Int32Array.from({ length: n }, (_, i) => ((i * 37) % 23) - 9);
  const out = new Int32Array(n * 20);
  await be.run(p, [u8(input), u8(out)], { mode: 'threadgroups', grid: [groups, 1, 1], threadgroup: [tg, 1, 1], threadgroupMemory: [] });
  for (let i = 0; i < n; i++) {
    const local = i % tg;
    const sgBase = i - local + Math.floor(local / 32) * 32;
    const width = Math.min(32, tg - Math.floor(local / 32) * 32);
    const lane = local % 32;
    const vals = Array.from(input.subarray(sgBase, sgBase + width));
    const v = input[i] as number;
    const o = Array.from(out.subarray(i * 20, i * 20 + 20));
    const at = (l: number): number => vals[l] as number;
    assert.equal(o[0], vals.reduce((a, b) => a + b, 0), `sum lane ${i}`);
    assert.equal(o[1], Math.max(...vals));
    assert.equal(o[2], Math.min(...vals));
    assert.equal(o[3], vals.slice(0, lane + 1).reduce((a, b) => a + b, 0));
    assert.equal(o[4], vals.slice(0, lane).reduce((a, b) => a + b, 0));
    assert.equal(o[5], at(lane ^ 1));
    if (lane + 1 < width) assert.equal(o[6], at(lane + 1));
    if (lane >= 1) assert.equal(o[7], at(lane - 1));
    assert.equal(o[8], at(lane ^ 2));
    assert.equal(o[9], at(3));
    assert.equal(o[10], at(0));
    assert.equal(o[11], 1);
    assert.equal(o[12], vals.includes(7) ? 1 : 0);
    let ballot = 0;
    vals.forEach((x, l) => {
      if ((x & 1) !== 0) ballot |= 1 << l;
    });
    assert.equal(o[13], ballot | 0);
    assert.equal(o[14], vals.reduce((a, b) => a & (b | 0x100), -1));
    assert.equal(o[15], vals.reduce((a, b) => a | (b & 0xf), 0));
    assert.equal(o[16], vals.reduce((a, b) => a ^ b, 0));
    assert.equal(o[17], vals.reduce((a, b) => a * ((b & 1) !== 0 ? -1 : 1), 1));
    assert.equal(o[18], lane === 0 ? 1 : 0);
    assert.equal(o[19], lane);
    void v;
  }
});

test('vectors, swizzles, conversions, math, bfloat stores and device atomics across threadgroups', async () => {
  const { f32ToBf16Bits } = await import('../src/util/bf16.js');
  const p = await be.compile(src('vectors.metal'), shader('semantics', 'vectors.metal'), 'vectors');
  const n = 1000;
  const input = Float32Array.from({ length: n * 4 }, (_, j) => ((j * 7919) % 200) / 37 - 2.7);
  const out = new Float32Array(n * 12);
  const counter = new Uint32Array(2);
  const fsum = new Float32Array(1);
  const bf = new Uint16Array(n);
  await be.run(p, [u8(input), u8(out), u8(counter), u8(fsum), new Uint8Array(bf.buffer)], { mode: 'threads', grid: [n, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [] });
  const f = Math.fround;
  for (let i = 0; i < n; i++) {
    const [x, y, z, w] = Array.from(input.subarray(i * 4, i * 4 + 4)) as [number, number, number, number];
    const o = Array.from(out.subarray(i * 12, i * 12 + 12));
    assert.deepEqual(o.slice(0, 4), [f(z * 2), f(w * 2), y, x], `swizzles ${i}`);
    const d = f(f(f(x) + f(2 * y)) + 3) + 5;
    assert.equal(o[4], Math.trunc(x) + 0);
    assert.equal(o[5], Math.trunc(w) + 0);
    assert.ok(Math.abs((o[6] as number) - d) < 1e-5, `dot+length ${i}`);
    assert.equal(o[7], Math.min(Math.max(x, -0.5), 0.5));
    assert.deepEqual(o.slice(8, 12), [1 + (x > 0 ? 1 : 0), 2 + (y > 0 ? 1 : 0), 3 + (z > 0 ? 1 : 0), 1 + (w > 0 ? 1 : 0)]);
    assert.equal(bf[i], f32ToBf16Bits(x));
  }
  assert.equal(counter[0], n, 'every thread incremented the device atomic once');
  assert.equal(counter[1], n - 1, 'atomic max');
  assert.equal(fsum[0], n, 'float atomic add');
});
