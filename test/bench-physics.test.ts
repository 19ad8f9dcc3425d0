import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPhysics, deviceCeilings, IMPOSSIBLE, LARGEST_GPU_CACHE_BYTES, type PhysicsInput } from '../src/bench/physics.js';
import { moe, shader } from './helpers.js';

const one = (gbps: number, gflops: number, bytes = 1e9): PhysicsInput['cases'][number] => ({ kernel: 'k', shape: 's', bytes, flops: gflops * 1e9, gbps, gflops });
const h200 = (cases: PhysicsInput['cases'], more: Partial<PhysicsInput> = {}): PhysicsInput => ({
  backend: 'cuda',
  device: { name: 'NVIDIA H200' },
  peak: { bandwidthGBs: 4800, source: 'table' },
  flags: {},
  cases,
  ...more,
});

test('physics: above the table peak or the compute peak is impossible, at or below is not', () => {
  assert.equal(checkPhysics(h200([one(4800, 10)])).impossible.length, 0);
  const bw = checkPhysics(h200([one(4900, 10)])).impossible;
  assert.equal(bw.length, 1);
  assert.match(bw[0]?.reasons[0] ?? '', /4900 GB\/s > peak table 4800 GB\/s/);
  const fl = checkPhysics(h200([one(100, 70_000)])).impossible;
  assert.match(fl[0]?.reasons[0] ?? '', /70000 GFLOP\/s > peak table 67000 GFLOP\/s/);
});

test('physics: a measured copy bandwidth bounds with 10% to spare', () => {
  const measured = { bandwidthGBs: 3000, source: 'measured: moe_copy_f32 over 256 MiB' };
  assert.equal(checkPhysics(h200([one(3290, 1)], { peak: measured })).impossible.length, 0);
  const over = checkPhysics(h200([one(3310, 1)], { peak: measured })).impossible;
  assert.match(over[0]?.reasons.join() ?? '', /measured copy 3000 GB\/s \+ 10%/);
});

test('physics: where the cache stays warm, memory ceilings bound only cases larger than any cache', () => {
  const warm = { flags: { 'warm-cache': true } };
  assert.equal(checkPhysics(h200([one(9000, 1, 1e6)], warm)).impossible.length, 0, 'an L2-resident case may beat DRAM');
  assert.equal(checkPhysics(h200([one(9000, 1, LARGEST_GPU_CACHE_BYTES + 1)], warm)).impossible.length, 1);
  assert.match(deviceCeilings(h200([], warm)).notes.join(), /--warm-cache leaves data in the cache/);
  const metal: PhysicsInput = { backend: 'metal', device: { name: 'Apple M2 Max' }, peak: null, flags: {}, cases: [one(500, 1, 1e6), one(500, 1, 1e9)] };
  const v = checkPhysics(metal);
  assert.deepEqual(v.impossible.map((c) => c.gbps), [500]);
  assert.equal(v.impossible.length, 1);
  assert.match(v.notes.join(), /no compute ceiling known for Apple M2 Max/);
});

test('physics: the CPU ceiling is the host bound of its logical CPUs, never the measured copy', () => {
  const cpu: PhysicsInput = { backend: 'cpu', device: { name: 'x' }, peak: { bandwidthGBs: 10, source: 'measured: copy' }, flags: {}, cases: [one(50, 1), one(2 * 192 * 6 + 1, 1), one(1, 2 * 64 * 6 + 1)] };
  const v = checkPhysics(cpu, 2);
  assert.deepEqual(v.ceilings.map((k) => [k.kind, k.value]), [['bandwidth', 2304], ['compute', 768]]);
  assert.equal(v.impossible.length, 2, 'the case above the measured copy but far below the host bound is possible');
  assert.match(v.notes.join(), /measured copy bandwidth is shown, not applied/);
});

// A mat-vec whose threads return at once: 16 rows of 4M floats (256 MiB the cost
// model counts) in the time of an empty dispatch, far above what any host moves.
const skipping = ['bench', '--backend', 'cpu', '--kernel', 'matvec', '--shader', shader('physics', 'matvec_skips_work.metal'), '--rows', '16', '--cols', '4194304', '--max-time', '0.05', '--min-samples', '3', '--warmup', '1'];

test('a bench case of a kernel that skips its work is flagged impossible and exits 1, in every output format', () => {
  const table = moe(skipping);
  assert.equal(table.code, 1, table.stdout + table.stderr);
  assert.ok(table.stdout.includes(`IMPOSSIBLE matvec rows=16 cols=4194304: ${IMPOSSIBLE}`), table.stdout);
  assert.match(table.stdout, /FAIL: 1 physically impossible case/);
  const json = moe([...skipping, '--json']);
  assert.equal(json.code, 1, json.stderr);
  const doc = JSON.parse(json.stdout) as { physics: { impossible: { kernel: string; reasons: string[] }[] } };
  assert.equal(doc.physics.impossible.length, 1);
  assert.match(doc.physics.impossible[0]?.reasons[0] ?? '', /GB\/s > host bound/);
  assert.ok(json.stderr.includes(IMPOSSIBLE));
  const md = moe([...skipping, '--markdown']);
  assert.equal(md.code, 1);
  assert.match(md.stdout, /### ❌ Physically impossible results/);
});

test('a kernel that does its work is not flagged', () => {
  const r = moe(['bench', '--backend', 'cpu', '--kernel', 'matvec,weighted-sum', '--max-time', '0.05', '--min-samples', '3', '--warmup', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { physics: { impossible: unknown[]; ceilings: unknown[] } };
  assert.deepEqual(doc.physics.impossible, []);
  assert.equal(doc.physics.ceilings.length, 2);
});
