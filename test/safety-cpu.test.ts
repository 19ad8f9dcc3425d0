/**
 * Safety of the CPU backend and of both emitters:
 *
 * - threadgroup memory sits against guard pages: an access past a
 *   `threadgroup` array fails the case naming the array, the index and the
 *   thread (also under --schedules);
 * - every loop of kernel code polls the watchdog's abort flag (both emitters:
 *   the text they emit, lines kept), so a kernel in an endless loop is stopped
 *   at its loop, the timeout names the kernel and the loop's .metal line, and
 *   the next kernel runs in the same process;
 * - after a kernel's first timeout its other cases are SKIP with the reason;
 * - the CLI exits right after its report, whatever a kernel thread does.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../src/backend/index.js';
import { accumulate } from '../src/kernels/accumulate.js';
import type { KernelCase } from '../src/kernels/spec.js';
import { verifySpec } from '../src/harness/run.js';
import { emitCpp, emitCuda, parseMsl } from '../src/msl/index.js';
import { ROOT, moe, shader } from './helpers.js';

const lineOf = (file: string, text: string): number => readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;

const LOOPS = `#include <metal_stdlib>
using namespace metal;
#define SPIN(n) for (uint q = 0; q < n; ++q) {}
static float helper(device const float* a, uint n) {
    float s = 0.0f;
    uint i = 0;
    while (i < n) s += a[i++];
    do { s *= 0.5f; } while (s > 1.0f);
    for (;;) { if (s < 2.0f) break; }
    return s;
}
kernel void k(device float* out [[buffer(0)]], device const float* a [[buffer(1)]], uint gid [[thread_position_in_grid]]) {
    float s = helper(a, 4u);
    #pragma unroll
    for (uint j = 0; j < 4; ++j)
        if (j == gid) s += 1.0f; else s -= 1.0f;
    float xs[2] = {1.0f, 2.0f};
    for (float x : xs) s += x;
    SPIN(3)
    uint g = 0;
again:
    if (++g < 3u) goto again;
    out[gid] = s;
}
`;

describe('emitters: every loop of kernel code polls the abort flag', () => {
  const parsed = parseMsl(LOOPS, 'loops.metal');
  for (const [name, code] of [
    ['C++', emitCpp(parsed).code],
    ['CUDA', emitCuda(parsed).code],
  ] as const) {
    test(`${name}: for, while, do and for(;;) in kernels and helpers, with their .metal lines`, () => {
      const user = code.slice(code.indexOf('#line 1 "loops.metal"'), code.indexOf('#line 1 "loops.metal.entries'));
      const lines = user.split('\n').slice(1);
      // lines kept: the emitted user code has the source's line structure
      assert.equal(lines.length - 1, LOOPS.split('\n').length - 1);
      const at = (n: number): string => lines[n - 1] as string;
      assert.match(at(7), /\{ unsigned __moe_loop\d+ = 0u; while \(MOE_LOOP_POLL\(__moe_loop\d+, 7\) && \(i < n\)\) s \+= a\[i\+\+\]; \}/);
      assert.match(at(8), /\{ unsigned (__moe_loop\d+) = 0u; do \{ s \*= 0\.5f; \} while \(MOE_LOOP_POLL\(\1, 8\) && \(s > 1\.0f\)\); \}/);
      assert.match(at(9), /\{ unsigned (__moe_loop\d+) = 0u; for \(; MOE_LOOP_POLL\(\1, 9\);\) \{ if \(s < 2\.0f\) break; \} \}/);
      // after a #pragma: the block opens before it (on the line above), the loop stays right after the pragma
      assert.match(at(13), /helper\(a, 4u\);\{ unsigned (__moe_loop\d+) = 0u; $/);
      assert.match(at(14), /^\s*#pragma unroll$/);
      assert.match(at(15), /for \(uint j = 0; MOE_LOOP_POLL\(__moe_loop\d+, 15\) && \(j < 4\); \+\+j\)$/);
      assert.match(at(16), /else s -= 1\.0f; \}$/);
      // not instrumented: range-for, loops inside macros, goto
      assert.match(at(18), /^\s*for \(float x : xs\) s \+= x;$/);
      assert.match(at(3), /^#define SPIN\(n\) for \(uint q = 0; q < n; \+\+q\) \{\}$/);
      assert.match(at(22), /^\s*if \(\+\+g < 3u\) goto again;$/);
      assert.equal(user.match(/MOE_LOOP_POLL\(/g)?.length, 4);
    });
  }
  test('CUDA: the entry hands the launch\'s abort flag to the loops, stored only when it changed; a file without loops has no such line', () => {
    const code = emitCuda(parsed).code;
    assert.match(code, /__moe_entry_0\(const MoeCudaArgs __a\) \{\n {2}if \(::moe_rt::g_abort_flag != __a\.abort_flag\) ::moe_rt::g_abort_flag = __a\.abort_flag;\n/);
    const plain = emitCuda(parseMsl('kernel void k(device float* o [[buffer(0)]], uint i [[thread_position_in_grid]]) { o[i] = 1.0f; }\n', 'p.metal')).code;
    assert.doesNotMatch(plain, /g_abort_flag/);
  });
  test('C++: threadgroup arrays are declared with their name and element type', () => {
    const code = emitCpp(parseMsl(readFileSync(shader('hostile', 'gelu_mul_tg_tile.metal'), 'utf8'), 'tile.metal')).code;
    assert.match(code, /auto& tile = ::moe_rt::tg_array<float\[32\], float>\(0u, "tile"\);/);
  });
  test('C++: the kernel table names the [[threadgroup(n)]] parameters', () => {
    const f = join(ROOT, 'shaders', 'moe_softmax_topk.metal');
    const code = emitCpp(parseMsl(readFileSync(f, 'utf8'), f)).code;
    assert.match(code, /static const MoeTgParamInfo __moe_tg_params_0\[\] = \{\{0u, uint32_t\(sizeof\(float\)\), "shmem"\}\};/);
    assert.match(code, /\{"moe_softmax_topk_f32", &__moe_entry_0, 1u, 1u, __moe_tg_params_0\}/);
  });
  const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' }).status === 0;
  test('CUDA: the instrumented loops compile with nvcc (sm_90)', { skip: nvcc ? false : 'nvcc is not installed on this machine' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-loops-'));
    for (const [name, source] of [
      ['loops.metal', LOOPS],
      ['accumulate_endless.metal', readFileSync(shader('hostile', 'accumulate_endless.metal'), 'utf8')],
    ] as const) {
      const cu = join(dir, `${name}.cu`);
      writeFileSync(cu, emitCuda(parseMsl(source, name)).code);
      const r = spawnSync('nvcc', ['-arch=sm_90', '-std=c++17', '-c', `-I${join(ROOT, 'native', 'include')}`, '-o', `${cu}.o`, cu], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    }
  });
  test('loopPolls: false leaves the loops alone', () => {
    assert.doesNotMatch(emitCpp(parsed, { loopPolls: false }).code, /MOE_LOOP_POLL\(/);
    assert.doesNotMatch(emitCuda(parsed, { loopPolls: false }).code, /MOE_LOOP_POLL\(/);
  });
});

describe('cpu: threadgroup memory bounds', () => {
  const TILE = shader('hostile', 'gelu_mul_tg_tile.metal');
  const expected =
    /fused_gelu_mul: out-of-bounds write to threadgroup array 'tile' at byte offset 128, index 32 \(0 bytes past its end; the array has 128 bytes: 32 elements of 4 bytes\) in threadgroup \(\d+,0,0\), thread \(32,0,0\)/;
  for (const extra of [[], ['--schedules', '4']]) {
    test(`a threadgroup float tile[32] indexed by 256 threads fails naming tile, the index and the thread${extra.length ? ' (--schedules 4)' : ''}`, () => {
      const r = moe(['verify', '--kernel', 'gelu-mul', '--backend', 'cpu', '--shader', TILE, '--elements', '1000', '--inputs', 'normal', ...extra]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, expected);
    });
  }
});

test('cpu: a write past a [[threadgroup(n)]] buffer names the parameter, the index and the thread', () => {
  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', shader('hostile', 'tg_dyn_write_end.metal'), '--tokens', '2', '--experts', '8', '--top-k', '2', '--inputs', 'normal']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(
    r.stdout,
    /moe_softmax_topk_f32: out-of-bounds write to threadgroup\(0\) buffer 'shmem' at byte offset 96, index 24 \(0 bytes past its end; the buffer has 96 bytes: 24 elements of 4 bytes\) in threadgroup \([01],0,0\), thread \(0,0,0\)/,
  );
});

describe('cpu: cooperative stop, fail fast and the end of the process', () => {
  const ENDLESS = shader('hostile', 'accumulate_endless.metal');

  test('an endless loop is stopped at its loop: the timeout names the kernel and the .metal line; the next kernel runs', async () => {
    const be = getBackend('cpu');
    const c: KernelCase = { params: { n_elements: 1000, routing_weight: 0.5 }, inputSet: 'normal', origin: 'test' };
    const bad = await verifySpec(accumulate, be, [c, { ...c, params: { n_elements: 2000, routing_weight: 0.5 } }], { seed: 1, shaderFile: ENDLESS, runOptions: { timeoutMs: 300 } });
    const [first, second] = bad.results;
    assert.equal(first?.status, 'ERROR');
    const line = lineOf(ENDLESS, 'for (uint k = i;');
    assert.match(
      first?.error ?? '',
      new RegExp(`timed out: still running after 300 ms in threadgroup \\(\\d+,0,0\\), thread \\(\\d+,0,0\\), abandoned by the watchdog in kernel 'moe_accumulate' at the loop of accumulate_endless\\.metal:${line}`),
    );
    // fail fast: the other case is not run
    assert.equal(second?.status, 'SKIP');
    assert.match(second?.skipReason ?? '', /^not run: timed out on case .*1000.* \(inputs normal\)$/);
    // the process and the CPU threads are fine: the correct kernel passes here
    const good = await verifySpec(accumulate, be, [c], { seed: 1 });
    assert.equal(good.results[0]?.status, 'PASS', good.results[0]?.error ?? '');
  });

  test('a hanging moe_accumulate with the default timeout: one timeout, the other cases SKIP, exit 1 in under 60 s', () => {
    const t0 = Date.now();
    const r = moe(['verify', '--kernel', 'accumulate', '--backend', 'cpu', '--shader', ENDLESS, '--json'], {}, 120_000);
    const s = (Date.now() - t0) / 1000;
    assert.equal(r.code, 1, r.stderr);
    assert.ok(s < 60, `took ${s.toFixed(1)} s`);
    const report = JSON.parse(r.stdout) as { cases: { status: string; error: string | null; skipReason?: string }[] };
    const timeouts = report.cases.filter((x) => x.status === 'ERROR');
    assert.equal(timeouts.length, 1);
    assert.match(timeouts[0]?.error ?? '', /timed out: .* in kernel 'moe_accumulate' at the loop of accumulate_endless\.metal:\d+/);
    const skipped = report.cases.filter((x) => x.status === 'SKIP');
    assert.equal(skipped.length, report.cases.length - 1);
    assert.ok(skipped.length > 1);
    for (const x of skipped) assert.match(x.skipReason ?? '', /^not run: timed out on case /);
  });

  test('a loop the emitter cannot instrument (goto): the watchdog\'s signal ends it, and the process exits right after its report', () => {
    const f = shader('hostile', 'endless_goto.metal');
    const t0 = Date.now();
    const r = moe(['verify', '--kernel', 'accumulate', '--backend', 'cpu', '--shader', f, '--elements', '1000', '--inputs', 'normal', '--timeout', '300ms'], {}, 60_000);
    const s = (Date.now() - t0) / 1000;
    assert.equal(r.signal, null);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /timed out: still running after 300 ms in threadgroup \(\d+,0,0\), thread \(\d+,0,0\), abandoned by the watchdog \(an endless loop\?/);
    assert.ok(s < 20, `took ${s.toFixed(1)} s`);
  });

  test('exitNow ends the process with its code while the event loop has work left', () => {
    const script = `
      const { loadAddon } = await import(${JSON.stringify(join(ROOT, 'src', 'backend', 'addon.ts'))});
      const a = loadAddon();
      setInterval(() => {}, 1000);
      process.stdout.write('reported\\n', () => a.exitNow(3));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, null);
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, 'reported\n');
  });
});

describe('cuda: cooperative stop and the end of the process (where a GPU is found)', () => {
  const gpu = moe(['backends', '--json']);
  const cuda = gpu.code === 0 && /"name":\s*"cuda",\s*"available":\s*true/.test(gpu.stdout);
  const skip = cuda ? false : 'no CUDA GPU here';
  const ENDLESS = shader('hostile', 'accumulate_endless.metal');

  test('an endless kernel is stopped at its loop through the host-mapped flag; the next case runs on the GPU', { skip }, async () => {
    const be = getBackend('cuda');
    const c: KernelCase = { params: { n_elements: 1000, routing_weight: 0.5 }, inputSet: 'normal', origin: 'test' };
    const bad = await verifySpec(accumulate, be, [c], { seed: 1, shaderFile: ENDLESS, runOptions: { timeoutMs: 1000 } });
    assert.equal(bad.results[0]?.status, 'ERROR');
    const line = lineOf(ENDLESS, 'for (uint k = i;');
    assert.match(bad.results[0]?.error ?? '', new RegExp(`timed out: .*kernel 'moe_accumulate' stopped by the watchdog at the loop of line ${line}`));
    const good = await verifySpec(accumulate, be, [c], { seed: 1 });
    assert.equal(good.results[0]?.status, 'PASS', good.results[0]?.error ?? '');
  });

  test('the CLI: one timeout, the other cases SKIP, exit 1', { skip }, () => {
    const t0 = Date.now();
    const r = moe(['verify', '--kernel', 'accumulate', '--backend', 'cuda', '--shader', ENDLESS, '--timeout', '2s', '--json'], {}, 120_000);
    const s = (Date.now() - t0) / 1000;
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout) as { cases: { status: string; error: string | null }[] };
    assert.equal(report.cases.filter((x) => x.status === 'ERROR').length, 1);
    assert.equal(report.cases.filter((x) => x.status === 'SKIP').length, report.cases.length - 1);
    assert.ok(s < 60, `took ${s.toFixed(1)} s`);
  });

  test('a kernel the flag cannot stop (goto) still holds the GPU, and the process exits right after its report', { skip }, () => {
    const t0 = Date.now();
    const r = moe(['verify', '--kernel', 'accumulate', '--backend', 'cuda', '--shader', shader('hostile', 'endless_goto.metal'), '--elements', '1000', '--inputs', 'normal', '--timeout', '1s'], {}, 60_000);
    const s = (Date.now() - t0) / 1000;
    assert.equal(r.signal, null, 'killed: the process did not exit on its own');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /timed out: the dispatch ran longer than 1000 ms/);
    assert.ok(s < 30, `took ${s.toFixed(1)} s`);
  });
});
