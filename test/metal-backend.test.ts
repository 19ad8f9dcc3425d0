/**
 * The Metal backend on Linux: everything but the Metal calls, through the
 * real glue (native/metal/metal_glue.cc) over the recording fake of
 * native/metal/metal_c_api.h (build/Release/moe_metal_fake.node).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { NativeMetal, NativeMetalBinding } from '../src/backend/addon-types.js';
import { getBackend } from '../src/backend/index.js';
import { FeatureMissingError } from '../src/backend/features.js';
import { familyNames, findMetal, isParavirtual, mapMetalCompilerOutput, MetalBackend, metalDeviceInfo, metalStatusFrom, mslText } from '../src/backend/metal.js';
import { deviceSelfTest, ensureDeviceTrusted } from '../src/backend/selftest.js';
import type { Backend } from '../src/backend/types.js';
import { KernelRuntimeError, ShaderCompileError, UsageError } from '../src/errors.js';
import { findSpec } from '../src/kernels/index.js';
import { verifySpec } from '../src/harness/run.js';
import { ROOT } from './helpers.js';

interface FakeAddon {
  metal: NativeMetal;
  fake: { setProfile(name: string): void; profile(): string; calls(): string[]; clearCalls(): void };
}
export const FAKE_ADDON = join(ROOT, 'build', 'Release', 'moe_metal_fake.node');
const addon = createRequire(import.meta.url)(FAKE_ADDON) as FakeAddon;
const { metal, fake } = addon;

/** A fresh backend on a fresh fake profile (the self-test cache is per backend object). */
function backend(profile = 'm2'): MetalBackend {
  fake.setProfile(profile);
  return new MetalBackend(metal, false);
}
/** The calls of the dispatches, without the device queries and the releases of earlier tests' pipelines (garbage collected at any time). */
const dispatches = (): string[] => fake.calls().filter((c) => !c.startsWith('device_info') && !c.startsWith('release '));

