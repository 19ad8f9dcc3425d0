import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { FileCompileResult } from '../src/backend/types.js';
import { FileCompileMemo, headerText, unitHash } from '../src/backend/shader.js';

const result = (file: string): FileCompileResult => ({ file, backend: 'cpu', kernels: [] });

test('FileCompileMemo: one compile per settings, file and source, shared by concurrent callers', async () => {
  const memo = new FileCompileMemo();
  let compiles = 0;
  const compile = (file: string) => () => {
    compiles++;
    return Promise.resolve(result(file));
  };
  const a = memo.get(['polls'], 'kernel void k() {}', 'a.metal', compile('a.metal'));
  const again = memo.get(['polls'], 'kernel void k() {}', 'a.metal', compile('a.metal'));
  assert.equal(again, a, 'the same promise while the first compile runs');
  assert.equal(compiles, 1);
  await a;
  assert.equal(memo.get(['polls'], 'kernel void k() {}', 'a.metal', compile('a.metal')), a, 'and after it resolved');
  // anything that differs is another compile: settings (CUDA's loop polls), file, source
  memo.get(['no-polls'], 'kernel void k() {}', 'a.metal', compile('a.metal'));
  memo.get(['polls'], 'kernel void k() {}', 'b.metal', compile('b.metal'));
  memo.get(['polls'], 'kernel void k2() {}', 'a.metal', compile('a.metal'));
  memo.get([], 'kernel void k() {}', 'a.metal', compile('a.metal'));
  assert.equal(compiles, 5);
});

test('FileCompileMemo: a compile that rejects is forgotten, so the next call compiles again', async () => {
  const memo = new FileCompileMemo();
  let compiles = 0;
  const failing = () => {
    compiles++;
    return Promise.reject(new Error('NVRTC failed'));
  };
  await assert.rejects(memo.get([], 'src', 'x.metal', failing), /NVRTC failed/);
  const ok = memo.get([], 'src', 'x.metal', () => {
    compiles++;
    return Promise.resolve(result('x.metal'));
  });
  assert.deepEqual(await ok, result('x.metal'));
  assert.equal(compiles, 2);
});

test('unitHash: the code, the headers and the settings, as the on-disk caches have always been keyed', () => {
  const code = 'extern "C" int f() { return 1; }';
  const settings = 'c++ -std=c++17 -O2 x64';
  const expected = createHash('sha256').update(code).update('\0').update(headerText()).update('\0').update(settings).digest('hex').slice(0, 32);
  assert.equal(unitHash(code, settings), expected);
  assert.notEqual(unitHash(code, `${settings} -g`), expected);
  assert.notEqual(unitHash(`${code}\n`, settings), expected);
});
