/**
 * `npm run bench:cpu`: the CPU backend's fiber runtime against the same kernel
 * bodies written as plain C++ loops over threads (bench/native/loop_baselines.cc).
 *
 *   1. softmax-topk (barriers + SIMD collectives) at 4096 tokens × 128 experts × top-8
 *   2. a barrier-free kernel (GELU·up over 4M elements): the runtime's plain-loop
 *      fast path, and the same kernel forced onto fibers
 *   3. the wall time of the default `moe verify --kernel softmax-topk` (warm cache)
 *
 * Targets (issue 2): fibers within 10x of the loop for the barrier kernel,
 * within 2x for the barrier-free one; the default verify under 10 s on 2 cores.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../src/backend/index.js';
import { loadAddon } from '../src/backend/addon.js';
import { softmaxTopk } from '../src/kernels/softmax-topk.js';
import { bindCase, bytesOf } from '../src/harness/bindings.js';
import { makeRng } from '../src/util/rng.js';
import { PACKAGE_ROOT, SHADER_DIR } from '../src/util/paths.js';

const median = (a: Float64Array | number[]): number => {
  const s = Array.from(a).sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] as number;
};
const ms = (ns: number): string => `${(ns / 1e6).toFixed(2)} ms`;

async function main(): Promise<void> {
  const workers = loadAddon().hardwareConcurrency();
  const be = getBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'moe-bench-'));
  const exe = join(dir, 'loop_baselines');
  execFileSync(process.env.CXX ?? 'c++', ['-std=c++17', '-O2', '-pthread', '-o', exe, join(PACKAGE_ROOT, 'bench', 'native', 'loop_baselines.cc')]);
  const loop = (...args: string[]): number => {
    const out = execFileSync(exe, args, { encoding: 'utf8' });
    return Number(/median_ns (\d+)/.exec(out)?.[1]);
  };
  const iters = 15;
  console.log(`CPU backend fiber runtime vs plain C++ loops (${workers} worker threads, median of ${iters} dispatches)\n`);

  // 1. softmax-topk
  const p = { n_tokens: 4096, n_experts: 128, top_k: 8 };
  const src = readFileSync(join(SHADER_DIR, softmaxTopk.shader), 'utf8');
  const pipe = await be.compile(src, join(SHADER_DIR, softmaxTopk.shader), softmaxTopk.entry);
  const bound = bindCase(softmaxTopk, p, softmaxTopk.inputs(p, 'normal', makeRng('bench')));
  const fib = median(await be.time(pipe, bound.buffers, softmaxTopk.launch(p), { warmup: 2, iterations: iters }));
  const base = loop('softmax-topk', '4096', '128', '8', String(workers), String(iters));
  console.log('softmax-topk 4096 × 128 × top-8 (barriers + SIMD collectives)');
  console.log(`  fiber runtime      ${ms(fib)}`);
  console.log(`  plain C++ loop     ${ms(base)}`);
  console.log(`  ratio              ${(fib / base).toFixed(2)}x   (target ≤ 10x: ${fib / base <= 10 ? 'met' : 'MISSED'})\n`);

  // 2. barrier-free
  const n = 4 * 1024 * 1024;
  const gfile = join(PACKAGE_ROOT, 'bench', 'shaders', 'gelu_mul_bench.metal');
  const gp = await be.compile(readFileSync(gfile, 'utf8'), gfile, 'bench_gelu_mul');
  const rng = makeRng('bench-gelu');
  const g = Float32Array.from({ length: n }, () => rng.uniform(-2, 2));
  const u = Float32Array.from({ length: n }, () => rng.uniform(-2, 2));
  const bufs = [bytesOf(g), bytesOf(u), bytesOf(new Float32Array(n)), bytesOf(new Uint32Array([n]))];
  const launch = { mode: 'threads' as const, grid: [n, 1, 1] as [number, number, number], threadgroup: [256, 1, 1] as [number, number, number], threadgroupMemory: [] };
  const plainPath = median(await be.time(gp, bufs, launch, { warmup: 2, iterations: iters }));
  const forced = median(await be.time(gp, bufs, launch, { warmup: 2, iterations: iters, forceFibers: true }));
  const gbase = loop('gelu-mul', String(n), String(workers), String(iters));
  console.log(`GELU·up over ${n} elements (no barriers)`);
  console.log(`  runtime, loop fast path   ${ms(plainPath)}   ratio ${(plainPath / gbase).toFixed(2)}x (target ≤ 2x: ${plainPath / gbase <= 2 ? 'met' : 'MISSED'})`);
  console.log(`  runtime, forced fibers    ${ms(forced)}   ratio ${(forced / gbase).toFixed(2)}x`);
  console.log(`  plain C++ loop            ${ms(gbase)}\n`);

  // 3. the default verify of softmax-topk, warm cache (one run first to warm it)
  const bin = join(PACKAGE_ROOT, 'bin', 'run.js');
  const args = [bin, 'verify', '--kernel', 'softmax-topk', '--backend', 'cpu'];
  spawnSync(process.execPath, args, { stdio: 'ignore' });
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const wall = (performance.now() - t0) / 1000;
  console.log(`moe verify --kernel softmax-topk (default sweep, warm cache): ${wall.toFixed(2)} s, exit ${r.status} (target < 10 s: ${wall < 10 ? 'met' : 'MISSED'})`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
