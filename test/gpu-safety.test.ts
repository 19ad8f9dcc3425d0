/**
 * The GPU safety nets that can be tested without a GPU:
 * - `--sanitize TOOL` (CUDA, src/harness/sanitize.ts): the parser of
 *   compute-sanitizer's output on fixtures written in its format
 *   (test/fixtures/sanitizer), the attribution of findings to cases through
 *   the child's marker lines, and the whole child-process plumbing with a
 *   stand-in for the tool that runs the verification on the CPU backend;
 * - redzones on Metal buffers (native/common/redzone.cc through the Metal
 *   glue), with the recording fake of the Metal calls;
 * - `--validate` (Metal): the child process with Apple's validation
 *   environment, whose reports the fake plays.
 * The same checks on a real GPU: test/cuda.test.ts ("on the GPU").
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  applySanitizerFindings,
  caseMessage,
  childArgv,
  findComputeSanitizer,
  MARK,
  parseSanitizerOutput,
  sanitizerArgs,
  type RunMarker,
} from '../src/harness/sanitize.js';
import { locateInFile } from '../src/backend/metal.js';
import { validationEnv } from '../src/cli/gpu-safety.js';
import { moe, ROOT, shader, tmp } from './helpers.js';

const FIX = join(ROOT, 'test', 'fixtures', 'sanitizer');
const fixture = (name: string): string => readFileSync(join(FIX, name), 'utf8');
const FAKE_TOOL = join(FIX, 'fake-compute-sanitizer.mjs');

const run = (m: RunMarker): string => `${MARK} run ${JSON.stringify(m)}\n`;
const done = `${MARK} case-done\n`;
const zeroRun: RunMarker = { entry: 'zero_buffer_oob_write', file: 'oob_write.metal', buffers: [{ index: 0, name: 'buffer', bytes: 4096 }, { index: 1, name: 'params', bytes: 4 }] };

describe('compute-sanitizer output', () => {
  test('memcheck: an out-of-bounds write, located in the .metal file, the buffer named by its size, no host frames', () => {
    const p = parseSanitizerOutput(`========= COMPUTE-SANITIZER\n${run(zeroRun)}${fixture('memcheck-oob-write.txt')}${done}========= ERROR SUMMARY: 2 errors\n`);
    assert.equal(p.banner, true);
    assert.equal(p.cases, 1);
    assert.deepEqual(p.toolErrors, []);
    assert.equal(p.summary, 'ERROR SUMMARY: 2 errors');
    const list = p.byCase.get(0);
    assert.equal(list?.length, 1, 'the host API error that follows the fault is not a finding of its own');
    const f = list[0]!.finding;
    assert.equal(f.what, 'Invalid __global__ write of size 4 bytes');
    assert.equal(f.kernel, 'zero_buffer_oob_write');
    assert.equal(f.file, 'oob_write.metal');
    assert.equal(f.line, 15);
    assert.equal(f.thread, '232,0,0');
    assert.equal(f.block, '3,0,0');
    assert.equal(f.address, '0x7f4c1e001000');
    assert.deepEqual(f.relation, { bytes: 0, side: 'after', allocationSize: 4096 });
    const msg = caseMessage('memcheck', list);
    assert.equal(
      msg,
      "compute-sanitizer memcheck: Invalid __global__ write of size 4 bytes at oob_write.metal:15 (in zero_buffer_oob_write), thread (232,0,0) of threadgroup (3,0,0): 0 bytes past the end of buffer(0) 'buffer' (4096 bytes)",
    );
    assert.doesNotMatch(msg, /Host Frame|libcuda|entries\.cu/);
  });

  test('memcheck: repeated reports of one line are counted once; two buffers of the size are both named', () => {
    const twoOfASize: RunMarker = { entry: 'attn_values_batched', file: 'no_guard.metal', buffers: [{ index: 0, name: 'scores', bytes: 264 }, { index: 2, name: 'out', bytes: 264 }] };
    const p = parseSanitizerOutput(`========= COMPUTE-SANITIZER\n${run(twoOfASize)}${fixture('memcheck-oob-read.txt')}${done}`);
    const msg = caseMessage('memcheck', p.byCase.get(0)!);
    assert.match(msg, /^compute-sanitizer memcheck: Invalid __global__ read of size 4 bytes at no_guard\.metal:22 \(in attn_values_batched\), thread \(224,0,0\) of threadgroup \(1,0,0\): 0 bytes past the end of buffer\(0\) 'scores' or buffer\(2\) 'out' \(264 bytes\) \(and 1 more like it\)$/);
  });

  test('racecheck: both accesses of the race with their .metal lines and the hazard count', () => {
    const r: RunMarker = { entry: 'moe_softmax_topk_f32', file: 'missing_barrier.metal', buffers: [] };
    const p = parseSanitizerOutput(`========= COMPUTE-SANITIZER\n${run(r)}${fixture('racecheck-missing-barrier.txt')}${done}========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n`);
    const f = p.byCase.get(0)![0]!.finding;
    assert.equal(f.what, 'Race reported between Write access');
    assert.equal(f.file, 'missing_barrier.metal');
    assert.equal(f.line, 118);
    assert.deepEqual(f.otherLocations, ['and Read access at missing_barrier.metal:124']);
    assert.equal(f.hazards, 248);
    assert.equal(
      caseMessage('racecheck', p.byCase.get(0)!),
      'compute-sanitizer racecheck: Race reported between Write access at missing_barrier.metal:118 and Read access at missing_barrier.metal:124 (in moe_softmax_topk_f32), 248 hazards',
    );
  });

  test('synccheck and initcheck findings', () => {
    const r: RunMarker = { entry: 'k', file: 'x.metal', buffers: [] };
    const s = parseSanitizerOutput(`${run(r)}${fixture('synccheck-divergent.txt')}${done}`).byCase.get(0)![0]!.finding;
    assert.equal(s.what, 'Barrier error detected. Divergent thread(s) in block.');
    assert.equal(`${s.file}:${s.line}`, 'divergent_barrier.metal:12');
    assert.equal(s.thread, '16,0,0');
    const i = parseSanitizerOutput(`${run(r)}${fixture('initcheck-uninitialized.txt')}${done}`).byCase.get(0)![0]!.finding;
    assert.equal(i.what, 'Uninitialized __global__ memory read of size 4 bytes');
    assert.equal(`${i.file}:${i.line}`, 'moe_dispatch.metal:40');
    assert.equal(i.address, '0x7f4c1e000000');
  });

  test('a tool that cannot attach is seen as such', () => {
    const p = parseSanitizerOutput(fixture('attach-error.txt'));
    assert.equal(p.banner, true);
    assert.equal(p.toolErrors.length, 1);
    assert.match(p.toolErrors[0]!, /Unable to attach to the target process/);
  });

  test('attribution: by case markers; a late report stays with the case that dispatched last; none before any dispatch', () => {
    const other: RunMarker = { ...zeroRun, entry: 'zero_buffer' };
    const text = [
      '========= COMPUTE-SANITIZER\n',
      fixture('synccheck-divergent.txt'), // before any dispatch: the self-test
      run(other),
      'a table line of the child, ignored\n',
      done, // case 0: clean
      run(zeroRun),
      done, // case 1 ...
      fixture('memcheck-oob-write.txt'), // ... reported after its end marker
      done, // case 2: a SKIP (no dispatch)
      run(other),
      done, // case 3: clean
    ].join('');
    const p = parseSanitizerOutput(text);
    assert.equal(p.cases, 4);
    assert.equal(p.unattributed.length, 1);
    assert.deepEqual([...p.byCase.keys()], [1]);
    const cases = [0, 1, 2, 3].map(() => ({ status: 'PASS', error: null as string | null }));
    cases[1] = { status: 'ERROR', error: 'zero_buffer_oob_write: unspecified launch failure (CUDA_ERROR_LAUNCH_FAILED, error 719)\nmore' };
    const orphans = applySanitizerFindings('memcheck', cases, p);
    assert.equal(orphans.length, 1);
    assert.deepEqual(cases.map((c) => c.status), ['PASS', 'ERROR', 'PASS', 'PASS']);
    assert.match(cases[1]!.error!, /^compute-sanitizer memcheck: Invalid __global__ write .* \(the dispatch itself: zero_buffer_oob_write: unspecified launch failure \(CUDA_ERROR_LAUNCH_FAILED, error 719\)\)$/);
  });

  test("attribution: a report naming another kernel's .metal file goes to that kernel's last case", () => {
    const next: RunMarker = { entry: 'moe_accumulate', file: '/x/shaders/moe_dispatch.metal', buffers: [] };
    const p = parseSanitizerOutput([run({ ...zeroRun, file: '/x/test/shaders/zero-buffer/oob_write.metal' }), done, run(next), fixture('memcheck-oob-write.txt'), done].join(''));
    assert.deepEqual([...p.byCase.keys()], [0]);
  });

  test('the child gets the same flags but the tool and report flags, and the cuda backend', () => {
    assert.deepEqual(childArgv(['--kernel', 'zero-buffer', '--sanitize', 'memcheck', '--json', '--junit', 'r.xml', '--markdown']), [
      '--kernel', 'zero-buffer', '--backend', 'cuda', '--timeout', '300s',
    ]);
    assert.deepEqual(childArgv(['--sanitize=racecheck', '--backend', 'cuda', '--junit=r.xml', '--seed', '3', '--timeout', '1m']), ['--backend', 'cuda', '--seed', '3', '--timeout', '1m']);
    assert.deepEqual(sanitizerArgs('memcheck').slice(0, 4), ['--tool', 'memcheck', '--show-backtrace', 'device']);
    assert.ok(sanitizerArgs('racecheck').includes('--racecheck-report'));
  });

  test('compute-sanitizer is found on PATH, in $CUDA_HOME/bin, or named by MOE_COMPUTE_SANITIZER', () => {
    const dir = tmp('sanitizer-find');
    const bin = join(dir, 'cuda', 'bin');
    mkdirSync(bin, { recursive: true });
    const exe = join(bin, 'compute-sanitizer');
    writeFileSync(exe, '#!/bin/sh\n');
    chmodSync(exe, 0o755);
    assert.equal(findComputeSanitizer({ PATH: bin }), exe);
    assert.equal(findComputeSanitizer({ PATH: '/nonexistent', CUDA_HOME: join(dir, 'cuda') }), exe);
    assert.equal(findComputeSanitizer({ MOE_COMPUTE_SANITIZER: exe, PATH: '' }), exe);
    assert.equal(findComputeSanitizer({ MOE_COMPUTE_SANITIZER: join(dir, 'missing'), PATH: bin }), null);
    const noExec = join(dir, 'plain');
    writeFileSync(noExec, '');
    assert.equal(findComputeSanitizer({ MOE_COMPUTE_SANITIZER: noExec }), null);
  });
});

describe('moe verify --sanitize (the child process, with a stand-in for compute-sanitizer on the CPU backend)', () => {
  const toolEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    MOE_COMPUTE_SANITIZER: FAKE_TOOL,
    FAKE_SANITIZER_BACKEND: 'cpu',
    ...extra,
  });
  const oob = ['verify', '--kernel', 'zero-buffer', '--shader', shader('zero-buffer', 'oob_write.metal'), '--entry', 'zero_buffer_oob_write', '--elements', '1024'];

  test('memcheck: the case the tool reports on fails with its report (exit 1); the tool got our options', () => {
    const argsFile = join(tmp('sanitizer-args'), 'args.json');
    const r = moe([...oob, '--sanitize', 'memcheck', '--json'], toolEnv({ FAKE_SANITIZER_FIXTURE: join(FIX, 'memcheck-oob-write.txt'), FAKE_SANITIZER_ARGS: argsFile }));
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout) as { summary: { errors: number }; cases: { status: string; error: string | null }[] };
    assert.equal(report.cases.length, 1);
    assert.equal(report.cases[0]!.status, 'ERROR');
    assert.match(report.cases[0]!.error!, /^compute-sanitizer memcheck: Invalid __global__ write of size 4 bytes at oob_write\.metal:15 \(in zero_buffer_oob_write\), thread \(232,0,0\) of threadgroup \(3,0,0\): 0 bytes past the end of buffer\(0\) 'buffer' \(4096 bytes\)/);
    assert.equal(report.summary.errors, 1);
    const args = JSON.parse(readFileSync(argsFile, 'utf8')) as string[];
    assert.deepEqual(args.slice(0, 4), ['--tool', 'memcheck', '--show-backtrace', 'device']);
    assert.ok(args.includes('verify') && args.includes('--backend') && args.includes('cuda'));
    assert.ok(!args.includes('--sanitize') && !args.includes('--json'));
  });

  test('racecheck: a case that passed fails with the race (table output)', () => {
    const r = moe(
      ['verify', '--kernel', 'softmax-topk', '--shader', shader('softmax-topk', 'missing_barrier.metal'), '--tokens', '1', '--experts', '8', '--top-k', '2', '--inputs', 'normal', '--sanitize', 'racecheck'],
      toolEnv({ FAKE_SANITIZER_FIXTURE: join(FIX, 'racecheck-missing-barrier.txt') }),
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /compute-sanitizer racecheck: Race reported between Write access at missing_barrier\.metal:118 and Read access at missing_barrier\.metal:124/);
    assert.doesNotMatch(r.stdout, /@@moe-sanitize|=========/);
  });

  test('a clean run passes (exit 0)', () => {
    const r = moe(['verify', '--kernel', 'zero-buffer', '--elements', '1024', '--sanitize', 'initcheck', '--json'], toolEnv());
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { summary: { passed: number; cases: number } };
    assert.equal(report.summary.passed, report.summary.cases);
  });

  test('absent, unable to attach, not started: one line, exit 2; --sanitize on another backend: exit 2', () => {
    const absent = moe([...oob, '--sanitize', 'memcheck'], { MOE_COMPUTE_SANITIZER: join(ROOT, 'no-such-tool') });
    assert.equal(absent.code, 2);
    assert.match(absent.stderr, /--sanitize memcheck: compute-sanitizer was not found/);
    const attach = moe([...oob, '--sanitize', 'memcheck'], toolEnv({ FAKE_SANITIZER_MODE: 'attach-error' }));
    assert.equal(attach.code, 2);
    assert.match(attach.stderr, /compute-sanitizer \(.*\) cannot attach here: Error: Unable to attach to the target process/);
    const silent = moe([...oob, '--sanitize', 'memcheck'], toolEnv({ FAKE_SANITIZER_MODE: 'no-banner' }));
    assert.equal(silent.code, 2);
    assert.match(silent.stderr, /cannot attach here: its banner never appeared/);
    const cpu = moe([...oob, '--sanitize', 'memcheck', '--backend', 'cpu'], toolEnv());
    assert.equal(cpu.code, 2);
    assert.match(cpu.stderr, /--sanitize runs NVIDIA's compute-sanitizer: it needs --backend cuda, not cpu/);
  });
});

describe('Metal: redzones and --validate (the recording fake)', () => {
  const FAKE = join(ROOT, 'build', 'Release', 'moe_metal_fake.node');
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({ MOE_METAL_ADDON: FAKE, MOE_FAKE_METAL: 'm2', ...extra });
  const zero = (file: string, entry: string, more: string[] = []): string[] => [
    'verify', '--backend', 'metal', '--kernel', 'zero-buffer', '--shader', shader('zero-buffer', file), '--entry', entry, '--elements', '1001', '--json', ...more,
  ];

  test('a store past the end of a buffer fails the case by its redzone: buffer, side, offsets, bytes', () => {
    const r = moe(zero('oob_write.metal', 'zero_buffer_oob_write'), env());
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout) as { cases: { status: string; error: string | null }[] };
    assert.equal(report.cases[0]!.status, 'ERROR');
    assert.equal(
      report.cases[0]!.error,
      "zero_buffer_oob_write: out-of-bounds write past the end of buffer(0) 'buffer': bytes at offsets 4004..4007 were overwritten (4 bytes changed; the buffer has 4004 bytes; found by its redzones of 4096 bytes after the dispatch, so the thread is not known)",
    );
  });

  test('a store before the start: the other side', () => {
    const r = moe(zero('oob_before.metal', 'zero_buffer_oob_before'), env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /out-of-bounds write before the start of buffer\(0\) 'buffer': bytes at offsets -4\.\.-1 were overwritten \(4 bytes changed; the buffer has 4004 bytes/);
  });

  test('MOE_GPU_REDZONES=0 (for measuring their cost) turns them off: the same kernel then passes', () => {
    const r = moe(zero('oob_write.metal', 'zero_buffer_oob_write'), env({ MOE_GPU_REDZONES: '0' }));
    assert.equal(r.code, 0, r.stdout);
  });

  test('bench allocates the same way and checks after the timed series', () => {
    const r = moe(['bench', '--backend', 'metal', '--kernel', 'zero-buffer', '--shader', shader('zero-buffer', 'oob_write.metal'), '--entry', 'zero_buffer_oob_write', '--elements', '1001', '--max-time', '0.2'], env());
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /out-of-bounds write past the end of buffer\(0\) 'buffer'/);
  });

  test('--validate: the child runs with shader validation, whose report fails the case at its .metal line', () => {
    const r = moe(zero('oob_write.metal', 'zero_buffer_oob_write', ['--validate']), env());
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout) as { cases: { status: string; error: string | null }[] };
    const err = report.cases[0]!.error!;
    assert.match(err, /shader validation: zero_buffer_oob_write at .*oob_write\.metal:15:\d+: Invalid device store/);
    assert.doesNotMatch(err, /redzone/, 'the validation child runs without redzones');
    const clean = moe(['verify', '--backend', 'metal', '--kernel', 'zero-buffer', '--validate'], env());
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    const cpu = moe(['verify', '--backend', 'cpu', '--kernel', 'zero-buffer', '--validate'], env());
    assert.equal(cpu.code, 2);
    assert.match(cpu.stderr, /--validate is Apple's shader validation: it needs --backend metal, not cpu/);
  });

  test('the validation environment and the location of its reports', () => {
    const e = validationEnv({ PATH: '/bin' });
    assert.equal(e.MTL_SHADER_VALIDATION, '1');
    assert.equal(e.MTL_DEBUG_LAYER, '1');
    assert.equal(e.MOE_GPU_REDZONES, '0');
    assert.equal(e.PATH, '/bin');
    assert.equal(locateInFile('shader validation: k at program_source:12:5: Invalid device load', 'my.metal'), 'shader validation: k at my.metal:12:5: Invalid device load');
  });
});
