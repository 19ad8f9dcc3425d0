import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NativeLaunch } from '../src/backend/addon-types.js';
import { LaunchError, MAX_SET_BYTES, perDispatchTimes, planBindings, timingPlan, validateLaunch, type LaunchLimits } from '../src/backend/launch.js';
import { parseMsl } from '../src/msl/index.js';

const metalLimits: LaunchLimits = {
  maxThreadsPerThreadgroup: 1024,
  threadsLimitName: "the pipeline's maxTotalThreadsPerThreadgroup",
  maxThreadgroupMemory: 32768,
  staticThreadgroupMemory: 0,
  threadgroupMemoryGranule: 16,
};
const L = (over: Partial<NativeLaunch> = {}): NativeLaunch => ({ mode: 'threadgroups', grid: [4, 1, 1], threadgroup: [128, 1, 1], threadgroupMemory: [], ...over });
const refused = (re: RegExp) => (e: unknown) => e instanceof LaunchError && re.test(e.message);

test('validateLaunch: a valid launch comes back with threadgroup memory rounded up to the granule', () => {
  const out = validateLaunch(L({ threadgroupMemory: [1536, 100, 0, 1] }), metalLimits);
  assert.deepEqual(out.threadgroupMemory, [1536, 112, 0, 16]);
  assert.deepEqual(out.grid, [4, 1, 1]);
  // Backend-neutral: without a granule nothing is rounded.
  assert.deepEqual(validateLaunch(L({ threadgroupMemory: [100] }), { maxThreadsPerThreadgroup: 1024, maxThreadgroupMemory: 49152 }).threadgroupMemory, [100]);
});