const SRC = `#include <metal_stdlib>
using namespace metal;
struct ZeroParams { uint n_elements; };
kernel void zero_buffer(device float* buf [[buffer(0)]], constant ZeroParams& p [[buffer(1)]],
                        uint i [[thread_position_in_grid]]) { if (i < p.n_elements) buf[i] = 0.0f; }
kernel void small_tg(device float* buf [[buffer(0)]], uint i [[thread_position_in_grid]])
    [[max_total_threads_per_threadgroup(256)]] { buf[i] = 1.0f; }
`;
const u8 = (a: Float32Array | Uint32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test('metal status: not macOS, not built into the addon, an addon that does not load: each says why', () => {
  assert.equal(findMetal('linux', {}), 'Metal needs macOS; this is linux');
  // This Linux addon has no Metal code: asked as if on macOS, it says so.
  assert.match(String(findMetal('darwin', {})), /the Metal backend is not built into this addon: rebuild on macOS with the Xcode command line tools/);
  assert.match(String(findMetal('linux', { MOE_METAL_ADDON: '/nonexistent/fake.node' })), /MOE_METAL_ADDON=\/nonexistent\/fake.node does not load/);
  const st = metalStatusFrom('Metal needs macOS; this is linux');
  assert.deepEqual(st, { name: 'metal', available: false, reason: 'Metal needs macOS; this is linux' });
  const real = getBackend('cpu');
  assert.equal(real.name, 'cpu');
  assert.throws(() => getBackend('metal'), (e: unknown) => e instanceof UsageError && /Metal needs macOS; this is linux/.test(e.message));
});

test('metal status: device facts, GPU families, MSL version, and the paravirtual device flagged', () => {
  fake.setProfile('m2');
  const found = findMetal('linux', { MOE_METAL_ADDON: FAKE_ADDON });
  assert.ok(typeof found !== 'string');
  const ok = metalStatusFrom(found);
  assert.equal(ok.available, true);
  assert.equal(ok.device?.details.families, 'Apple5, Apple6, Apple7, Apple8, Mac2, Metal3');
  assert.equal(ok.device?.details.msl, '3.1');
  assert.equal(ok.device?.details.unifiedMemory, true);
  assert.equal(ok.device?.details.recommendedWorkingSet, '10.67 GiB');
  assert.deepEqual(ok.device?.features, { bfloat: true });
  assert.doesNotMatch(ok.reason, /Paravirtual/);

  fake.setProfile('paravirtual');
  const pv = metalStatusFrom(found);
  assert.equal(pv.device?.name, 'Apple Paravirtual device');
  assert.equal(pv.device?.details.families, 'Apple5');
  assert.equal(pv.device?.details.paravirtual, true);
  assert.match(pv.reason, /WARNING: Apple Paravirtual device: the GPU of a virtual machine .* custom kernels have been seen to return zeros/);

  fake.setProfile('no-msl31');
  const old = metalStatusFrom(found);
  assert.equal(old.device?.features?.bfloat, false);
  assert.match(old.reason, /no bfloat: bfloat needs MSL 3.1 \(macOS 14 or newer\); this system compiles MSL 3.0 \(bf16 kernels are skipped\)/);

  fake.setProfile('no-device');
  const none = metalStatusFrom(found);
  assert.equal(none.available, false);
  assert.match(none.reason, /no usable Metal device: no Metal device: MTLCreateSystemDefaultDevice and MTLCopyAllDevices found none/);
});

test('device facts: family bits, MSL text, paravirtual name', () => {
  assert.deepEqual(familyNames(0), []);
  assert.deepEqual(familyNames(1 | 4 | 64), ['Apple5', 'Apple7', 'Metal3']);
  assert.deepEqual(familyNames(127), ['Apple5', 'Apple6', 'Apple7', 'Apple8', 'Apple9', 'Mac2', 'Metal3']);
  assert.equal(mslText(31), '3.1');
  assert.equal(mslText(24), '2.4');
  assert.equal(isParavirtual('Apple Paravirtual device'), true);
  assert.equal(isParavirtual('Apple M2 Pro'), false);
  const d = metalDeviceInfo({ name: 'x', maxThreadsPerThreadgroup: 1024, recommendedWorkingSet: 2 ** 29, unifiedMemory: false, families: 0, mslVersion: 24, maxThreadgroupMemory: 32768 });
  assert.equal(d.details.families, 'none of Apple5..9, Mac2, Metal3');
  assert.equal(d.details.recommendedWorkingSet, '512.0 MiB');
  assert.equal(d.features?.bfloat, false);
});

test('run: bindings in [[buffer(n)]] order, the param struct by setBytes, the output copied back', async () => {
  const be = backend();
  const p = await be.compile(SRC, 'k.metal', 'zero_buffer');
  assert.equal(p.backend, 'metal');
  assert.equal(p.kernel.name, 'zero_buffer');
  const buf = Float32Array.from({ length: 100 }, () => 7);
  fake.clearCalls();
  await be.run(p, [u8(buf), u8(Uint32Array.of(60))], { mode: 'threads', grid: [100, 1, 1], threadgroup: [32, 1, 1], threadgroupMemory: [] });
  assert.deepEqual(dispatches(), [
    'dispatch zero_buffer mode=threads grid=100x1x1 tg=32x1x1 warmup=0 per_batch=1 batches=1',
    '  setBuffer index=0 length=400 storage=shared redzones=4096',
    '  setBytes index=1 length=4',
  ]);
  assert.equal(buf[59], 0);
  assert.equal(buf[60], 7, 'the kernel zeroes only the first n_elements');
});

test('run: threadgroup memory rounded up to 16 bytes per index; the same view at two indices is one buffer', async () => {
  const be = backend();
  const src = `kernel void tgk(device float* a [[buffer(0)]], device float* b [[buffer(1)]], threadgroup float* t [[threadgroup(0)]],
                 threadgroup float* u [[threadgroup(1)]], uint i [[thread_position_in_grid]]) { a[i] = b[i]; }`;
  const p = await be.compile(src, 't.metal', 'tgk');
  const v = u8(new Float32Array(8));
  fake.clearCalls();
  await be.run(p, [v, v], { mode: 'threadgroups', grid: [2, 1, 1], threadgroup: [4, 1, 1], threadgroupMemory: [1536, 100] });
  assert.deepEqual(dispatches(), [
    'dispatch tgk mode=threadgroups grid=2x1x1 tg=4x1x1 warmup=0 per_batch=1 batches=1',
    '  setBuffer index=0 length=32 storage=shared redzones=4096',
    '  setBuffer index=1 same buffer as index=0',
    '  setThreadgroupMemoryLength 1536 index=0',
    '  setThreadgroupMemoryLength 112 index=1',
  ]);
});

test('a threadgroup larger than the pipeline allows is an error before dispatch (backend and glue both)', async () => {
  const be = backend();
  const p = await be.compile(SRC, 'k.metal', 'small_tg');
  const buf = u8(new Float32Array(1024));
  fake.clearCalls();
  await assert.rejects(
    be.run(p, [buf], { mode: 'threads', grid: [1024, 1, 1], threadgroup: [512, 1, 1], threadgroupMemory: [] }),
    (e: unknown) => e instanceof KernelRuntimeError && /small_tg: a threadgroup of 512×1×1 = 512 threads exceeds the pipeline's maxTotalThreadsPerThreadgroup of 256/.test(e.message),
  );
  // The glue checks on its own too (a caller that skips launch.ts).
  const native = metal.compile(SRC, 'small_tg');
  assert.equal(native.maxThreads, 256);
  assert.equal(native.execWidth, 32);
  const b: NativeMetalBinding[] = [{ index: 0, data: buf, bytes: false }];
  await assert.rejects(metal.run(native, b, { mode: 'threads', grid: [1024, 1, 1], threadgroup: [16, 32, 1], threadgroupMemory: [] }), /512 threads exceeds the pipeline's maxTotalThreadsPerThreadgroup of 256/);
  await assert.rejects(metal.run(native, b, { mode: 'threads', grid: [1024, 0, 1], threadgroup: [16, 1, 1], threadgroupMemory: [] }), /grid \(1024,0,1\) has a zero dimension/);
  await assert.rejects(metal.run(native, b, { mode: 'threads', grid: [64, 1, 1], threadgroup: [16, 1, 1], threadgroupMemory: [100] }), /threadgroup memory length 100 at \[\[threadgroup\(0\)\]\] is not a multiple of 16 bytes/);
  await assert.rejects(metal.run(native, b, { mode: 'threads', grid: [64, 1, 1], threadgroup: [16, 1, 1], threadgroupMemory: [32768, 16] }), /threadgroup memory of 32784 bytes .* exceeds the device's maxThreadgroupMemoryLength of 32768/);
  assert.deepEqual(dispatches(), ['compile small_tg msl=31 fast_math=0'], 'nothing was dispatched');
});

test('the glue checks its arguments: pipelines from compile only, setBytes sizes, indices', async () => {
  fake.setProfile('m2');
  const native = metal.compile(SRC, 'zero_buffer');
  const launch = { mode: 'threads' as const, grid: [1, 1, 1] as [number, number, number], threadgroup: [1, 1, 1] as [number, number, number], threadgroupMemory: [] };
  const forged = { ...native };
  assert.throws(() => metal.run(forged, [], launch), /pipeline must be an object returned by metal.compile/);
  assert.throws(() => metal.run(native, [{ index: 1, data: new Uint8Array(4097), bytes: true }], launch), /a setBytes binding must have 1 to 4096 bytes, not 4097/);
  assert.throws(() => metal.run(native, [{ index: 1, data: new Uint8Array(0), bytes: true }], launch), /must have 1 to 4096 bytes, not 0/);
  assert.throws(() => metal.run(native, [{ index: 31, data: new Uint8Array(4), bytes: false }], launch), /index must be an integer in \[0, 30\]/);
  const four = new Uint8Array(4);
  assert.throws(() => metal.run(native, [{ index: 0, data: four, bytes: false }, { index: 0, data: four, bytes: false }], launch), /buffer\(0\) is bound twice/);
  assert.throws(() => metal.compile('kernel void a() {}', ''), /entry must not be empty/);
  assert.throws(() => metal.compile('kernel void a() {}\0', 'a'), /source contains a NUL character/);
  assert.throws(() => metal.time(native, [], launch, { warmup: 0, perBatch: 0, batches: 1 }), /options.perBatch must be an integer in \[1, 1000000\]/);
  // An empty buffer binding is allowed (Metal gets a 16-byte buffer).
  await metal.run(native, [{ index: 0, data: new Uint8Array(0), bytes: false }, { index: 1, data: u8(Uint32Array.of(0)), bytes: true }], launch);
});

test('time: warm-up first, then command buffers of up to 32 dispatches; per-dispatch times from each batch', async () => {
  const be = backend();
  const p = await be.compile(SRC, 'k.metal', 'zero_buffer');
  fake.clearCalls();
  const t = await be.time(p, [u8(new Float32Array(64)), u8(Uint32Array.of(64))], { mode: 'threads', grid: [64, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [] }, { warmup: 2, iterations: 70 });
  assert.equal(dispatches()[0], 'dispatch zero_buffer mode=threads grid=64x1x1 tg=64x1x1 warmup=2 per_batch=32 batches=3');
  // The fake's GPU clock: 1000 ns per dispatch, plus the batch number per command buffer.
  assert.deepEqual(Array.from(t), [1000, 1000 + 1 / 32, 1000 + 2 / 32]);
  assert.equal(be.clock, 'GPU: GPUEndTime − GPUStartTime of each command buffer of back-to-back dispatches, over its dispatches');
});

test('compile errors come back located in the .metal file; a missing entry is named', async () => {
  const be = backend('compile-error');
  await assert.rejects(be.compile(SRC, '/x/k.metal', 'zero_buffer'), (e: unknown) => e instanceof ShaderCompileError && /\/x\/k.metal: compile failed \(Metal\)\n\/x\/k.metal:3:9: error: use of undeclared identifier 'oops'/.test(e.message));
  const ok = backend();
  await assert.rejects(ok.compile(SRC, 'k.metal', 'nope'), (e: unknown) => e instanceof UsageError && /no kernel named 'nope' \(kernels in the file: zero_buffer, small_tg\)/.test(e.message));
  assert.equal(mapMetalCompilerOutput('program_source:1:2: error: a\nprogram_source:5:1: note: b\n\n', 'f.metal'), 'f.metal:1:2: error: a\nf.metal:5:1: note: b');
});

test('a command buffer that fails is a kernel error with Metal\'s message, not a crash', async () => {
  const be = backend('cb-error');
  const p = await be.compile(SRC, 'k.metal', 'zero_buffer');
  await assert.rejects(
    be.run(p, [u8(new Float32Array(4)), u8(Uint32Array.of(4))], { mode: 'threads', grid: [4, 1, 1], threadgroup: [4, 1, 1], threadgroupMemory: [] }),
    (e: unknown) => e instanceof KernelRuntimeError && /zero_buffer: command buffer failed: .*GPU Timeout Error/.test(e.message),
  );
});

test('bfloat on a device without MSL 3.1: the source is never compiled (exit 2), and verify reports SKIP with the reason', async () => {
  const be = backend('no-msl31');
  const bf = 'kernel void b(device bfloat* x [[buffer(0)]], uint i [[thread_position_in_grid]]) { x[i] = bfloat(1.0f); }';
  fake.clearCalls();
  await assert.rejects(be.compile(bf, 'bf.metal', 'b'), (e: unknown) => e instanceof FeatureMissingError && e.exitCode === 2 && /bf.metal:1 uses bfloat, .*bfloat needs MSL 3.1/.test(e.message));
  // A comment that mentions bfloat is no use of it.
  await be.compile(`// bfloat is not used here\n${SRC}`, 'k.metal', 'zero_buffer');
  assert.deepEqual(dispatches(), ['compile zero_buffer msl=30 fast_math=0']);
  const spec = findSpec('gelu-mul-bf16');
  const { results } = await verifySpec(spec, be, spec.cases().slice(0, 3), { seed: 42 });
  assert.equal(results.length, 3);
  for (const r of results) {
    assert.equal(r.status, 'SKIP');
    assert.match(r.skipReason ?? '', /moe_dispatch.metal:\d+ uses bfloat, which Fake Apple M1 on macOS 13 \(moe_metal_fake\) cannot compile here: bfloat needs MSL 3.1/);
    assert.deepEqual(r.outputs, []);
  }
  assert.deepEqual(dispatches().slice(1), [], 'nothing compiled or dispatched for the skipped kernel');
});

test('verify through the fake device: zero-buffer and accumulate PASS on every case', async () => {
  const be = backend();
  for (const name of ['zero-buffer', 'accumulate']) {
    const spec = findSpec(name);
    const { results } = await verifySpec(spec, be, spec.cases(), { seed: 42 });
    assert.ok(results.length > 0);
    for (const r of results) assert.equal(r.status, 'PASS', `${name} ${r.shape} ${r.inputSet}: ${r.error ?? r.outputs.map((o) => o.failure).join('; ')}`);
  }
});

test('device self-test: passes on a working device, once per backend; the paravirtual device is refused naming each check', async () => {
  const be = backend();
  await ensureDeviceTrusted(be);
  const compiles = fake.calls().filter((c) => c.startsWith('compile')).length;
  assert.equal(compiles, 4);
  await ensureDeviceTrusted(be);
  assert.equal(fake.calls().filter((c) => c.startsWith('compile')).length, compiles, 'cached: not run again');

  const pv = backend('paravirtual');
  await assert.rejects(ensureDeviceTrusted(pv), (e: unknown) =>
    e instanceof UsageError && e.exitCode === 2 &&
    /device self-test failed on metal \(Apple Paravirtual device\): copy: element 0: got 0, expected \d+; barrier reduction: element 0: got 0, .*; SIMD-group sum: .*; bfloat round trip: .*The device is refused/.test(e.message));

  const simd = backend('broken-simd');
  await assert.rejects(ensureDeviceTrusted(simd), (e: unknown) => e instanceof UsageError && /failed on metal \(Fake broken GPU \(moe_metal_fake\)\): SIMD-group sum: element 0: got 136000, expected 528000\. The device/.test(e.message));

  const old = backend('no-msl31');
  await ensureDeviceTrusted(old);
  const checks = await deviceSelfTest(old);
  const bf = checks.find((c) => c.name === 'bfloat round trip');
  assert.equal(bf?.skipped, true);
  assert.equal(bf?.pass, false, 'a skipped check is never a pass');
  assert.ok(!fake.calls().some((c) => c.startsWith('compile selftest_bfloat')), 'the bfloat shader is not compiled without MSL 3.1');
});

test('ensureDeviceTrusted: the cpu backend is not self-tested; any other backend (a fake TS object) is', async () => {
  let compiled = 0;
  const cpuLike: Backend = {
    name: 'cpu',
    clock: 'fake',
    device: () => ({ backend: 'cpu', name: 'fake cpu', details: {} }),
    compile: () => {
      compiled++;
      return Promise.reject(new Error('must not be called'));
    },
    run: () => Promise.resolve(),
    time: () => Promise.resolve(new Float64Array(1)),
  };
  await ensureDeviceTrusted(cpuLike);
  assert.equal(compiled, 0);
  const cpu = getBackend('cpu');
  // A "cuda" device that returns zeros is refused the same way, and its bfloat check is skipped when the device says so.
  const zeros: Backend = {
    name: 'cuda',
    clock: 'fake',
    device: () => ({ backend: 'cuda', name: 'Fake GPU', details: {}, features: { bfloat: false, bfloatReason: 'compute capability 7.5 has no bf16 here' } }),
    compile: (s, f, e) => cpu.compile(s, f, e),
    run: () => Promise.resolve(),
    time: () => Promise.resolve(new Float64Array(1)),
  };
  await assert.rejects(ensureDeviceTrusted(zeros), (e: unknown) => e instanceof UsageError && /failed on cuda \(Fake GPU\): copy: element 0/.test(e.message) && !/bfloat round trip:/.test(e.message));
  const checks = await deviceSelfTest(zeros);
  assert.equal(checks.find((c) => c.name === 'bfloat round trip')?.detail, 'compute capability 7.5 has no bf16 here');
});
