/**
 * Whole shader files as engines ship them: program-scope constants usable as
 * constant expressions on both emitters, kernel-by-kernel compilation (one
 * broken kernel never hides the others), `moe check`, and signature syntax
 * errors that name the token.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { getBackend } from '../src/backend/index.js';
import { emitCuda, parseMsl } from '../src/msl/index.js';
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
