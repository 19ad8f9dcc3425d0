/**
 * Whole shader files as engines ship them: program-scope constants usable as
 * constant expressions on both emitters, kernel-by-kernel compilation (one
 * broken kernel never hides the others), `moe check`, and signature syntax
 * errors that name the token.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { getBackend } from '../src/backend/index.js';
import { emitCuda, emitMsl, parseMsl } from '../src/msl/index.js';
import { moe, ROOT, shader, tmp } from './helpers.js';

const run = promisify(execFile);
const u8 = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const nvccHave = spawnSync('nvcc', ['--version'], { encoding: 'utf8' }).status === 0;

async function nvccCompile(code: string, name: string): Promise<void> {
  const dir = tmp('nvcc-wf');
  const cu = join(dir, `${name}.cu`);
  writeFileSync(cu, code);
  await run('nvcc', ['-arch=sm_90', '-std=c++17', '-c', `-I${join(ROOT, 'native', 'include')}`, '-o', `${cu}.o`, cu], { maxBuffer: 8 << 20 });
}

describe('program-scope constants are constant expressions', () => {
  const file = shader('whole-file', 'program_constants.metal');
  const source = readFileSync(file, 'utf8');

  test('cpu backend: threadgroup arrays sized and templates instantiated by constant, constexpr and #define', async () => {
    const be = getBackend('cpu');
    const p = await be.compile(source, file, 'program_constants');
    const groups = 3;
    const out = new Float32Array(groups * 128).fill(NaN);
    await be.run(p, [u8(out)], { mode: 'threadgroups', grid: [groups, 1, 1], threadgroup: [128, 1, 1], threadgroupMemory: [] });
    // a[N-1-tid] = (127 - tid) * 0.5; pick<M+K>(b) = b[67] = table[67 % 4] = 4; pick<TG>(c) = c[63] = 1
    for (let g = 0; g < groups; g++) {
      for (let t = 0; t < 128; t++) assert.equal(out[g * 128 + t], (127 - t) * 0.5 + 4 + 1, `threadgroup ${g}, thread ${t}`);
    }
  });

  test('cuda emission: integers constexpr, floats and arrays __constant__', () => {
    const code = emitCuda(parseMsl(source, file)).code;
    assert.match(code, /^constexpr uint N = 128;$/m);
    assert.match(code, /^constexpr {2}uint M = N \/ 2;$/m, 'already constexpr: not twice');
    assert.match(code, /^__constant__ float scale = 0\.5f;$/m);
    assert.match(code, /^__constant__ float table\[4\]/m);
  });

  test('cuda emission compiles with nvcc for sm_90', { skip: nvccHave ? false : 'nvcc is not installed on this machine' }, async () => {
    await nvccCompile(emitCuda(parseMsl(source, file)).code, 'program_constants');
  });
});

describe('signature syntax errors name the token and the line', () => {
  test('a missing comma after an attribute, and after a pointer parameter', () => {
    const dir = tmp('comma');
    const f = join(dir, 'comma.metal');
    writeFileSync(f, 'kernel void k(device float* out [[buffer(0)]]\n              uint i [[thread_position_in_grid]]) {\n  out[i] = 1.0;\n}\n');
    const r = moe(['translate', f, '--target', 'cpp']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /comma\.metal:2:15: error: expected ',' or '\)' after the attribute \[\[buffer\(0\)\]\] of parameter 'out' \(line 1\), found 'uint'/);
    assert.doesNotMatch(r.stderr, /two bindings/);
    const g = join(dir, 'comma2.metal');
    writeFileSync(g, 'kernel void k(device float* a\n  device float* b [[buffer(1)]], uint i [[thread_position_in_grid]]) {\n  b[i] = a[i];\n}\n');
    const r2 = moe(['translate', g, '--target', 'cpp']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /comma2\.metal:2:3: error: expected ',' or '\)' after parameter 'a' \(line 1\), found 'device'/);
    assert.doesNotMatch(r2.stderr, /two address spaces/);
  });
});

/** Every .metal under a folder, recursively (paths relative to the repository). */
function metalFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir)).sort()) {
    const rel = join(dir, e);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...metalFiles(rel));
    else if (e.endsWith('.metal')) out.push(rel);
  }
  return out;
}

interface CheckJson {
  backend: string;
  files: {
    file: string;
    fileError: string | null;
    kernels: { name: string; line: number; status: string; error?: string; errorLine?: number | null; barriers: string[]; simdgroup: string[]; features: string[]; threadgroupMemory: { staticBytes: number | null; dynamic: { index: number }[] } }[];
  }[];
  summary: { files: number; kernels: number; compiled: number; errors: number; filesNotParsed: number };
}

