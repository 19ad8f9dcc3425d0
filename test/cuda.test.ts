/**
 * The CUDA backend without a GPU: the CUDA emitter (one parser, two
 * emitters), `moe translate`, NVRTC log mapping, `moe backends` saying why
 * CUDA is unavailable, and every shader of shaders/ (and the semantics test
 * shaders) translated to CUDA and compiled by this machine's nvcc for sm_90.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cudaType, emitCpp, emitCuda, parseMsl } from '../src/msl/index.js';
import { mapNvrtcOutput } from '../src/backend/cuda.js';
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
    assert.deepEqual(out.kernels, [{ name: 'k', entrySymbol: '__moe_entry_0', usesSync: true, sourceLines: [4, 9], entryLines: [1, 7] }]); // (the entry's 7th line: the abort flag handed to the loops)
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
