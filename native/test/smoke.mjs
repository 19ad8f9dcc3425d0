// Smoke test of the Node addon (build/Release/moe_native.node) with the
// hand-written test kernel module, compiled here with $CXX (default g++).
//
//   node native/test/smoke.mjs
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const require = createRequire(import.meta.url);
const addon = require(process.env.MOE_NATIVE_ADDON ?? join(root, 'build', 'Release', 'moe_native.node'));

const dir = mkdtempSync(join(tmpdir(), 'moe-smoke-'));
const so = join(dir, 'test_kernels.so');
const cxx = process.env.CXX || 'g++';
execFileSync(cxx, [
  '-std=c++17', '-O2', '-fPIC', '-shared', '-fvisibility=hidden', '-fstack-clash-protection',
  `-I${join(root, 'native', 'include')}`,
  '-o', so, join(here, 'modules', 'test_kernels.cc'),
]);

const u8 = (ta) => new Uint8Array(ta.buffer, ta.byteOffset, ta.byteLength);
let passed = 0;
async function test(name, fn) {
  await fn();
  passed++;
  console.log(`ok  ${name}`);
}

try {
  await test('surface', () => {
    assert.equal(addon.abiVersion, 2);
    assert.ok(addon.hardwareConcurrency() >= 1);
    for (const f of ['loadModule', 'run', 'time', 'hardwareConcurrency']) assert.equal(typeof addon[f], 'function');
  });

  const mod = addon.loadModule(so);
  await test('loadModule / kernels', () => {
    assert.equal(mod.path, so);
    const ks = mod.kernels();
    assert.deepEqual(ks.find((k) => k.name === 'copy'), { name: 'copy', usesSync: false });
    assert.deepEqual(ks.find((k) => k.name === 'reduce_tree'), { name: 'reduce_tree', usesSync: true });
    assert.throws(() => addon.loadModule(join(dir, 'missing.so')), /cannot load kernel module/);
  });

  await test('copy (plain loop, dispatchThreads edge group)', async () => {
    const n = 1000;
    const a = new Float32Array(n).map((_, i) => i);
    const out = new Float32Array(n).fill(-1);
    const nbuf = new Uint32Array([n]);
    const pending = addon.run(mod, 'copy', [u8(a), u8(out), u8(nbuf)], { mode: 'threads', grid: [n, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [] }, {});
    assert.ok(pending instanceof Promise);
    await pending;
    for (let i = 0; i < n; i++) assert.equal(out[i], i * 2 + 1);
  });

  await test('reduce_tree (barriers, threadgroup memory, schedules)', async () => {
    const G = 32, T = 128;
    const input = new Uint32Array(G * T).map((_, i) => (i * 7) % 13);
    for (const schedule of ['forward', 'reverse', 'shuffle']) {
      const out = new Uint32Array(G);
      await addon.run(mod, 'reduce_tree', [u8(input), u8(out)], { mode: 'threadgroups', grid: [G, 1, 1], threadgroup: [T, 1, 1], threadgroupMemory: [T * 4] }, { schedule, scheduleSeed: 5, workers: 2 });
      for (let g = 0; g < G; g++) {
        let want = 0;
        for (let i = 0; i < T; i++) want += input[g * T + i];
        assert.equal(out[g], want);
      }
    }
  });

  await test('simd_sum (partial SIMD-groups)', async () => {
    const n = 96;
    const input = new Uint32Array(n).map((_, i) => i);
    const sum = new Uint32Array(n), prefix = new Uint32Array(n);
    const mask = new BigUint64Array(n);
    await addon.run(mod, 'simd_sum', [u8(input), u8(sum), u8(mask), u8(prefix)], { mode: 'threads', grid: [n, 1, 1], threadgroup: [48, 1, 1], threadgroupMemory: [] }, {});
    assert.equal(sum[0], (31 * 32) / 2);
    assert.equal(mask[0], 0xffffffffn);
    assert.equal(mask[32], 0xffffn); // lanes 32..47: a 16-lane SIMD-group
    assert.equal(prefix[5], 0 + 1 + 2 + 3 + 4);
  });

  await test('kernel failure rejects, later dispatches work', async () => {
    const out = new Uint32Array(1024).fill(7);
    await assert.rejects(
      addon.run(mod, 'fail_fibers', [u8(out)], { mode: 'threads', grid: [1024, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [] }, { workers: 1 }),
      (e) => e instanceof Error && e.message.startsWith('fail_fibers: boom (fibers)') && e.message.includes('threadgroup (1,0,0)'),
    );
    assert.equal(out[0], 0); // copied back on rejection too
    assert.equal(out[1023], 7);
    await assert.rejects(
      addon.run(mod, 'divergent', [u8(out)], { mode: 'threads', grid: [128, 1, 1], threadgroup: [128, 1, 1], threadgroupMemory: [] }, {}),
      /^Error: divergent: divergent threadgroup_barrier in threadgroup \(0,0,0\): 3 of 128 threads returned before reaching it$/,
    );
    const n = 64, a = new Float32Array(n).fill(1), o = new Float32Array(n);
    await addon.run(mod, 'copy', [u8(a), u8(o), u8(new Uint32Array([n]))], { mode: 'threads', grid: [n, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [] }, {});
    assert.equal(o[63], 3);
  });

  await test('fiber stack overflow rejects (no crash)', async () => {
    const out = new Uint32Array(256);
    const L = { mode: 'threads', grid: [256, 1, 1], threadgroup: [128, 1, 1], threadgroupMemory: [] };
    await assert.rejects(addon.run(mod, 'deep_stack', [u8(out)], L, { stackSize: 16384 }), /^Error: deep_stack: stack overflow in threadgroup/);
    await addon.run(mod, 'deep_stack', [u8(out)], L, {});
  });

  await test('hostile kernels reject (guard pages, watchdog, traps); the process survives', async () => {
    const L = (n, tg) => ({ mode: 'threads', grid: [n, 1, 1], threadgroup: [tg, 1, 1], threadgroupMemory: [] });
    const out = new Uint32Array(256);
    await assert.rejects(
      addon.run(mod, 'oob_write_end', [u8(out)], L(256, 64), { bufferNames: ['out'] }),
      /^Error: oob_write_end: out-of-bounds (write to|access of) buffer\(0\) 'out' at byte offset 1024 \(0 bytes past its end; the buffer has 1024 bytes\) in threadgroup \(3,0,0\), thread \(63,0,0\)$/,
    );
    assert.equal(out[255], 255); // copied back on rejection
    const input = new Uint32Array(1024).fill(3), o2 = new Uint32Array(1024);
    await assert.rejects(
      addon.run(mod, 'oob_read_before', [u8(input), u8(o2)], L(1024, 128), { bufferNames: ['in', null] }),
      /^Error: oob_read_before: out-of-bounds (read|access) of buffer\(0\) 'in' at byte offset -4 \(4 bytes before its start/,
    );
    const small = new Uint32Array(10);
    await assert.rejects(addon.run(mod, 'oob_write_end', [u8(small)], L(10, 10), {}), /out-of-bounds write past the end of buffer\(0\): bytes at offsets 40\.\.43/);
    const t0 = Date.now();
    await assert.rejects(addon.run(mod, 'spin', [u8(out)], L(256, 64), { timeoutMs: 100 }), /^Error: spin: timed out: still running after 100 ms in threadgroup \(1,0,0\), thread \(3,0,0\)/);
    assert.ok(Date.now() - t0 < 5000);
    await assert.rejects(addon.run(mod, 'spin_sync', [u8(out)], L(256, 64), { timeoutMs: 100, workers: 2 }), /timed out/);
    if (process.arch === 'x64') await assert.rejects(addon.run(mod, 'div_zero', [u8(out)], L(64, 32), {}), /arithmetic trap \(SIGFPE/);
    await assert.rejects(addon.run(mod, 'deep_stack_plain', [u8(out)], L(256, 128), { stackSize: 16384 }), /stack overflow in threadgroup/);
    assert.throws(() => addon.run(mod, 'copy', [], L(1, 1), { timeoutMs: -1 }), /options.timeoutMs/);
    assert.throws(() => addon.run(mod, 'copy', [], L(1, 1), { bufferNames: [1] }), /options.bufferNames\[0\] must be a string or null/);
    const n = 64, a = new Float32Array(n).fill(1), o = new Float32Array(n);
    await addon.run(mod, 'copy', [u8(a), u8(o), u8(new Uint32Array([n]))], L(n, 64), { timeoutMs: 5000 });
    assert.equal(o[63], 3);
  });

  await test('launch validation', async () => {
    const out = new Uint32Array(16);
    const L = (over) => ({ mode: 'threads', grid: [16, 1, 1], threadgroup: [16, 1, 1], threadgroupMemory: [], ...over });
    await assert.rejects(addon.run(mod, 'coverage', [u8(out), u8(out)], L({ grid: [0, 1, 1] }), {}), /coverage: grid \(0,1,1\) has a zero dimension/);
    await assert.rejects(addon.run(mod, 'coverage', [u8(out)], L({ threadgroup: [1024, 2, 1] }), {}), /threadgroup of 2048 threads exceeds the maximum of 1024/);
    await assert.rejects(addon.run(mod, 'coverage', [u8(out)], L({ threadgroupMemory: [32768, 16] }), {}), /threadgroup memory of 32784 bytes exceeds the maximum of 32768/);
  });

  await test('argument checking', () => {
    const L = { mode: 'threads', grid: [1, 1, 1], threadgroup: [1, 1, 1], threadgroupMemory: [] };
    assert.throws(() => addon.run({}, 'copy', [], L, {}), /module must be a NativeModule/);
    assert.throws(() => addon.run(mod, 'nope', [], L, {}), /no kernel named 'nope' in .*\(kernels: .*copy, reduce_tree/);
    assert.throws(() => addon.run(mod, 42, [], L, {}), TypeError);
    assert.throws(() => addon.run(mod, 'copy', [new Float32Array(4)], L, {}), /buffers\[0\] must be a Uint8Array or null/);
    assert.throws(() => addon.run(mod, 'copy', new Array(32).fill(null), L, {}), /32 buffers exceed the maximum of 31/);
    assert.throws(() => addon.run(mod, 'copy', [], { ...L, mode: 'x' }, {}), /launch.mode must be/);
    assert.throws(() => addon.run(mod, 'copy', [], { ...L, grid: [1, 2] }, {}), /launch.grid must be an array of 3 integers/);
    assert.throws(() => addon.run(mod, 'copy', [], { ...L, grid: [1.5, 1, 1] }, {}), /launch.grid\[0\] must be an integer/);
    assert.throws(() => addon.run(mod, 'copy', [], { ...L, threadgroup: [-1, 1, 1] }, {}), /launch.threadgroup\[0\]/);
    assert.throws(() => addon.run(mod, 'copy', [], L, { workers: 0 }), /options.workers/);
    assert.throws(() => addon.run(mod, 'copy', [], L, { schedule: 'random' }), /options.schedule/);
    assert.throws(() => addon.run(mod, 'copy', [], L, { stackSize: 100 }), /options.stackSize/);
    assert.throws(() => addon.run(mod, 'copy', [], L, { forceFibers: 1 }), /options.forceFibers/);
    assert.throws(() => addon.time(mod, 'copy', [], L, { warmup: 0 }), /options.iterations/);
    assert.throws(() => addon.run(mod, 'copy', []), /at least 4 arguments/);
  });

  await test('time', async () => {
    const n = 4096, a = new Float32Array(n).fill(2), o = new Float32Array(n);
    const ts = await addon.time(mod, 'copy', [u8(a), u8(o), u8(new Uint32Array([n]))], { mode: 'threads', grid: [n, 1, 1], threadgroup: [256, 1, 1], threadgroupMemory: [] }, { warmup: 2, iterations: 5, forceFibers: true });
    assert.ok(ts instanceof Float64Array);
    assert.equal(ts.length, 5);
    for (const t of ts) assert.ok(t > 0);
    assert.equal(o[n - 1], 5);
  });

  await test('concurrent runs + event loop stays live', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const G = 2048, T = 128;
    const jobs = [];
    for (let r = 0; r < 4; r++) {
      const out = new Uint32Array(G * T);
      jobs.push(addon.run(mod, 'bench_barrier', [u8(out)], { mode: 'threadgroups', grid: [G, 1, 1], threadgroup: [T, 1, 1], threadgroupMemory: [T * 4] }, {}).then(() => out));
    }
    const outs = await Promise.all(jobs);
    clearInterval(timer);
    for (const out of outs) assert.deepEqual(out.subarray(0, 256), outs[0].subarray(0, 256));
    assert.ok(ticks > 0, 'event loop was blocked');
  });

  await test('close', async () => {
    const m2 = addon.loadModule(so);
    const out = new Uint32Array(64 * 4);
    const p = addon.run(m2, 'reduce_tree', [u8(new Uint32Array(64 * 4).fill(1)), u8(out)], { mode: 'threadgroups', grid: [4, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [256] }, {});
    m2.close(); // in flight: the dispatch keeps the module loaded
    await p;
    assert.equal(out[0], 64);
    assert.throws(() => m2.kernels(), /is closed/);
    assert.throws(() => addon.run(m2, 'copy', [], { mode: 'threads', grid: [1, 1, 1], threadgroup: [1, 1, 1], threadgroupMemory: [] }, {}), /is closed/);
  });

  await test('cuda: probe never throws; without a GPU every call rejects or throws with the reason', async () => {
    const p = addon.cuda.probe();
    assert.equal(typeof p.available, 'boolean');
    assert.equal(typeof p.reason, 'string');
    if (p.available) return; // (a CUDA machine: nothing more to check here)
    await assert.rejects(addon.cuda.compile('extern "C" __global__ void k() {}', 'k.cu', []), /CUDA is not available/);
    assert.throws(() => addon.cuda.loadModule(new Uint8Array(16)), /CUDA is not available/);
    assert.throws(() => addon.cuda.loadModule('x'), /Uint8Array/);
  });

  console.log(`smoke: ${passed} tests passed`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