const lineOf = (file: string, text: string): number => readFileSync(join(ROOT, file), 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;

describe('moe check', () => {
  test('every kernel of every .metal in the repository compiles on the cpu backend, except the deliberately broken ones', () => {
    const files = [...metalFiles('shaders'), ...metalFiles(join('test', 'shaders')), ...metalFiles(join('test', 'fixtures'))];
    assert.ok(files.length > 100, `found ${files.length} files`);
    const r = moe(['check', '--backend', 'cpu', '--json', ...files], {}, 900_000);
    assert.equal(r.code, 1, r.stderr);
    const j = JSON.parse(r.stdout) as CheckJson;
    assert.equal(j.summary.files, files.length);
    assert.equal(j.summary.filesNotParsed, 0, 'every file parses; broken kernels fail alone');
    const errors = j.files.flatMap((f) => f.kernels.filter((k) => k.status === 'error').map((k) => `${f.file}:${k.name}:${k.errorLine}`)).sort();
    const hostile = join('test', 'shaders', 'hostile');
    const broken = join('test', 'shaders', 'whole-file', 'one_broken.metal');
    // the shaders meant not to compile, each reported with the line of its error
    const expected = [
      `${join(hostile, 'syntax_error.metal')}:moe_softmax_topk_f32:${lineOf(join(hostile, 'syntax_error.metal'), 'if (tiitg < p.top_k)')}`,
      `${join(hostile, 'unsupported_feature.metal')}:moe_softmax_topk_f32:${lineOf(join(hostile, 'unsupported_feature.metal'), 'simdgroup_float8x8')}`,
      `${broken}:broken_undeclared:${lineOf(broken, 'not_declared_anywhere;')}`,
      `${broken}:broken_signature:${lineOf(broken, 'kernel void broken_signature(') + 2}`,
      `${broken}:broken_texture:${lineOf(broken, 'texture2d<float> t;')}`,
      `${broken}:scale_bad:${lineOf(broken, 'b[i] = b[i] * T(3);')}`,
    ].sort();
    assert.deepEqual(errors, expected);
    assert.equal(j.summary.errors, expected.length);
    assert.ok(j.summary.compiled > 150, `${j.summary.compiled} kernels compiled`);
    for (const f of j.files) for (const k of f.kernels) if (k.status === 'error') assert.match(k.error ?? '', new RegExp(`${f.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${k.errorLine}:`));
  });

  test('facts per kernel: barriers, SIMD-group functions, threadgroup memory', () => {
    const r = moe(['check', '--backend', 'cpu', '--json', join('test', 'shaders', 'semantics', 'simd.metal'), join('test', 'shaders', 'whole-file', 'program_constants.metal')]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as CheckJson;
    const simd = j.files[0]!.kernels.find((k) => k.name === 'collectives');
    assert.ok(simd, 'collectives kernel');
    assert.ok(simd.simdgroup.length > 0 && simd.simdgroup.every((x) => /^(simd|quad)_/.test(x)), simd.simdgroup.join(','));
    const pc = j.files[1]!.kernels[0]!;
    assert.deepEqual(pc.barriers, ['threadgroup_barrier']);
    // a[N] + b[M + K] + c[TG] floats: (128 + 68 + 64) * 4
    assert.equal(pc.threadgroupMemory.staticBytes, (128 + 68 + 64) * 4);
  });

  test('one broken kernel among good ones: the good ones compile and PASS, the broken ones are reported with their lines, exit 1', () => {
    const file = join('test', 'shaders', 'whole-file', 'one_broken.metal');
    const r = moe(['check', '--backend', 'cpu', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /ok {4}zero_buffer \(line \d+\)/);
    assert.match(r.stdout, /ok {4}double_it \(line \d+\)/);
    assert.match(r.stdout, /ok {4}scale_f32 \(line \d+\)/);
    assert.match(r.stdout, new RegExp(`ERROR broken_undeclared \\(line \\d+, error at line ${lineOf(file, 'not_declared_anywhere;')}\\)`));
    assert.match(r.stdout, new RegExp(`one_broken\\.metal:${lineOf(file, 'not_declared_anywhere;')}:\\d+: error: .*not_declared_anywhere`));
    assert.match(r.stdout, /ERROR broken_signature .*\n.*expected ',' or '\)' after the attribute \[\[buffer\(0\)\]\] of parameter 'b'/);
    assert.match(r.stdout, /ERROR broken_texture .*\n.*textures \(texture2d\) are not supported/);
    assert.match(r.stdout, /3 of 7 kernels compile; 4 do not/);
    // the good kernel of that file verified as it is
    const v = moe(['verify', '--kernel', 'zero-buffer', '--backend', 'cpu', '--shader', file]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /PASS/);
    assert.doesNotMatch(v.stdout, /FAIL/);
    // a broken one: its own error, exit 2, not another kernel's
    const b = moe(['verify', '--kernel', 'zero-buffer', '--backend', 'cpu', '--shader', file, '--entry', 'broken_undeclared']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /not_declared_anywhere/);
    assert.doesNotMatch(b.stderr, /texture/);
  });

  test('bad usage exits 2', () => {
    assert.equal(moe(['check', 'does-not-exist.metal']).code, 2);
    assert.equal(moe(['check', '--backend', 'metal', shader('semantics', 'simd.metal')]).code, 2);
  });

  test('a file that does not parse at all: exit 1, its error with a line', () => {
    const dir = tmp('check');
    const f = join(dir, 'unbalanced.metal');
    writeFileSync(f, 'kernel void k(device float* b [[buffer(0)]], uint i [[thread_position_in_grid]]) {\n  b[i] = 1.0;\n');
    const r = moe(['check', '--backend', 'cpu', f]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /unbalanced\.metal:1:\d+: error: '\{' is never closed/);
  });
});

describe('moe check on the cuda backend (where a GPU is found)', () => {
  const gpu = moe(['backends', '--json']);
  const cuda = gpu.code === 0 && /"name":\s*"cuda",\s*"available":\s*true/.test(gpu.stdout);
  test('the broken kernels fail alone, blamed through NVRTC\'s lines; the good ones compile and run', { skip: cuda ? false : 'no CUDA GPU here' }, async () => {
    const file = join('test', 'shaders', 'whole-file', 'one_broken.metal');
    const r = moe(['check', '--backend', 'cuda', '--json', file]);
    assert.equal(r.code, 1, r.stderr);
    const j = JSON.parse(r.stdout) as CheckJson;
    const status = Object.fromEntries(j.files[0]!.kernels.map((k) => [k.name, `${k.status}${k.status === 'error' ? `:${k.errorLine}` : ''}`]));
    assert.deepEqual(status, {
      zero_buffer: 'compiled',
      broken_undeclared: `error:${lineOf(file, 'not_declared_anywhere;')}`,
      broken_signature: `error:${lineOf(file, 'kernel void broken_signature(') + 2}`,
      double_it: 'compiled',
      broken_texture: `error:${lineOf(file, 'texture2d<float> t;')}`,
      scale_f32: 'compiled',
      scale_bad: `error:${lineOf(file, 'b[i] = b[i] * T(3);')}`,
    });
    const v = moe(['verify', '--kernel', 'zero-buffer', '--backend', 'cuda', '--shader', file]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const pc = shader('whole-file', 'program_constants.metal');
    const be = getBackend('cuda');
    const p = await be.compile(readFileSync(pc, 'utf8'), pc, 'program_constants');
    const out = new Float32Array(2 * 128).fill(NaN);
    await be.run(p, [u8(out)], { mode: 'threadgroups', grid: [2, 1, 1], threadgroup: [128, 1, 1], threadgroupMemory: [] });
    for (let t = 0; t < 256; t++) assert.equal(out[t], (127 - (t % 128)) * 0.5 + 4 + 1, `thread ${t}`);
  });
});

describe('kernels left out of an emission keep every other line where it was', () => {
  test('MSL for Metal: the front end\'s failed kernels and the omitted ones blanked, an omitted instantiation removed', () => {
    const file = shader('whole-file', 'one_broken.metal');
    const src = readFileSync(file, 'utf8');
    const parsed = parseMsl(src, file, { perKernel: true });
    assert.deepEqual((parsed.failed ?? []).map((f) => f.name), ['broken_signature', 'broken_texture']);
    const e = emitMsl(parsed, { omit: new Set(['scale_bad', 'broken_undeclared']) });
    const lines = e.code.split('\n');
    assert.equal(lines.length, src.split('\n').length);
    assert.deepEqual(e.kernels.map((k) => k.name), ['zero_buffer', 'double_it', 'scale_f32']);
    assert.doesNotMatch(e.code, /broken_|not_declared_anywhere|texture2d|scale_bad/);
    // the template stays for the instantiation kept, at its own lines
    const at = src.split('\n').findIndex((l) => l.includes('b[i] = b[i] * T(3);'));
    assert.equal(lines[at], src.split('\n')[at]);
    const dz = src.split('\n').findIndex((l) => l.includes('kernel void double_it('));
    assert.equal(lines[dz], src.split('\n')[dz]);
  });
});
