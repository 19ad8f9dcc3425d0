/** The MSL front end: parsing of kernel signatures and structs, errors, and the C++ emitter. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emitCpp, MslError, parseMsl, type MslKernel, type MslParam, type ParsedMsl } from '../src/msl/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'msl');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const parseFixture = (name: string): ParsedMsl => parseMsl(fixture(name), name);

function kernel(p: ParsedMsl, name: string): MslKernel {
  const k = p.kernels.find((x) => x.name === name);
  assert.ok(k, `kernel ${name} (have: ${p.kernels.map((x) => x.name).join(', ')})`);
  return k;
}

/** Compact signature: "name:addressSpace cppType kind attr". */
function sig(q: MslParam): string {
  const a = q.attr;
  const attr = a.kind === 'buffer' || a.kind === 'threadgroup' ? `${a.kind}(${a.index})` : a.kind === 'builtin' ? a.name : 'none';
  return `${q.name}:${q.addressSpace ?? '-'} ${q.cppType.replace(/\s+/g, ' ')} ${q.kind} ${attr}`;
}

/** Wraps a kernel body with a minimal kernel around it. */
const K = (params: string, body = ''): string => `#include <metal_stdlib>\nusing namespace metal;\nkernel void k(${params}) {${body}}\n`;

function throwsAt(src: string, line: number, col: number, re: RegExp, file = 'bad.metal'): MslError {
  let err: unknown;
  try {
    parseMsl(src, file);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof MslError, `expected an MslError, got ${String(err)}`);
  assert.match(err.message, re);
  assert.equal(err.message.startsWith(`${file}:${line}:${col}: error: `), true, `location of: ${err.message} (want ${line}:${col})`);
  assert.equal(err.file, file);
  assert.equal(err.line, line);
  assert.equal(err.column, col);
  return err;
}

/** Lines of a source (no empty line after a final newline). */
const sourceLines = (src: string): string[] => (src.endsWith('\n') ? src.slice(0, -1) : src).split('\n');

/** The user part of emitted code (between `#line 1 "<file>"` and the entries). */
function userSection(code: string, file: string): string[] {
  const lines = code.split('\n');
  // (a source ending with a newline has no line after it)
  const a = lines.indexOf(`#line 1 "${file}"`);
  const b = lines.indexOf(`#line 1 "${file}.entries.cpp"`);
  assert.ok(a >= 0 && b > a, 'emitted code has the #line markers');
  return lines.slice(a + 1, b);
}

describe('seed kernels: moe_softmax_topk.metal', () => {
  const p = parseFixture('moe_softmax_topk.metal');
  test('signature, builtins and usesSync', () => {
    assert.deepEqual(p.kernels.map((k) => k.name), ['moe_softmax_topk_f32']);
    const k = kernel(p, 'moe_softmax_topk_f32');
    assert.equal(k.functionName, 'moe_softmax_topk_f32');
    assert.equal(k.templateArgs, null);
    assert.equal(k.usesSync, true);
    assert.equal(k.line, 27);
    assert.deepEqual(k.params.map(sig), [
      'p:constant MoeSoftmaxTopkParams & reference buffer(0)',
      'logits:device const float * pointer buffer(1)',
      'out_ids:device uint * pointer buffer(2)',
      'out_weights:device float * pointer buffer(3)',
      'shmem:threadgroup float * pointer threadgroup(0)',
      'tgpig:- uint3 value threadgroup_position_in_grid',
      'tiisg:- uint value thread_index_in_simdgroup',
      'tiitg:- uint value thread_index_in_threadgroup',
    ]);
    const [params, logits, outIds] = k.params;
    assert.equal(params.baseType, 'MoeSoftmaxTopkParams');
    assert.equal(logits.baseType, 'float');
    assert.equal(logits.isConst, true);
    assert.equal(outIds.baseType, 'uint');
    assert.equal(outIds.isConst, false);
    assert.equal(logits.line, 29);
  });
  test('struct fields', () => {
    assert.deepEqual(p.structs, [
      {
        name: 'MoeSoftmaxTopkParams',
        line: 20,
        fields: [
          { name: 'n_tokens', type: 'uint', arrayLength: null },
          { name: 'n_experts', type: 'uint', arrayLength: null },
          { name: 'top_k', type: 'uint', arrayLength: null },
          { name: '_pad', type: 'float', arrayLength: null },
        ],
      },
    ]);
  });
});

