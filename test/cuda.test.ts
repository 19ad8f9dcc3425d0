/**
 * The CUDA backend without a GPU: the CUDA emitter (one parser, two
 * emitters), `moe translate`, NVRTC log mapping, `moe backends` saying why
 * CUDA is unavailable, and every shader of shaders/ (and the semantics test
 * shaders) translated to CUDA and compiled by this machine's nvcc for sm_90.
 * Where a GPU is found ("on the GPU"): the safety nets of the GPU backends,
 * redzones alone and under compute-sanitizer (--sanitize).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cudaType, emitCpp, emitCuda, parseMsl } from '../src/msl/index.js';
import { cudaStatus, mapNvrtcOutput } from '../src/backend/cuda.js';
import { findComputeSanitizer } from '../src/harness/sanitize.js';
import { moe, ROOT, shader, tmp } from './helpers.js';

const run = promisify(execFile);
const cuda = (src: string, file = 'k.metal'): string => emitCuda(parseMsl(src, file)).code;
/** The user's part of the emitted source (between the two #line directives). */
const userPart = (code: string): string => code.split('#line 1 ')[1] ?? '';

describe('CUDA emitter', () => {
  test('functions become __device__: helpers, templates, struct methods, prototypes, kernels', () => {
    const src = `#include <metal_stdlib>
using namespace metal;
float twice(float x);
template <typename T> static inline T sq(T x) { return x * x; }
struct Acc { float v; float get() const { return v; } };
float twice(float x) { return 2.0f * x; }
kernel void k(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  Acc a = {sq(out[i])};
  out[i] = twice(a.get());
}
`;
    const code = userPart(cuda(src));
    assert.match(code, /__device__ float twice\(float x\);/);
    assert.match(code, /template <typename T> __device__ static inline T sq/);
    assert.match(code, /struct Acc \{ float v; __device__ float get\(\) const/);
    assert.match(code, /__device__ float twice\(float x\) \{/);
    assert.match(code, /__device__ {2}void k\(/);
    assert.doesNotMatch(code, /\[\[|\bkernel\b|\bdevice float/);
  });

  test('threadgroup arrays become __shared__, program-scope constants __constant__, vector types moe_*', () => {
    const src = `#include <metal_stdlib>
using namespace metal;
constant float table[4] = {1.0, 2.0, 3.0, 4.0};
kernel void k(device float4* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]], uint2 g [[threadgroup_position_in_grid]]) {
  threadgroup float buf[64], *p = buf;
  buf[tid] = table[tid % 4];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[g.x] = float4(p[0]);
}
`;
    const out = emitCuda(parseMsl(src, 'k.metal'));
    const code = userPart(out.code);
    assert.match(code, /__constant__ float table\[4\] = \{1\.0f, 2\.0f, 3\.0f, 4\.0f\};/);
    assert.match(code, /__shared__ float buf\[64\]; float \*p = buf;/);
    assert.match(code, /moe_float4\* out/);
    assert.match(code, /= moe_float4\(p\[0\]\)/);
    assert.deepEqual(out.kernels, [{ name: 'k', entrySymbol: '__moe_entry_0', usesSync: true, sourceLines: [4, 9], entryLines: [1, 6] }]); // (no loops: no abort-flag line in the entry)
    // the entry: one MoeCudaArgs by value; builtins through moe_rt
    assert.match(out.code, /extern "C" __global__ void __moe_entry_0\(const MoeCudaArgs __a\)/);
    assert.match(out.code, /reinterpret_cast<moe_float4\*>\(__a\.buffers\[0\]\)/);
    assert.match(out.code, /builtin_as<moe_uint2>\(::moe_rt::bi_threadgroup_position_in_grid\(__a\)\)/);
  });

  test('param structs, scalars by reference and dynamic threadgroup memory', () => {
    const src = `struct P { uint n; float s; };
kernel void k(constant P& p [[buffer(0)]], constant uint& n [[buffer(3)]], device float* y [[buffer(1)]],
              threadgroup float* tg [[threadgroup(2)]], uint i [[thread_position_in_grid]]) { y[i] = p.s * float(n) + tg[0]; }
`;
    const code = cuda(src);
    assert.match(code, /\*reinterpret_cast<P \*>\(__a\.buffers\[0\]\)/);
    assert.match(code, /\*reinterpret_cast<uint \*>\(__a\.buffers\[3\]\)/);
    assert.match(code, /reinterpret_cast<float\*>\(\(__moe_dyn_smem \+ __a\.tg_dyn_offset\[2\]\)\)/);
  });

  test('the C++ emitter is unchanged by the CUDA-only sites', () => {
    const src = readFileSync(join(ROOT, 'shaders', 'moe_softmax_topk.metal'), 'utf8');
    const cpp = emitCpp(parseMsl(src, 'moe_softmax_topk.metal')).code;
    assert.doesNotMatch(cpp, /__device__|__shared__|moe_uint3/);
    assert.match(cpp, /uint3 tgpig/);
  });

  test('cudaType renames vector types only', () => {
    assert.equal(cudaType('const packed_half3 *'), 'const moe_packed_half3 *');
    assert.equal(cudaType('float4x4'), 'float4x4');
    assert.equal(cudaType('MyFloat4'), 'MyFloat4');
  });
});

test('NVRTC messages are located in the .metal file, the header and the entries named as such', () => {
  const file = '/x/shaders/k.metal';
  const log = [
    '/x/shaders/k.metal(23): error: expected a ";"',
    '/x/shaders/k.metal(27): warning #12-D: parsing restarts here after previous syntax error',
    '/x/native/include/msl_common/math.h(40): error: no instance of overloaded function "metal::max" matches',
    '/x/shaders/k.metal.entries.cu(3): error: a value of type "float *" cannot be used',
    '3 errors detected in the compilation of "k.metal.cu".',
  ].join('\n');
  const mapped = mapNvrtcOutput(log, file);
  assert.equal(
    mapped,
    [
      '/x/shaders/k.metal:23: error: expected a ";"',
      '/x/shaders/k.metal: error: no instance of overloaded function "metal::max" matches (in math.h:40 of the CUDA compat header)',
      "/x/shaders/k.metal: error: a value of type \"float *\" cannot be used (in the entry point generated for a kernel of this file: check the kernel's parameter types)",
    ].join('\n'),
  );
});

describe('moe translate', () => {
  test('prints CUDA (default) and C++, and --json gives the kernels', () => {
    const f = join(ROOT, 'shaders', 'moe_weighted_reduce.metal');
    const c = moe(['translate', f]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^#include "msl_cuda.h"/);
    assert.match(c.stdout, /extern "C" __global__ void __moe_entry_0/);
    const p = moe(['translate', f, '--target', 'cpp']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /^#include "msl_cpu.h"/);
    assert.match(p.stdout, /__moe_kernels/);
    const j = moe(['translate', f, '--json']);
    const doc = JSON.parse(j.stdout) as { target: string; kernels: { name: string }[] };
    assert.equal(doc.target, 'cuda');
    assert.deepEqual(doc.kernels.map((k) => k.name), ['moe_weighted_reduce_f32']);
  });

  test('--output writes the file; bad input exits 2 with the reason', () => {
    const dir = tmp('translate');
    const out = join(dir, 'k.cu');
    assert.equal(moe(['translate', join(ROOT, 'shaders', 'bench.metal'), '-o', out]).code, 0);
    assert.match(readFileSync(out, 'utf8'), /__moe_entry_1/);
    const missing = moe(['translate', join(dir, 'nope.metal')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /shader file not found/);
    const bad = moe(['translate', shader('hostile', 'unsupported_feature.metal')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /simdgroup_matrix is not supported/);
    const target = moe(['translate', join(ROOT, 'shaders', 'bench.metal'), '--target', 'opencl']);
    assert.equal(target.code, 2);
  });
});

test('moe backends says why CUDA is unavailable here, and --backend cuda is refused with it (exit 2)', () => {
  const probe = spawnSync('sh', ['-c', 'ldconfig -p 2>/dev/null | grep -q libcuda.so'], { encoding: 'utf8' });
  if (probe.status === 0) return; // a machine with the CUDA driver: nothing to check here
  const r = moe(['backends', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { name: string; available: boolean; reason: string }[];
  const c = list.find((b) => b.name === 'cuda');
  assert.ok(c && !c.available);
  assert.match(c.reason, /libcuda|CUDA driver/);
  const v = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cuda']);
  assert.equal(v.code, 2);
  assert.match(v.stderr, /backend 'cuda' is not available: .*libcuda/);
});

describe('every shader translates to CUDA that nvcc compiles for sm_90', () => {
  const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
  const have = nvcc.status === 0;
  const version = have ? (/release [\d.]+/.exec(nvcc.stdout)?.[0] ?? 'unknown release') : '';
  const files = [
    ...readdirSync(join(ROOT, 'shaders')).filter((f) => f.endsWith('.metal')).map((f) => join(ROOT, 'shaders', f)),
    ...readdirSync(join(ROOT, 'test', 'shaders', 'semantics')).map((f) => join(ROOT, 'test', 'shaders', 'semantics', f)),
    join(ROOT, 'test', 'fixtures', 'msl', 'features.metal'),
  ];
  const dir = tmp('nvcc');
  mkdirSync(dir, { recursive: true });
  for (const f of files) {
    const name = f.slice(ROOT.length + 1);
    test(`${name} (nvcc ${version || 'not found: skipped'})`, { skip: have ? false : 'nvcc is not installed on this machine' }, async () => {
      const cu = join(dir, `${name.replace(/[/\\]/g, '_')}.cu`);
      writeFileSync(cu, emitCuda(parseMsl(readFileSync(f, 'utf8'), f)).code);
      try {
        await run('nvcc', ['-arch=sm_90', '-std=c++17', '-c', `-I${join(ROOT, 'native', 'include')}`, '-o', `${cu}.o`, cu], { maxBuffer: 8 << 20 });
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        assert.fail(`nvcc could not compile the CUDA translation of ${name}:\n${(err.stderr ?? err.message).split('\n').slice(0, 30).join('\n')}`);
      }
    });
  }
});

describe('on the GPU: out-of-bounds writes by redzone, --sanitize through compute-sanitizer', () => {
  const gpu = cudaStatus();
  const noGpu = gpu.available ? false : `no CUDA GPU here (${gpu.reason})`;
  const sanitizer = findComputeSanitizer();
  const noSanitizer = noGpu || (sanitizer ? false : 'compute-sanitizer is not installed (PATH, $CUDA_HOME/bin)');
  const zero = (file: string, entry: string, more: string[] = []): string[] => [
    'verify', '--backend', 'cuda', '--kernel', 'zero-buffer', '--shader', shader('zero-buffer', file), '--entry', entry, '--elements', '1001', '--json', ...more,
  ];
  const errorOf = (stdout: string): string => (JSON.parse(stdout) as { cases: { error: string | null }[] }).cases[0]?.error ?? '';

  test('a store past the end fails by its redzone alone: buffer, side, offsets, bytes', { skip: noGpu }, () => {
    const r = moe(zero('oob_write.metal', 'zero_buffer_oob_write'));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      errorOf(r.stdout),
      "zero_buffer_oob_write: out-of-bounds write past the end of buffer(0) 'buffer': bytes at offsets 4004..4007 were overwritten (4 bytes changed; the buffer has 4004 bytes; found by its redzones of 4096 bytes after the dispatch, so the thread is not known)",
    );
  });

  test('a store before the start: the guard before the buffer', { skip: noGpu }, () => {
    const r = moe(zero('oob_before.metal', 'zero_buffer_oob_before'));
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorOf(r.stdout), /out-of-bounds write before the start of buffer\(0\) 'buffer': bytes at offsets -4\.\.-1 were overwritten/);
  });

  test('the attention kernel without its edge guard fails by redzone (it writes past out)', { skip: noGpu }, () => {
    const r = moe(['verify', '--backend', 'cuda', '--kernel', 'attn-values', '--shader', shader('attn-values', 'no_guard.metal'),
      '--heads', '6', '--kv-heads', '2', '--head-dim', '80', '--seq-len', '9', '--seq-stride', '11', '--inputs', 'softmax', '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorOf(r.stdout), /out-of-bounds write past the end of buffer\(2\) 'out'/);
  });

  test('bench: the redzones are checked after the timed series (rotated copies and graph replays)', { skip: noGpu }, () => {
    for (const mode of [[], ['--graph']]) {
      const r = moe(['bench', '--backend', 'cuda', '--kernel', 'zero-buffer', '--shader', shader('zero-buffer', 'oob_write.metal'),
        '--entry', 'zero_buffer_oob_write', '--elements', '1001', '--max-time', '0.3', ...mode]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /out-of-bounds write past the end of buffer\(0\) 'buffer'/);
    }
  });

  test('MOE_GPU_REDZONES=0 turns them off (the same store then goes unseen): they are what catches it', { skip: noGpu }, () => {
    const r = moe(zero('oob_write.metal', 'zero_buffer_oob_write'), { MOE_GPU_REDZONES: '0' });
    assert.equal(r.code, 0, r.stdout);
  });

  test('--sanitize memcheck: an out-of-bounds read fails naming the buffer and the .metal line', { skip: noSanitizer }, () => {
    const r = moe(['verify', '--backend', 'cuda', '--kernel', 'attn-values', '--shader', shader('attn-values', 'no_guard.metal'),
      '--heads', '6', '--kv-heads', '2', '--head-dim', '80', '--seq-len', '9', '--seq-stride', '11', '--inputs', 'softmax', '--sanitize', 'memcheck', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const err = errorOf(r.stdout);
    // (its reads past scores and v_cache, its writes past out: the tool may list them in any order)
    assert.match(err, /^compute-sanitizer memcheck: .*Invalid __global__ read of size 4 bytes at no_guard\.metal:\d+/);
    assert.match(err, /thread \(\d+,0,0\) of threadgroup \(\d+,0,0\)/);
    assert.match(err, /bytes past the end of buffer\(\d\) '(scores|out|v_cache)'/);
    assert.doesNotMatch(err, /Host Frame/);
  });

  test('--sanitize memcheck: the out-of-bounds write of zero_buffer, at its .metal line', { skip: noSanitizer }, () => {
    const r = moe(zero('oob_write.metal', 'zero_buffer_oob_write', ['--sanitize', 'memcheck']));
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorOf(r.stdout), /^compute-sanitizer memcheck: Invalid __global__ write of size 4 bytes at oob_write\.metal:15 .*past the end of buffer\(0\) 'buffer' \(4004 bytes\)/);
  });

  test('--sanitize racecheck: the softmax-topk kernel without its barrier fails', { skip: noSanitizer }, () => {
    const r = moe(['verify', '--backend', 'cuda', '--kernel', 'softmax-topk', '--shader', shader('softmax-topk', 'missing_barrier.metal'),
      '--tokens', '2', '--experts', '128', '--top-k', '8', '--sanitize', 'racecheck']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /compute-sanitizer racecheck: .*missing_barrier\.metal:\d+/);
  });

  test('--sanitize memcheck: a correct kernel passes', { skip: noSanitizer }, () => {
    const r = moe(['verify', '--backend', 'cuda', '--kernel', 'zero-buffer,softmax-topk', '--sanitize', 'memcheck']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
});
