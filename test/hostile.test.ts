/**
 * Hostile kernels never take the tool down (issue 7). Each kernel of
 * test/shaders/hostile/ (plus the planted race of softmax-topk) is run twice:
 *
 * - through the CLI (`moe verify --shader ...`): exit 1 or 2 with the
 *   expected message, no stack trace, and the child not killed by a signal;
 * - in this very process, through the public API (verifySpec on
 *   getBackend('cpu')): the same error, and then the correct kernel still
 *   verifies here. An out-of-bounds access, a stack overflow or a SIGFPE
 *   that escaped the runtime would kill the test process itself.
 *
 * Small shapes and short --timeout values keep the file fast.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mapCompilerOutput } from '../src/backend/cpu.js';
import { getBackend } from '../src/backend/index.js';
import type { NativeRunOptions } from '../src/backend/addon-types.js';
import { ShaderCompileError } from '../src/errors.js';
import { softmaxTopk } from '../src/kernels/softmax-topk.js';
import type { KernelCase } from '../src/kernels/spec.js';
import { verifySpec } from '../src/harness/run.js';
import { moe, shader, tmp } from './helpers.js';

const SMALL = { n_tokens: 2, n_experts: 8, top_k: 2 };
const flagsOf = (p: typeof SMALL): string[] => ['--tokens', `${p.n_tokens}`, '--experts', `${p.n_experts}`, '--top-k', `${p.top_k}`, '--inputs', 'normal'];

interface Hostile {
  name: string;
  file: string;
  params?: typeof SMALL;
  /** Extra CLI flags and the matching run options in process. */
  flags?: string[];
  runOptions?: NativeRunOptions;
  exit: 1 | 2;
  message: RegExp;
  /** Status of the case in process (default ERROR for exit 1). */
  inProcessStatus?: 'ERROR' | 'FAIL';
}

const lineOf = (file: string, text: string): number => readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;

const SYNTAX = shader('hostile', 'syntax_error.metal');
const UNSUPPORTED = shader('hostile', 'unsupported_feature.metal');

const HOSTILE: Hostile[] = [
  {
    name: 'out-of-bounds write past the end',
    file: shader('hostile', 'oob_write_end.metal'),
    exit: 1,
    message:
      /moe_softmax_topk_f32: out-of-bounds (write to|access of) buffer\(3\) 'weights' at byte offset 16 \(0 bytes past its end; the buffer has 16 bytes\) in threadgroup \(1,0,0\), thread \(0,0,0\)/,
  },
  {
    name: 'out-of-bounds read before the start',
    file: shader('hostile', 'oob_read_before.metal'),
    // 32 × 128 floats: 16 KiB, so the buffer starts right after its leading guard (4 KiB or 16 KiB pages)
    params: { n_tokens: 32, n_experts: 128, top_k: 2 },
    exit: 1,
    message:
      /moe_softmax_topk_f32: out-of-bounds (read|access) of buffer\(1\) 'logits' at byte offset -4 \(4 bytes before its start; the buffer has 16384 bytes\) in threadgroup \(0,0,0\), thread \(0,0,0\)/,
  },
  {
    name: 'infinite loop (no barrier)',
    file: shader('hostile', 'infinite_loop.metal'),
    flags: ['--timeout', '300ms'],
    runOptions: { timeoutMs: 300 },
    exit: 1,
    message: /moe_softmax_topk_f32: timed out: still running after 300 ms in threadgroup \(0,0,0\), thread \(0,0,0\), abandoned by the watchdog/,
  },
  {
    name: 'stack overflow',
    file: shader('hostile', 'stack_overflow.metal'),
    exit: 1,
    message:
      /moe_softmax_topk_f32: stack overflow in threadgroup \([01],0,0\), thread \(\d+,0,0\): the stack of 262144 bytes per thread is too small \(raise it: --stack-size/,
  },
  {
    name: 'divergent barrier',
    file: shader('hostile', 'divergent_barrier.metal'),
    exit: 1,
    message: /moe_softmax_topk_f32: divergent threadgroup_barrier in threadgroup \([01],0,0\): 1 of 8 threads returned before reaching it/,
  },
  {
    name: 'integer division by zero',
    file: shader('hostile', 'divide_by_zero.metal'),
    exit: 1,
    // x86-64 traps (SIGFPE); arm64 returns 0, and the wrong ids fail the comparison.
    message:
      process.arch === 'x64'
        ? /moe_softmax_topk_f32: arithmetic trap \(SIGFPE: integer division by zero or overflow\) in threadgroup \([01],0,0\), thread \(0,0,0\)/
        : /ids: /,
    inProcessStatus: process.arch === 'x64' ? 'ERROR' : 'FAIL',
  },
  {
    name: 'threadgroup memory over 32 KiB',
    file: shader('hostile', 'threadgroup_memory_over.metal'),
    exit: 1,
    message: /threadgroup memory of 36096 bytes exceeds the maximum of 32768 \(96 dynamic \+ 36000 in threadgroup variables\)/,
  },
  {
    name: 'syntax error',
    file: SYNTAX,
    exit: 2,
    message: new RegExp(`syntax_error\\.metal:${lineOf(SYNTAX, 'if (tiitg < p.top_k)')}:\\d+: error: expected .*;.* before .*if`),
  },
  {
    name: 'unsupported feature',
    file: UNSUPPORTED,
    exit: 2,
    message: new RegExp(`unsupported_feature\\.metal:${lineOf(UNSUPPORTED, 'simdgroup_float8x8')}:\\d+: error: simdgroup_matrix is not supported by the cpu backend yet`),
  },
];

const backend = getBackend('cpu');
const caseOf = (params: typeof SMALL): KernelCase => ({ params, inputSet: 'normal', origin: 'cli' });

/** The correct kernel still verifies in this process. */
async function stillWorks(): Promise<void> {
  const { results } = await verifySpec(softmaxTopk, backend, [caseOf({ n_tokens: 3, n_experts: 33, top_k: 7 }), caseOf(SMALL)], { seed: 42 });
  for (const r of results) assert.equal(r.status, 'PASS', `${r.shape}: ${r.error ?? JSON.stringify(r.outputs.map((o) => o.failure))}`);
}

function assertNoCrash(r: ReturnType<typeof moe>, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${String(r.signal)}\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at .+:\d+:\d+/, `${what}: a stack trace`);
  assert.doesNotMatch(r.stdout + r.stderr, /\.cpp:\d+|msl_cpu\.h:\d+:\d+: error|entries\.cpp/, `${what}: C++ about generated code`);
}