test('validateLaunch: a threadgroup larger than the pipeline allows is refused, naming the limit', () => {
  assert.throws(() => validateLaunch(L({ threadgroup: [32, 32, 2] }), metalLimits), refused(/32×32×2 = 2048 threads exceeds the pipeline's maxTotalThreadsPerThreadgroup of 1024/));
  // A pipeline may allow fewer than the device (register pressure, max_total_threads_per_threadgroup).
  assert.throws(() => validateLaunch(L({ threadgroup: [512, 1, 1] }), { ...metalLimits, maxThreadsPerThreadgroup: 448 }), refused(/512 threads exceeds .* of 448/));
  assert.doesNotThrow(() => validateLaunch(L({ threadgroup: [448, 1, 1] }), { ...metalLimits, maxThreadsPerThreadgroup: 448 }));
});

test('validateLaunch: zero grid or threadgroup dimensions, non-integers, and 2^32 overflows are refused', () => {
  assert.throws(() => validateLaunch(L({ grid: [0, 1, 1] }), metalLimits), refused(/grid \(0,1,1\) has a zero dimension/));
  assert.throws(() => validateLaunch(L({ threadgroup: [64, 0, 1] }), metalLimits), refused(/threadgroup \(64,0,1\) has a zero dimension/));
  assert.throws(() => validateLaunch(L({ grid: [1.5, 1, 1] }), metalLimits), refused(/must be 3 integers/));
  assert.throws(() => validateLaunch(L({ grid: [2 ** 25, 1, 1], threadgroup: [256, 1, 1] }), metalLimits), refused(/dimension x exceed 2\^32-1 threads/));
  // In 'threads' mode the grid counts threads: the same numbers are fine.
  assert.doesNotThrow(() => validateLaunch(L({ mode: 'threads', grid: [2 ** 25, 1, 1], threadgroup: [256, 1, 1] }), metalLimits));
});

test('validateLaunch: threadgroup memory, static plus rounded dynamic, must fit the maximum', () => {
  assert.doesNotThrow(() => validateLaunch(L({ threadgroupMemory: [32768] }), metalLimits));
  assert.throws(() => validateLaunch(L({ threadgroupMemory: [32760, 1] }), metalLimits), refused(/32784 bytes exceeds the maximum of 32768/));
  assert.throws(
    () => validateLaunch(L({ threadgroupMemory: [31744] }), { ...metalLimits, staticThreadgroupMemory: 1040 }),
    refused(/32784 bytes \(1040 declared in the kernel, 31744 set at launch\)/),
  );
  assert.throws(() => validateLaunch(L({ threadgroupMemory: new Array<number>(32).fill(16) }), metalLimits), refused(/32 threadgroup memory arguments exceed the maximum of 31/));
  assert.throws(() => validateLaunch(L({ threadgroupMemory: [-16] }), metalLimits), refused(/not a byte count/));
});

const SIG = parseMsl(
  `#include <metal_stdlib>
using namespace metal;
struct P { uint n; float w; };
struct Big { float table[2048]; };
kernel void k(device float* out [[buffer(0)]],
              constant P& p [[buffer(1)]],
              device const float* in [[buffer(2)]],
              constant uint& n [[buffer(3)]],
              constant Big& big [[buffer(4)]],
              constant float* lut [[buffer(5)]],
              uint i [[thread_position_in_grid]]) { out[i] = in[i] * p.w + big.table[0] + lut[0] + float(n); }`,
  'sig.metal',
).kernels[0]!;
const bytes = (n: number): Uint8Array => new Uint8Array(n);

test('planBindings: constant references up to 4096 bytes go by setBytes, everything else in buffers, in [[buffer(n)]] order', () => {
  const views = [bytes(64), bytes(8), bytes(64), bytes(4), bytes(8192), bytes(32), null, bytes(12)];
  const plan = planBindings(SIG, views);
  assert.deepEqual(
    plan.map((b) => [b.index, b.bytes, b.data.byteLength]),
    [
      [0, false, 64], // device float*: a buffer
      [1, true, 8], // constant P&: setBytes
      [2, false, 64],
      [3, true, 4], // constant uint&: setBytes (scalars bound one per index)
      [4, false, 8192], // constant Big& over 4 KB: a buffer
      [5, false, 32], // constant float* (a pointer): a buffer
      [7, false, 12], // not in the signature: bound as a buffer, harmless
    ],
  );
  for (const b of plan) assert.equal(b.data, views[b.index], 'the views themselves, not copies');
  assert.equal(MAX_SET_BYTES, 4096);
  assert.equal(planBindings(SIG, [bytes(4), bytes(4096), bytes(4), bytes(4), bytes(4), bytes(4)])[1]?.bytes, true);
  assert.equal(planBindings(SIG, [bytes(4), bytes(4097), bytes(4), bytes(4), bytes(4), bytes(4)])[1]?.bytes, false);
});

test('planBindings: a declared buffer left unbound, or a param struct of 0 bytes, is refused before dispatch', () => {
  assert.throws(() => planBindings(SIG, [bytes(4), bytes(8), null, bytes(4), bytes(4), bytes(4)]), refused(/buffer\(2\) 'in' is not bound/));
  assert.throws(() => planBindings(SIG, [bytes(4), bytes(0), bytes(4), bytes(4), bytes(4), bytes(4)]), refused(/buffer\(1\) 'p' \(constant P&\) is bound to 0 bytes/));
  assert.throws(() => planBindings(SIG, new Array<Uint8Array>(32).fill(bytes(4))), refused(/32 buffers exceed the 31/));
});

test('timingPlan: iterations split into command buffers of at most 32 dispatches, never fewer dispatches than asked', () => {
  assert.deepEqual(timingPlan(1), { perBatch: 1, batches: 1 });
  assert.deepEqual(timingPlan(10), { perBatch: 10, batches: 1 });
  assert.deepEqual(timingPlan(32), { perBatch: 32, batches: 1 });
  assert.deepEqual(timingPlan(70), { perBatch: 32, batches: 3 });
  assert.deepEqual(timingPlan(1000, 8), { perBatch: 8, batches: 125 });
  assert.throws(() => timingPlan(0), LaunchError);
  assert.throws(() => timingPlan(4, 0), LaunchError);
});

test('perDispatchTimes: one sample per batch, its GPU time over its dispatches; unusable timestamps are errors', () => {
  assert.deepEqual(Array.from(perDispatchTimes(Float64Array.from([32000, 32032, 64000]), 32)), [1000, 1001, 2000]);
  assert.deepEqual(Array.from(perDispatchTimes([], 4)), []);
  assert.throws(() => perDispatchTimes([1000, 0], 4), refused(/GPU time of 0 ns for a command buffer of 4 dispatches/));
  assert.throws(() => perDispatchTimes([NaN], 1), refused(/GPU time of NaN/));
  assert.throws(() => perDispatchTimes([-5], 1), LaunchError);
});
