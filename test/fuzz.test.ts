/**
 * The MSL front end under fuzzing (issue 7): a few hundred mutated real
 * shaders through parseMsl and every emitter must each end in output or an
 * MslError (`npm run fuzz` runs 10,000 and more: scripts/fuzz-msl.ts). The
 * harness itself is checked too: an exception or a hang in a front end is
 * reported, with the input saved, and the run goes on after it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fuzz, loadCorpus, makeCase } from '../scripts/fuzz-msl.js';
import { tmp } from './helpers.js';

test('fuzz: 400 mutated shaders through parseMsl and the emitters: output or MslError, never another exception or a hang', async () => {
  const r = await fuzz({ cases: 400, seed: 20260101, caseTimeoutMs: 5000 });
  const detail = r.failures.map((f) => `case ${f.index} (${f.kind}) from ${f.base}: ${f.mutations.join('; ')}\n${f.error}`).join('\n\n');
  assert.equal(r.failures.length, 0, detail);
  assert.equal(r.outputs + r.mslErrors, 400);
  assert.ok(r.outputs > 20, `only ${r.outputs} cases reached the emitters`);
  assert.ok(r.mslErrors > 20, `only ${r.mslErrors} cases ended in an MslError`);
});

test('fuzz: cases are rebuilt identically from the seed and the index', () => {
  const corpus = loadCorpus();
  assert.ok(corpus.length > 10);
  assert.ok(corpus.some((c) => c.file.startsWith('shaders/')) && corpus.some((c) => c.file.startsWith('test/shaders/')));
  for (const i of [0, 1, 77, 9999]) {
    const a = makeCase(corpus, 5, i);
    const b = makeCase(corpus, 5, i);
    assert.deepEqual(a, b);
    assert.ok(a.mutations.length >= 1 && a.mutations.length <= 4);
  }
  assert.notEqual(makeCase(corpus, 5, 1).source, makeCase(corpus, 6, 1).source);
});

test('fuzz: the harness reports an exception and a hang of the front end, saves the input and goes on', async () => {
  // A stand-in front end: throws a TypeError, loops forever, or ends normally, by the input's length.
  const front = `data:text/javascript,${encodeURIComponent(`
    export class MslError extends Error {}
    export function parseMsl(s) {
      const k = s.length % 7;
      if (k === 0) throw new TypeError('boom from the stand-in');
      if (k === 1) for (;;) {}
      if (k === 2) throw new MslError('a located error');
      return { s };
    }
    export function emitCpp(p) { return p.s; }
  `)}`;
  const out = tmp('fuzz');
  const r = await fuzz({ cases: 25, seed: 3, caseTimeoutMs: 300, outDir: out, frontUrl: front });
  const corpus = loadCorpus();
  const expected = Array.from({ length: 25 }, (_, i) => makeCase(corpus, 3, i).source.length % 7);
  const hangs = r.failures.filter((f) => f.kind === 'hang').map((f) => f.index).sort((a, b) => a - b);
  const exceptions = r.failures.filter((f) => f.kind === 'exception').map((f) => f.index).sort((a, b) => a - b);
  assert.deepEqual(hangs, expected.flatMap((k, i) => (k === 1 ? [i] : [])));
  assert.deepEqual(exceptions, expected.flatMap((k, i) => (k === 0 ? [i] : [])));
  assert.equal(r.mslErrors, expected.filter((k) => k === 2).length);
  assert.equal(r.outputs, expected.filter((k) => k > 2).length);
  for (const f of r.failures) {
    assert.ok(f.saved && existsSync(f.saved));
    const saved = readFileSync(f.saved, 'utf8');
    assert.match(saved, new RegExp(`^// moe fuzz-msl: seed 3, case ${f.index}, ${f.kind}`));
    const utf8 = new TextDecoder().decode(new TextEncoder().encode(makeCase(corpus, 3, f.index).source));
    assert.ok(saved.endsWith(utf8), `${f.saved} does not end with the input`);
  }
  assert.match(r.failures.find((f) => f.kind === 'exception')?.error ?? '', /TypeError: boom from the stand-in/);
});