for (const h of HOSTILE) {
  test(`hostile: ${h.name} → exit ${h.exit} with the message, through the CLI and in process`, async () => {
    const params = h.params ?? SMALL;
    const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', h.file, ...flagsOf(params), ...(h.flags ?? [])], {}, 60_000);
    assertNoCrash(r, h.name);
    assert.equal(r.code, h.exit, `${h.name}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout + r.stderr, h.message);

    const o = { seed: 42, shaderFile: h.file, runOptions: h.runOptions };
    if (h.exit === 2) {
      await assert.rejects(verifySpec(softmaxTopk, backend, [caseOf(params)], o), (e: Error) => e instanceof ShaderCompileError && h.message.test(e.message));
    } else {
      const { results } = await verifySpec(softmaxTopk, backend, [caseOf(params)], o);
      const status = h.inProcessStatus ?? 'ERROR';
      assert.equal(results[0]?.status, status, JSON.stringify(results[0]));
      if (status === 'ERROR') assert.match(results[0]?.error ?? '', h.message);
    }
    await stillWorks();
  });
}

test('hostile: --stack-size raises the stack: the kernel that overflowed passes with 1M', async () => {
  const file = shader('hostile', 'stack_overflow.metal');
  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', file, ...flagsOf(SMALL), '--stack-size', '1M']);
  assertNoCrash(r, 'stack-size');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const { results } = await verifySpec(softmaxTopk, backend, [caseOf(SMALL)], { seed: 42, shaderFile: file, runOptions: { stackSize: 1 << 20 } });
  assert.equal(results[0]?.status, 'PASS');
});

test('hostile: a race without a barrier that the forward order hides is caught by --schedules 4 at the default sweep', async () => {
  const file = shader('softmax-topk', 'race_forward_passes.metal');
  const plain = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', file]);
  assertNoCrash(plain, 'race (forward)');
  assert.equal(plain.code, 0, `the forward order alone must not see this race\n${plain.stdout}`);

  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', file, '--schedules', '4']);
  assertNoCrash(r, 'race (--schedules 4)');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /\(thread order reverse\): differs from the forward thread order at \d+ of \d+ elements, first at \[\d+\]: .* under reverse, .* under forward \(a race/);
  assert.match(r.stdout, /reproduce: npx moe verify --kernel softmax-topk .* --schedules 4/);

  const { results } = await verifySpec(softmaxTopk, backend, [caseOf({ n_tokens: 3, n_experts: 33, top_k: 7 })], { seed: 42, shaderFile: file, schedules: 4 });
  assert.equal(results[0]?.status, 'FAIL');
  assert.ok(results[0]?.outputs.some((o) => !o.pass && /thread order (reverse|shuffle)/.test(o.name)));
  // Our kernel is race-free: identical under every order.
  const ok = await verifySpec(softmaxTopk, backend, [caseOf({ n_tokens: 3, n_experts: 33, top_k: 7 }), caseOf({ n_tokens: 2, n_experts: 200, top_k: 17 })], { seed: 42, schedules: 6 });
  for (const x of ok.results) assert.equal(x.status, 'PASS', JSON.stringify(x.outputs.filter((o) => !o.pass)));
});

test('hostile: bench abandons an endless kernel at --timeout with exit 1', () => {
  const r = moe(['bench', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', shader('hostile', 'infinite_loop.metal'), '--tokens', '2', '--experts', '8', '--top-k', '2', '--timeout', '200ms', '--max-time', '0.1', '--min-samples', '1', '--warmup', '1']);
  assertNoCrash(r, 'bench');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /kernel failed: moe_softmax_topk_f32: timed out: still running after 200 ms/);
});

test('hostile: resource limits and safety flags are checked before anything runs (exit 2)', () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--tokens', '4096', '--experts', '4096', '--top-k', '8'],
      { MOE_MEMORY_LIMIT: '64M' },
      /softmax-topk \(tokens=4096 experts=4096 top-k=8\): the buffers take 64\.3 MiB, about 257\.0 MiB with the copies a run holds, more than the 64\.0 MiB of memory available/,
    ],
    [
      ['bench', '--kernel', 'softmax-topk', '--backend', 'cpu', '--tokens', '8192', '--experts', '4096'],
      { MOE_MEMORY_LIMIT: '64M' },
      /the buffers take 128\.\d MiB/,
    ],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--timeout', 'soon'], {}, /--timeout: 'soon' is not a duration/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--stack-size', '1K'], {}, /--stack-size: 1K is outside 16K\.\.64M/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--schedules', '0'], {}, /schedules/],
    [['dispatch', '--backend', 'cpu', '--timeout', '-1'], {}, /--timeout: '-1' is not a duration/],
  ];
  for (const [args, env, re] of cases) {
    const r = moe(args, env, 60_000);
    assertNoCrash(r, args.join(' '));
    assert.equal(r.code, 2, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('source errors: compiler output is mapped to the .metal file and line, never C++ about generated code', async () => {
  const f = '/src/k.metal';
  // GCC: a static_assert in the compat header, instantiated from the user's line (the site comes before the error).
  const gcc = [
    'In file included from /cache/0123.cpp:1:',
    "/pkg/native/include/msl_cpu.h: In instantiation of 'To metal::as_type(const From&) [with To = float; From = double]':",
    '/src/k.metal:7:24:   required from here',
    '/pkg/native/include/msl_cpu.h:369:28: error: static assertion failed: as_type: the two types must have the same size',
    '  369 |   static_assert(sizeof(To) == sizeof(From), "as_type");',
  ].join('\n');
  assert.equal(mapCompilerOutput(gcc, f), '/src/k.metal:7:24: error: static assertion failed: as_type: the two types must have the same size (raised in msl_cpu.h:369)');
  // clang: the instantiation site is a note after the error.
  const clang = [
    "/pkg/native/include/msl_common/vec.h:40:5: error: no matching function for call to 'fma'",
    "/src/k.metal:12:10: note: in instantiation of function template specialization 'metal::fma<float4>' requested here",
  ].join('\n');
  assert.equal(mapCompilerOutput(clang, f), "/src/k.metal:12:10: error: no matching function for call to 'fma' (raised in vec.h:40)");
  // The user's own lines, with the compat header's type names in MSL's words.
  assert.equal(
    mapCompilerOutput("/src/k.metal:9:39: error: cannot convert 'half2' {aka 'vec<_Float16, 2>'} to 'float' in assignment [-fpermissive]", f),
    "/src/k.metal:9:39: error: cannot convert 'half2' to 'float' in assignment",
  );
  assert.equal(mapCompilerOutput("/src/k.metal:8:18: error: 'struct vec_swz<float, 4>' has no member named 'q'", f), "/src/k.metal:8:18: error: 'struct float4' has no member named 'q'");
  // The generated entry points and the linker.
  assert.match(mapCompilerOutput('/src/k.metal.entries.cpp:3:5: error: invalid initialization of reference', f), /^\/src\/k\.metal: error: invalid initialization of reference \(in the entry point generated for a kernel of this file/);
  assert.equal(
    mapCompilerOutput("/usr/bin/ld: /tmp/cc1.o: in function `k(float*)':\n0123.cpp:(.text+0x15): undefined reference to `helper(float)'\ncollect2: error: ld returned 1 exit status", f),
    "/src/k.metal: error: 'helper(float)' is declared but never defined (undefined reference at link time)",
  );
  // A function declared and never defined, through the backend.
  const dir = tmp('undefined-fn');
  const file = join(dir, 'declared_only.metal');
  writeFileSync(
    file,
    '#include <metal_stdlib>\nusing namespace metal;\nfloat helper(float x);\nkernel void k(device float* o [[buffer(0)]], uint i [[thread_position_in_grid]]) {\n  o[i] = helper(1.0f);\n}\n',
  );
  await assert.rejects(backend.compile(readFileSync(file, 'utf8'), file, 'k'), (e: Error) => e instanceof ShaderCompileError && /'helper\(float\)' is declared but never defined/.test(e.message));
});