describe('seed kernels: moe_dispatch.metal (moe_expert_ffn)', () => {
  const p = parseFixture('moe_dispatch.metal');
  test('all kernels, none synchronising', () => {
    assert.deepEqual(p.kernels.map((k) => k.name), [
      'fused_gelu_mul',
      'moe_accumulate',
      'zero_buffer',
      'moe_swiglu_fused',
      'moe_swiglu_batch',
      'moe_weighted_sum',
      'fused_gelu_mul_bf16',
      'moe_swiglu_seq',
      'moe_weighted_sum_seq',
      'moe_swiglu_seq_bf16',
      'moe_weighted_sum_seq_bf16_input',
      'naive_matvec_f32',
      'moe_gather_topk_weights',
    ]);
    for (const k of p.kernels) assert.equal(k.usesSync, false, k.name);
  });
  test('signatures', () => {
    assert.deepEqual(kernel(p, 'moe_swiglu_batch').params.map(sig), [
      'gate_up_buf:device const float* pointer buffer(0)',
      'output_buf:device float* pointer buffer(1)',
      'intermediate:constant uint& reference buffer(2)',
      'top_k:constant uint& reference buffer(3)',
      'tid:- uint2 value thread_position_in_grid',
    ]);
    assert.deepEqual(kernel(p, 'fused_gelu_mul_bf16').params.map(sig), [
      'gate_out:device const bfloat* pointer buffer(0)',
      'up_out:device const bfloat* pointer buffer(1)',
      'output:device bfloat* pointer buffer(2)',
      'params:constant FusedGeluMulParams& reference buffer(3)',
      'gid:- uint value thread_position_in_grid',
    ]);
    assert.deepEqual(kernel(p, 'moe_swiglu_seq').params.at(-1) && sig(kernel(p, 'moe_swiglu_seq').params.at(-1)!), 'tid:- uint3 value thread_position_in_grid');
    assert.equal(kernel(p, 'moe_gather_topk_weights').params.length, 7);
    assert.equal(kernel(p, 'moe_gather_topk_weights').params[5].baseType, 'MoeGatherTopkParams');
  });
  test('structs', () => {
    assert.deepEqual(
      p.structs.map((s) => `${s.name}{${s.fields.map((f) => `${f.type} ${f.name}`).join(', ')}}`),
      [
        'FusedGeluMulParams{uint n_elements}',
        'MoeAccumParams{uint n_elements, float routing_weight}',
        'ZeroParams{uint n_elements}',
        'MoeWeightedSumParams{uint hidden_size, uint top_k}',
        'MoeSwigluSeqParams{uint intermediate, uint top_k, uint n_tokens}',
        'MoeWeightedSumSeqParams{uint hidden_size, uint top_k, uint n_tokens}',
        'MatvecParams{uint m, uint k, uint n}',
        'MoeGatherTopkParams{uint n_experts, uint top_k}',
      ],
    );
  });
});

describe('attention kernels', () => {
  const p = parseFixture('attention.metal');
  test('usesSync through helper functions', () => {
    assert.deepEqual(
      p.kernels.map((k) => `${k.name}:${k.usesSync}`),
      ['attn_scores_batched:true', 'attn_softmax_batched:true', 'attn_values_batched:false', 'sigmoid_gate:false'],
    );
  });
  test('scalars bound one per index and scalar builtins', () => {
    const k = kernel(p, 'attn_scores_batched');
    assert.deepEqual(
      k.params.filter((q) => q.attr.kind === 'buffer').map((q) => (q.attr.kind === 'buffer' ? q.attr.index : -1)),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(sig(k.params[7]), 'scale:constant float& reference buffer(7)');
    assert.deepEqual(
      k.params.filter((q) => q.attr.kind === 'builtin').map((q) => sig(q)),
      [
        'tg_id:- uint value threadgroup_position_in_grid',
        'tid:- uint value thread_index_in_threadgroup',
        'ntg:- uint value threads_per_threadgroup',
        'lane:- uint value thread_index_in_simdgroup',
        'sg:- uint value simdgroup_index_in_threadgroup',
      ],
    );
  });
});

describe('templates, namespaces, structs (features.metal)', () => {
  const p = parseFixture('features.metal');
  test('kernels: host_name instantiations, decltype form, [[kernel]] in a namespace', () => {
    assert.deepEqual(
      p.kernels.map((k) => `${k.name}=${k.functionName}${k.templateArgs !== null ? `<${k.templateArgs}>` : ''}`),
      ['swz=swz', 'scale_f32=scale_t<float>', 'scale_f16=scale_t<half>', 'in_ns=ns::in_ns', 'half_lit=half_lit'],
    );
  });
  test('instantiation params name concrete types', () => {
    assert.deepEqual(kernel(p, 'scale_f32').params.map(sig), [
      'x:device const float* pointer buffer(0)',
      'y:device float* pointer buffer(1)',
      'p:constant Params& reference buffer(2)',
      'gid:- uint2 value thread_position_in_grid',
      'lane:- uint value thread_index_in_simdgroup',
      'sg:- uint value simdgroup_index_in_threadgroup',
    ]);
    // decltype(scale_t<half>): the template's own list with T = half
    assert.deepEqual(kernel(p, 'scale_f16').params.slice(0, 2).map(sig), ['x:device const half* pointer buffer(0)', 'y:device half* pointer buffer(1)']);
    assert.equal(kernel(p, 'scale_f16').params[0].baseType, 'half');
    assert.equal(kernel(p, 'scale_f32').line, 68);
  });
  test('const before the address space; ushort builtins', () => {
    assert.equal(sig(kernel(p, 'half_lit').params[1]), 'f:device const float* pointer buffer(1)');
    assert.equal(kernel(p, 'half_lit').params[1].isConst, true);
    assert.equal(sig(kernel(p, 'in_ns').params[2]), 'i:- ushort value thread_index_in_threadgroup');
  });
  test('usesSync: transitively through functions and macros', () => {
    assert.equal(kernel(p, 'swz').usesSync, false);
    assert.equal(kernel(p, 'scale_f32').usesSync, true); // scale_t → via_helper → reduce_sum → simd_sum
    assert.equal(kernel(p, 'scale_f16').usesSync, true);
    assert.equal(kernel(p, 'in_ns').usesSync, false);
    assert.equal(kernel(p, 'half_lit').usesSync, true); // via_macro → SUM_ALL → simd_sum
  });
  test('struct fields: arrays (constants, macros, 2-D), pointers, typedef struct, attributes', () => {
    const byName = new Map(p.structs.map((s) => [s.name, s]));
    assert.deepEqual(byName.get('Params')?.fields, [
      { name: 'n', type: 'uint', arrayLength: null },
      { name: 'scale', type: 'float', arrayLength: 4 },
      { name: 'dims', type: 'uint2', arrayLength: null },
      { name: 'm', type: 'float', arrayLength: 64 },
      { name: 'ptr', type: 'float*', arrayLength: null },
    ]);
    assert.deepEqual(byName.get('Packed')?.fields, [
      { name: 'count', type: 'uint', arrayLength: null },
      { name: 'w', type: 'float', arrayLength: null },
      { name: 'g', type: 'float', arrayLength: 3 },
    ]);
    assert.deepEqual(byName.get('Pair')?.fields.map((f) => f.name), ['a', 'b', 'r']);
    assert.equal(byName.get('Q')?.line, 75);
  });
});

describe('buffer indices left unspecified (as ggml writes kernels)', () => {
  test('the first free index, in order; explicit ones are kept', () => {
    const src = [
      'kernel void kernel_add(',
      '        constant ggml_metal_kargs_bin & args,',
      '        device const char * src0,',
      '        device const char * src1 [[buffer(1)]],',
      '        device       char * dst,',
      '        threadgroup float * shmem,',
      '        uint3   tgpig[[threadgroup_position_in_grid]],',
      '        ushort3 tpitg[[thread_position_in_threadgroup]],',
      '        ushort3   ntg[[threads_per_threadgroup]]) {',
      '    const int i0 = tgpig.z; \\',
      '    (void)i0;',
      '}',
    ].join('\n');
    const k = parseMsl(src, 'g.metal').kernels[0];
    assert.deepEqual(k.params.map(sig), [
      'args:constant ggml_metal_kargs_bin & reference buffer(0)',
      'src0:device const char * pointer buffer(2)',
      'src1:device const char * pointer buffer(1)',
      'dst:device char * pointer buffer(3)',
      'shmem:threadgroup float * pointer threadgroup(0)',
      'tgpig:- uint3 value threadgroup_position_in_grid',
      'tpitg:- ushort3 value thread_position_in_threadgroup',
      'ntg:- ushort3 value threads_per_threadgroup',
    ]);
    const code = emitCpp(parseMsl(src, 'g.metal')).code;
    assert.match(code, /reinterpret_cast<const char \*>\(\(2u < __t->d->n_buffers \? __t->d->buffers\[2\] : nullptr\)\)/);
  });
});

describe('robustness', () => {
  test('#if 0 and the #else of #if 1 are not parsed; unknown conditions are', () => {
    const src = [
      '#if 0',
      'kernel void old(device float* a [[buffer(0)]]) { broken( simdgroup_float8x8 m; }',
      '#else',
      'kernel void cur(device float* a [[buffer(0)]]) {}',
      '#endif',
      '#if 1',
      'kernel void one(device float* a [[buffer(0)]]) {}',
      '#elif 0',
      'kernel void one(device float* a [[buffer(0)]]) {}',
      '#else',
      'kernel void one(device float* a [[buffer(0)]]) {}',
      '#endif',
      '#ifdef FOO',
      'kernel void foo(device float* a [[buffer(0)]]) {}',
      '#endif',
    ].join('\n');
    assert.deepEqual(parseMsl(src, 'if.metal').kernels.map((k) => k.name), ['cur', 'one', 'foo']);
  });
  test('templates with several arguments; host_name string concatenation', () => {
    const src = [
      'template <typename T, int BM = 8>',
      '[[kernel]] void gemv(const device T* mat [[buffer(0)]], device T* out [[buffer(1)]], const constant int& n [[buffer(2)]],',
      '  uint3 tid [[threadgroup_position_in_grid]], uint simd_lid [[thread_index_in_simdgroup]]) {',
      '  threadgroup T tgp_memory[BM * 32];',
      '  out[tid.x] = mat[simd_lid] + tgp_memory[0] + n;',
      '}',
      'template [[host_name("gemv_" "f32_8")]] [[kernel]] void gemv<float, 8>(const device float* mat [[buffer(0)]], device float* out [[buffer(1)]],',
      '  const constant int& n [[buffer(2)]], uint3 tid [[threadgroup_position_in_grid]], uint simd_lid [[thread_index_in_simdgroup]]);',
      'template [[host_name("gemv_f16_4")]] [[kernel]] decltype(gemv<half, 4>) gemv<half, 4>;',
      'typedef decltype(gemv<float, 8>) gemv_t;',
      'template [[host_name("gemv_v4")]] kernel gemv_t gemv<vec<float, 4>, 2>;',
    ].join('\n');
    const p = parseMsl(src, 'g.metal');
    assert.deepEqual(p.kernels.map((k) => `${k.name}=${k.functionName}<${k.templateArgs}>:${k.usesSync}`), [
      'gemv_f32_8=gemv<float, 8>:false',
      'gemv_f16_4=gemv<half, 4>:false',
      'gemv_v4=gemv<vec<float, 4>, 2>:false',
    ]);
    assert.equal(sig(p.kernels[2].params[1]), 'out:device vec<float, 4>* pointer buffer(1)');
    assert.deepEqual(p.kernels[1].params.map(sig).slice(0, 3), [
      'mat:device const half* pointer buffer(0)',
      'out:device half* pointer buffer(1)',
      'n:constant const int& reference buffer(2)',
    ]);
    assert.match(emitCpp(p).code, /gemv<half, 4>\(/);
  });
  test('local structs, constructors with initialiser lists, line splices', () => {
    const src = [
      'struct Acc { float a; float b; Acc() : a(0), b{0} {} void add(float x) { a += x; } };',
      'kernel void k(device float4* v [[buffer(0)]], uint i [[thread_position_in_grid]]) {',
      '  struct Local { float g; } l; l.g = v[i].g;',
      '  Acc acc; acc.add(v[i].x); float t = acc.a + \\',
      '     acc.b;',
      '  v[i].x = t + l.g;',
      '}',
    ].join('\n');
    const p = parseMsl(src, 'l.metal');
    assert.deepEqual(p.structs.map((x) => x.name), ['Acc']);
    assert.deepEqual(p.structs[0].fields.map((f) => f.name), ['a', 'b']);
    const lines = userSection(emitCpp(p).code, 'l.metal');
    assert.equal(lines[2], '  struct Local { float g; } l; l.g = v[i].g;');
    assert.equal(lines[3], '  Acc acc; acc.add(v[i].x); float t = acc.a + \\');
  });
  test('comments inside a multi-line threadgroup declaration', () => {
    const src = 'kernel void k(uint i [[thread_index_in_threadgroup]]) {\n  threadgroup float a[4], // first\n     b[2 /* two */];\n  a[i] = b[0];\n}\n';
    const lines = userSection(emitCpp(parseMsl(src, 'c.metal')).code, 'c.metal');
    assert.equal(lines[1], '  auto& a = ::moe_rt::tg_array<float[4], float>(0u, "a"); auto& b = ::moe_rt::tg_array<float[2], float>(1u, "b");');
    assert.equal(lines[2], '');
    assert.equal(lines[3], '  a[i] = b[0];');
  });
});

describe('errors', () => {
  test('[[buffer(n)]] without an address space', () => {
    throwsAt(K('float* x [[buffer(0)]], uint i [[thread_position_in_grid]]'), 3, 26, /\[\[buffer\(0\)\]\] parameter 'x' needs an address space: device or constant/);
  });
  test('[[buffer(n)]] on a value', () => {
    throwsAt(K('device float x [[buffer(0)]]'), 3, 28, /must be a pointer or a reference/);
  });
  test('duplicate buffer index', () => {
    const src = K('device float* a [[buffer(1)]],\n  device float* b [[buffer(1)]]');
    throwsAt(src, 4, 21, /duplicate \[\[buffer\(1\)\]\]: parameters 'a' \(line 3\) and 'b'/);
  });
  test('duplicate threadgroup index', () => {
    throwsAt(K('threadgroup float* a [[threadgroup(0)]], threadgroup uint* b [[threadgroup(0)]]'), 3, 78, /duplicate \[\[threadgroup\(0\)\]\]/);
  });
  test('unknown attribute', () => {
    throwsAt(K('device float* a [[buffer(0)]], uint i [[thread_pos_in_grid]]'), 3, 55, /unknown attribute \[\[thread_pos_in_grid\]\] on kernel parameter 'i'/);
  });
  test('builtin with a non-integer type', () => {
    throwsAt(K('float i [[thread_position_in_grid]]'), 3, 15, /builtin \[\[thread_position_in_grid\]\] needs an integer type .*not 'float'/);
  });
  test('scalar builtin declared as a vector', () => {
    throwsAt(K('uint2 i [[thread_index_in_threadgroup]]'), 3, 15, /\[\[thread_index_in_threadgroup\]\] is a scalar/);
  });
  test('parameter without attribute: a value that is no buffer', () => {
    throwsAt(K('uint n'), 3, 20, /kernel parameter 'n' needs an attribute/);
    throwsAt(K('device float x'), 3, 28, /device parameter 'x' must be a pointer or a reference/);
  });
  test('buffer index out of range, non-literal index', () => {
    throwsAt(K('device float* a [[buffer(31)]]'), 3, 40, /index must be at most 30/);
    throwsAt(K('device float* a [[buffer(N)]]'), 3, 33, /needs an integer literal index/);
  });
  test('kernel must return void; duplicate kernel names', () => {
    throwsAt('kernel float k(device float* a [[buffer(0)]]) { return 0; }', 1, 8, /kernel function 'k' must return void/);
    throwsAt(`${K('device float* a [[buffer(0)]]')}kernel void k(device float* a [[buffer(0)]]) {}\n`, 4, 13, /two kernels are named 'k' \(the other at line 3\)/);
  });
  test('threadgroup variables: initializer, program scope', () => {
    throwsAt(K('uint i [[thread_index_in_threadgroup]]', '\n  threadgroup float x = 0;\n'), 4, 23, /threadgroup variable 'x' cannot have an initializer/);
    throwsAt('threadgroup float g[4];\n', 1, 1, /threadgroup variables must be declared inside a kernel function/);
  });
  test('lexer and brackets', () => {
    throwsAt('kernel void k() {}\n/* open', 2, 1, /unterminated \/\* comment/);
    throwsAt(K('uint i [[thread_position_in_grid]]', ' float x = 1.0.0f; '), 3, 63, /invalid numeric literal '1\.0\.0f'/);
    throwsAt('kernel void k() {\n  if (x) {\n}\n', 1, 17, /'\{' is never closed/);
    throwsAt('kernel void k() { x = "abc; }\n', 1, 23, /unterminated string literal/);
  });
});

describe('unsupported features are named', () => {
  const cases: [string, string, RegExp][] = [
    ['simdgroup_float8x8', K('uint i [[thread_position_in_grid]]', ' simdgroup_float8x8 m; '), /simdgroup_matrix is not supported by the cpu backend yet/],
    ['simdgroup_matrix<>', K('uint i [[thread_position_in_grid]]', ' simdgroup_matrix<float, 8, 8> m; '), /simdgroup_matrix is not supported by the cpu backend yet/],
    ['simdgroup_multiply_accumulate', K('uint i [[thread_position_in_grid]]', ' simdgroup_multiply_accumulate(a, b, c, d); '), /simdgroup_matrix is not supported/],
    ['texture2d', K('texture2d<float, access::read> t [[texture(0)]]'), /textures \(texture2d\) are not supported/],
    ['sampler', K('uint i [[thread_position_in_grid]]', ' sampler s; '), /samplers are not supported/],
    ['[[texture(n)]]', K('device float* t [[texture(0)]]'), /textures \(\[\[texture\(n\)\]\]\) are not supported/],
    ['vertex', 'vertex float4 vs(uint v [[vertex_id]]) { return float4(0); }', /vertex functions are not supported/],
    ['fragment', 'fragment half4 fs() { return half4(0); }', /fragment functions are not supported/],
    ['[[stage_in]]', 'struct V { float x; };\nkernel void k(V v [[stage_in]]) {}', /\[\[stage_in\]\] is not supported/],
    ['function constants', 'constant bool has_bias [[function_constant(0)]];\n', /function constants \(\[\[function_constant\(n\)\]\]\) are not supported/],
    ['imageblock', K('uint i [[thread_position_in_grid]]', ' imageblock<float> b; '), /imageblocks \(imageblock\) are not supported/],
    ['visible', '[[visible]] float f(float x) { return x; }', /visible functions are not supported/],
    ['intersection', '[[intersection(triangle)]] bool hit() { return true; }', /intersection functions are not supported/],
    ['ray tracing', K('uint i [[thread_position_in_grid]]', ' raytracing::ray r; '), /ray tracing \(metal::raytracing\) is not supported/],
    ['acceleration_structure', K('acceleration_structure<> as [[buffer(0)]]'), /ray tracing \(acceleration_structure\) is not supported/],
  ];
  for (const [name, src, re] of cases) {
    test(name, () => {
      assert.throws(() => parseMsl(src, 'f.metal'), (e: unknown) => e instanceof MslError && re.test(e.message) && /^f\.metal:\d+:\d+: error: /.test(e.message));
    });
  }
  test('the location is the feature', () => {
    throwsAt(K('uint i [[thread_position_in_grid]]', '\n    simdgroup_float8x8 m;\n'), 4, 5, /simdgroup_matrix/);
  });
  test('member names and comments do not count', () => {
    const src = K('device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]', ' // texture2d sampler vertex\n a[i] = 0; ');
    assert.doesNotThrow(() => parseMsl(src, 'ok.metal'));
    const s2 = 'struct S { float sampler_id; float vertex; };\nkernel void k(device S* s [[buffer(0)]]) { s->vertex = 1; }\n';
    assert.doesNotThrow(() => parseMsl(s2, 'ok.metal'));
  });
});

describe('emitCpp', () => {
  test('entries and kernel table', () => {
    const p = parseFixture('moe_softmax_topk.metal');
    const e = emitCpp(p);
    assert.ok(e.code.startsWith('#include "msl_cpu.h"\n#line 1 "moe_softmax_topk.metal"\n'));
    assert.deepEqual(e.kernels, [{ name: 'moe_softmax_topk_f32', entrySymbol: '__moe_entry_0', usesSync: true, sourceLines: [27, 149], entryLines: [1, 12] }]);
    assert.match(e.code, /\/\/ #include <metal_stdlib>/);
    assert.match(e.code, /extern "C" void __moe_entry_0\(const MoeThreadCtx\* __t\)/);
    assert.match(e.code, /\*reinterpret_cast<MoeSoftmaxTopkParams \*>\(\(0u < __t->d->n_buffers \? __t->d->buffers\[0\] : nullptr\)\)/);
    assert.match(e.code, /reinterpret_cast<const float \*>\(\(1u < __t->d->n_buffers \? __t->d->buffers\[1\] : nullptr\)\)/);
    assert.match(e.code, /reinterpret_cast<float \*>\(\(0u < __t->g->n_tg_dyn \? __t->g->tg_dyn\[0\] : nullptr\)\)/);
    assert.match(e.code, /::moe_rt::builtin_as<uint3>\(::moe_rt::bi_threadgroup_position_in_grid\(__t\)\)/);
    assert.match(e.code, /::moe_rt::builtin_as<uint>\(::moe_rt::bi_thread_index_in_simdgroup\(__t\)\)/);
    assert.match(e.code, /static const MoeKernelInfo __moe_kernel_table\[\] = \{\n {2}\{"moe_softmax_topk_f32", &__moe_entry_0, 1u, 1u, __moe_tg_params_0\},\n\};/);
    assert.match(e.code, /extern "C" __attribute__\(\(visibility\("default"\)\)\) const MoeKernelInfo\* __moe_kernels\(uint32_t\* n\) \{\n {2}\*n = 1u;/);
    assert.match(e.code, /#line 1 "moe_softmax_topk\.metal\.entries\.cpp"/);
    assert.equal(e.code.includes('[['), false, 'no attribute left');
  });
  test('address spaces removed where they qualify types, not elsewhere', () => {
    const src = [
      'constant float K = 1.0f;',
      'struct S { float device_id; };',
      'inline float f(thread float& x, threadgroup float* t) { return x + t[0]; }',
      'kernel void k(device float* a [[buffer(0)]], constant S& s [[buffer(1)]], uint i [[thread_position_in_grid]]) {',
      '  device float* b = (device float*)a; const constant float* c = static_cast<constant float*>(&K);',
      '  threadgroup_barrier(mem_flags::mem_threadgroup); b[i] = s.device_id + c[0] + metal::device_hint;',
      '}',
    ].join('\n');
    const lines = userSection(emitCpp(parseMsl(src, 'a.metal')).code, 'a.metal');
    assert.equal(lines[0], ' float K = 1.0f;');
    assert.equal(lines[2], 'inline float f( float& x,  float* t) { return x + t[0]; }');
    assert.equal(lines[3], ' void k( float* a ,  S& s , uint i ) {');
    assert.equal(lines[4], '   float* b = ( float*)a; const  float* c = static_cast< float*>(&K);');
    assert.equal(lines[5], '  threadgroup_barrier(mem_flags::mem_threadgroup); b[i] = s.device_id + c[0] + metal::device_hint;');
  });
  test('swizzles become calls, struct fields stay', () => {
    const src = [
      'struct Pair { float a; float b; };',
      'kernel void k(device float4* v [[buffer(0)]], constant Pair& p [[buffer(1)]], uint i [[thread_position_in_grid]]) {',
      '  float4 x = v[i]; float2 y = x.xy + x.zw; float3 c = x.rgb; float r = x.r + x.g + x.x + p.a + p.b;',
      '  x.xy = y.yx; float s = x.xyzw.w + v->wzyx.x + x.abgr.r; float q = x.xy(); float xyzwv = x.xyzww;',
      '}',
    ].join('\n');
    const lines = userSection(emitCpp(parseMsl(src, 's.metal')).code, 's.metal');
    assert.equal(lines[2], '  float4 x = v[i]; float2 y = x.xy() + x.zw(); float3 c = x.rgb(); float r = x.r + x.g + x.x + p.a + p.b;');
    assert.equal(lines[3], '  x.xy() = y.yx(); float s = x.xyzw().w + v->wzyx().x + x.abgr().r; float q = x.xy(); float xyzwv = x.xyzww;');
  });
  test('a struct field named like a swizzle disables that swizzle everywhere', () => {
    const src = 'struct C { float rg; float b; };\nkernel void k(device float4* v [[buffer(0)]], uint i [[thread_position_in_grid]]) { float2 t = v[i].rg; float u = v[i].b + v[i].g; }\n';
    const lines = userSection(emitCpp(parseMsl(src, 'c.metal')).code, 'c.metal');
    assert.match(lines[1], /float2 t = v\[i\]\.rg; float u = v\[i\]\.b \+ v\[i\]\.g;/);
  });
  test('threadgroup declarations become threadgroup storage; pointers stay thread-local', () => {
    const src = [
      'kernel void k(device float* o [[buffer(0)]], threadgroup float* dyn [[threadgroup(0)]], uint i [[thread_index_in_threadgroup]]) {',
      '  threadgroup float buf[256];',
      '  threadgroup float a[2][32], b;',
      '  threadgroup uint counter; threadgroup atomic_uint hits;',
      '  threadgroup float tile[N * 2], sel[(N > 2 ? 4 : 8)];',
      '  threadgroup float* p = dyn + 1;',
      '  threadgroup float c[4], *q = (threadgroup float*)dyn;',
      '  { threadgroup vec<float, 4> v4[8]; }',
      '  o[i] = buf[i] + a[0][0] + b + p[0] + q[0] + c[0] + tile[0];',
      '}',
      'inline void helper() { threadgroup half h[16]; (void)h; }',
    ].join('\n');
    const lines = userSection(emitCpp(parseMsl(src, 't.metal')).code, 't.metal');
    assert.equal(lines[1], '  auto& buf = ::moe_rt::tg_array<float[256], float>(0u, "buf");');
    assert.equal(lines[2], '  auto& a = ::moe_rt::tg_array<float[2][32], float>(1u, "a"); auto& b = ::moe_rt::tg_array<float, float>(2u, "b");');
    assert.equal(lines[3], '  auto& counter = ::moe_rt::tg_array<uint, uint>(3u, "counter"); auto& hits = ::moe_rt::tg_array<atomic_uint, atomic_uint>(4u, "hits");');
    assert.equal(lines[4], '  auto& tile = ::moe_rt::tg_array<float[N * 2], float>(5u, "tile"); auto& sel = ::moe_rt::tg_array<float[((N > 2 ? 4 : 8))], float>(6u, "sel");');
    assert.equal(lines[5], '   float* p = dyn + 1;');
    assert.equal(lines[6], '  auto& c = ::moe_rt::tg_array<float[4], float>(7u, "c"); float *q = ( float*)dyn;');
    assert.equal(lines[7], '  { auto& v4 = ::moe_rt::tg_array<vec<float, 4>[8], vec<float, 4>>(8u, "v4"); }');
    assert.equal(lines[10], 'inline void helper() { auto& h = ::moe_rt::tg_array<half[16], half>(9u, "h"); (void)h; }');
  });
  test('template instantiations are dropped (the entries instantiate), line count kept', () => {
    const p = parseFixture('features.metal');
    const e = emitCpp(p);
    const lines = userSection(e.code, 'features.metal');
    assert.equal(lines.length, sourceLines(fixture('features.metal')).length);
    for (let l = 67; l <= 71; l++) assert.equal(lines[l].trim(), '', `line ${l + 1} blank`);
    assert.match(e.code, /\n {2}scale_t<float>\(\n/);
    assert.match(e.code, /\n {2}scale_t<half>\(\n/);
    assert.match(e.code, /namespace ns \{\nextern "C" void __moe_entry_3/);
    assert.match(e.code, /\{"in_ns", &ns::__moe_entry_3, 0u, 0u, nullptr\}/);
    assert.match(e.code, /\{"scale_f16", &__moe_entry_2, 1u, 0u, nullptr\}/);
    assert.match(lines[87], /o\[i\] = half\(1\.5f\) \+/);
  });
  test('line preservation: every kept token stays on its line', () => {
    for (const name of ['moe_softmax_topk.metal', 'moe_dispatch.metal', 'attention.metal', 'features.metal']) {
      const src = fixture(name);
      const out = userSection(emitCpp(parseMsl(src, name)).code, name);
      const srcLines = sourceLines(src);
      assert.equal(out.length, srcLines.length, `${name}: line count`);
      srcLines.forEach((line, n) => {
        if (/^\s*template \[\[host_name/.test(line) || /^\s*(device|constant|uint|threadgroup)\b.*\[\[/.test(line)) return;
        const code = line.replace(/\/\/.*$/, '').replace(/\[\[[^\]]*\]\]/g, '');
        const words = code.match(/\b[A-Za-z_]\w*\b/g) ?? [];
        for (const w of words) {
          if (/^(device|constant|thread|threadgroup|kernel)$/.test(w)) continue;
          if (/^(instantiation|host_name)$/.test(w)) continue;
          assert.ok(out[n].includes(w) || /^\s*(template|device|constant|uint|ushort)\b/.test(line), `${name}:${n + 1}: '${w}' missing in: ${out[n]}`);
        }
      });
    }
  });
  test('multi-line attributes and declarations keep the following lines in place', () => {
    const src = [
      'kernel void k(device float* a [[',
      '    buffer(0)]], uint i [[thread_position_in_grid]]) {',
      '  threadgroup float',
      '     buf[64];',
      '  a[i] = buf[i];',
      '}',
    ].join('\n');
    const lines = userSection(emitCpp(parseMsl(src, 'm.metal')).code, 'm.metal');
    assert.equal(lines.length, 6);
    assert.equal(lines[0], ' void k( float* a ');
    assert.equal(lines[1], ', uint i ) {');
    assert.equal(lines[2], '  auto& buf = ::moe_rt::tg_array<float[64], float>(0u, "buf");');
    assert.equal(lines[3], '');
    assert.equal(lines[4], '  a[i] = buf[i];');
  });
  test('macro bodies get the token rewrites; continuation lines are kept', () => {
    const src = [
      '#define LOAD(p, i) ((device const float*)(p))[i] \\',
      '    + v.xy.x',
      'kernel void k(device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]) { a[i] = 0; }',
    ].join('\n');
    const lines = userSection(emitCpp(parseMsl(src, 'd.metal')).code, 'd.metal');
    assert.equal(lines[0], '#define LOAD(p, i) (( const float*)(p))[i] \\');
    assert.equal(lines[1], '    + v.xy().x');
  });
  test('headerName option and #line file names with quotes', () => {
    const e = emitCpp(parseMsl(K('device float* a [[buffer(0)]]'), 'dir/we"ird.metal'), { headerName: 'other.h' });
    assert.ok(e.code.startsWith('#include "other.h"\n#line 1 "dir/we\\"ird.metal"\n'));
  });
  test('parse errors come from emitCpp too when given a hand-made ParsedMsl', () => {
    const parsed: ParsedMsl = { file: 'x.metal', source: 'kernel void k(float* a [[buffer(0)]]) {}', kernels: [], structs: [] };
    assert.throws(() => emitCpp(parsed), MslError);
  });
});

describe('emitted C++ compiles (g++ -fsyntax-only -I native/include)', () => {
  const header = join(ROOT, 'native', 'include', 'msl_cpu.h');
  const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });
  const skip = !existsSync(header) ? 'native/include/msl_cpu.h is missing' : gxx.status !== 0 ? 'g++ is not installed' : false;
  const compile = (code: string, name: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-msl-'));
    try {
      const f = join(dir, `${name}.cpp`);
      writeFileSync(f, code);
      const r = spawnSync('g++', ['-std=c++17', '-fsyntax-only', '-I', join(ROOT, 'native', 'include'), f], { encoding: 'utf8' });
      return r.status === 0 ? '' : r.stderr || `exit ${r.status}`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  for (const name of ['moe_softmax_topk.metal', 'moe_dispatch.metal', 'attention.metal']) {
    test(name, { skip }, () => {
      const err = compile(emitCpp(parseFixture(name)).code, name);
      assert.equal(err, '', err);
    });
  }
  // features.metal uses swizzles (methods) and half
  test('features.metal', { skip }, () => {
    const err = compile(emitCpp(parseFixture('features.metal')).code, 'features.metal');
    assert.equal(err, '', err);
  });
  test('compile errors point at the .metal file and line', { skip }, () => {
    const src = K('device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]', '\n  a[i] = undefined_thing;\n');
    const err = compile(emitCpp(parseMsl(src, 'user.metal')).code, 'user');
    assert.match(err, /user\.metal:4:\d+: error: .*undefined_thing/);
  });
});
