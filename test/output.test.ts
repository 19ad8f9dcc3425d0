/**
 * Output a CI owner can trust and a person can read: no silent PASS, flags
 * and environment values that do not apply are errors, terminals of width 0
 * never hang, tables fit the width, CI artifacts are always written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { BIN, moe, ROOT, shader, tmp } from './helpers.js';
import { SPECS } from '../src/kernels/index.js';
import { buildCases } from '../src/kernels/select.js';
import { shapeLabel } from '../src/kernels/spec.js';
import { caseName, renderText, type VerifyReport } from '../src/report/verify.js';
import type { CaseResult } from '../src/harness/run.js';
import { spinnerAllowed, terminalWidth } from '../src/cli/terminal.js';

const smallLayer = ['dispatch', '--backend', 'cpu', '--hidden', '128', '--intermediate', '64', '--experts', '4', '--top-k', '2', '--tokens', '2'];

interface Junit {
  testsuites: { tests: string; errors: string; testsuite: { name: string; testcase: { name: string; error?: { message: string; type: string }; failure?: unknown; 'system-out'?: string }[] }[] };
}
function readJunit(file: string): Junit {
  const xml = readFileSync(file, 'utf8');
  assert.equal(XMLValidator.validate(xml), true);
  return new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['testsuite', 'testcase'].includes(n) }).parse(xml) as Junit;
}

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

test('a terminal of width 0 (a pseudo-terminal through script, stdin not a tty): no spinner, the run ends and passes', { skip: !hasScript && 'util-linux script not found', timeout: 120_000 }, () => {
  // `timeout -s KILL` inside the pty: a spinner that loops forever cannot outlive the test
  const cmd = `timeout -s KILL 90 ${process.execPath} ${BIN} verify --kernel softmax-topk --backend cpu --tokens 2 --experts 60 --top-k 4`;
  const t0 = Date.now();
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 100_000, killSignal: 'SIGKILL', env: { ...process.env, NO_COLOR: '1', COLUMNS: '' } });
  assert.equal(r.status, 0, `exit ${r.status} after ${Date.now() - t0} ms\n${r.stdout.slice(-2000)}\n${r.stderr}`);
  assert.match(r.stdout, /^PASS: \d+ passed, 0 failed/m);
  // a spinner redraws with cursor codes (ESC [ ... G / K / A); none may appear
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(r.stdout, /\u001b\[\d*[GKA]/);
  assert.ok(r.stdout.length < 20_000, `output of ${r.stdout.length} bytes`);
});

test('spinnerAllowed: only when both streams are terminals that know their width; terminalWidth honours COLUMNS', () => {
  const tty = { isTTY: true, columns: 100 };
  assert.equal(spinnerAllowed(tty, tty, {}), true);
  assert.equal(spinnerAllowed(tty, { isTTY: true, columns: 0 }, {}), false);
  assert.equal(spinnerAllowed(tty, { isTTY: true }, {}), false);
  assert.equal(spinnerAllowed({ isTTY: false }, tty, {}), false);
  assert.equal(spinnerAllowed(tty, { isTTY: false, columns: 100 }, {}), false);
  assert.equal(spinnerAllowed(tty, tty, { TERM: 'dumb' }), false);
  assert.equal(terminalWidth({ COLUMNS: '100' }, { isTTY: true, columns: 200 }), 100);
  assert.equal(terminalWidth({}, { isTTY: true, columns: 90 }), 90);
  assert.equal(terminalWidth({ COLUMNS: 'abc' }, { isTTY: true, columns: 0 }), 120);
  assert.equal(terminalWidth({}, { isTTY: false }), 120);
});

test('dispatch --shader whose kernels no stage uses: exit 2 naming what the layer runs, reports still written', () => {
  const dir = tmp('unused');
  const xml = join(dir, 'r.xml');
  const file = shader('dispatch', 'unused.metal');
  const r = moe([...smallLayer, '--shader', file, '--junit', xml]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /none of its kernels ran: it defines my_scale_f32, and this layer \(batched\) runs .*fused_gelu_mul/);
  const doc = readJunit(xml);
  const err = doc.testsuites.testsuite[0]?.testcase.find((c) => c.error);
  assert.equal(err?.error?.type, 'unused-shader');
  const json = moe([...smallLayer, '--shader', file, '--json']);
  assert.equal(json.code, 2);
  const rep = JSON.parse(json.stdout) as { errors: { type: string }[]; userShader: string };
  assert.equal(rep.errors[0]?.type, 'unused-shader');
  assert.equal(rep.userShader, file);
});

test('dispatch: every stage says whose kernel ran, in the table, JSON, JUnit and Markdown', () => {
  const file = shader('dispatch', 'bad_gelu.metal');
  const table = moe([...smallLayer, '--shader', file], { COLUMNS: '200' });
  assert.equal(table.code, 1, table.stderr);
  assert.match(table.stdout, /│ GELU·up +│ fused_gelu_mul +│ bad_gelu\.metal +│/);
  assert.match(table.stdout, /│ router +│ moe_expert_matvec_f32 +│ ours +│/);
  const narrow = moe([...smallLayer, '--shader', file], { COLUMNS: '80' });
  for (const l of narrow.stdout.trimEnd().split('\n')) assert.ok([...l].length <= 80, `wider than 80: ${l}`);
  assert.match(narrow.stdout, /│ GELU·up +│.*bad_gelu\.metal/);
  const json = JSON.parse(moe([...smallLayer, '--shader', file, '--json']).stdout) as { stages: { stage: string; sources: { entry: string; from: string; file: string }[] }[] };
  const gelu = json.stages.find((s) => s.stage === 'GELU·up');
  assert.deepEqual(gelu?.sources, [{ entry: 'fused_gelu_mul', from: 'shader', file }]);
  assert.equal(json.stages.find((s) => s.stage === 'router')?.sources[0]?.from, 'ours');
  const dir = tmp('from');
  const xml = join(dir, 'r.xml');
  const md = moe([...smallLayer, '--shader', file, '--markdown', '--junit', xml]);
  assert.match(md.stdout, /^\| GELU·up \| `fused_gelu_mul` \|.*\| bad_gelu\.metal \|$/m);
  assert.match(md.stdout, /^\| router \|.*\| ours \|$/m);
  const cases = readJunit(xml).testsuites.testsuite[0]?.testcase ?? [];
  assert.match(String(cases.find((c) => c.name.startsWith('GELU·up'))?.['system-out']), /fused_gelu_mul: the --shader file's \(.*bad_gelu\.metal\)/);
  assert.match(String(cases.find((c) => c.name.startsWith('router'))?.['system-out']), /moe_expert_matvec_f32: ours \(shaders\//);
});

test('dispatch: a --shader kernel that does not compile is an <error> testcase, JSON and Markdown written, exit 2', () => {
  const dir = tmp('dispatch-broken');
  const xml = join(dir, 'r.xml');
  const r = moe([...smallLayer, '--shader', shader('dispatch', 'broken_gelu.metal'), '--junit', xml, '--markdown']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stdout, /^## moe dispatch: ❌ ERROR/m);
  assert.match(r.stdout, /broken_gelu\.metal:11:\d+: error: .*undefined_name/);
  const err = readJunit(xml).testsuites.testsuite[0]?.testcase.find((c) => c.error);
  assert.equal(err?.error?.type, 'compile');
  assert.match(err?.name ?? '', /^GELU·up \(fused_gelu_mul\)/);
  const json = moe([...smallLayer, '--shader', shader('dispatch', 'broken_gelu.metal'), '--json']);
  assert.equal(json.code, 2);
  assert.equal((JSON.parse(json.stdout) as { errors: { stage: string }[] }).errors[0]?.stage, 'GELU·up');
});

test('a shape flag that no selected kernel has is an error naming the flags that apply', () => {
  const r = moe(['verify', '--kernel', 'gelu-mul', '--hidden', '64', '--backend', 'cpu']);
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.stderr, /--hidden does not apply to gelu-mul \(its shape flags: --elements\)/);
  const b = moe(['bench', '--kernel', 'gelu-mul', '--hidden', '64', '--backend', 'cpu']);
  assert.equal(b.code, 2, b.stdout);
  assert.match(b.stderr, /--hidden does not apply to gelu-mul/);
  // a flag that applies to some of the selected kernels: a warning naming the others
  const some = moe(['verify', '--kernel', 'gelu-mul,softmax-topk', '--tokens', '2', '--backend', 'cpu']);
  assert.equal(some.code, 0, some.stderr);
  assert.match(some.stderr, /--tokens does not apply to 1 of the selected kernels \(gelu-mul\)/);
});

test('MOE_* environment values that do not parse are errors naming the variable', () => {
  for (const [env, re] of [
    [{ MOE_MEMORY_LIMIT: 'abc' }, /MOE_MEMORY_LIMIT: 'abc' is not a size/],
    [{ MOE_METAL_FAST_MATH: 'yes' }, /MOE_METAL_FAST_MATH: 'yes' is not 0 or 1/],
    [{ MOE_NATIVE_ADDON: '/nonexistent/addon.node' }, /MOE_NATIVE_ADDON: \/nonexistent\/addon\.node does not exist/],
    [{ MOE_SEED: 'abc' }, /Expected an integer but received: abc/],
  ] as const) {
    const r = moe(['verify', '--kernel', 'gelu-mul', '--backend', 'cpu'], env);
    assert.equal(r.code, 2, `${JSON.stringify(env)}: ${r.stdout}`);
    assert.match(r.stderr, re);
  }
  assert.equal(moe(['verify', '--kernel', 'gelu-mul', '--backend', 'cpu', '--elements', '64'], { MOE_MEMORY_LIMIT: '512M' }).code, 0);
});

test('verify by default: a row per kernel and the failing cases in full, fitted to COLUMNS; --verbose adds every case', () => {
  const bad = shader('softmax-topk', 'no_renorm.metal');
  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', bad, '--tokens', '2'], { COLUMNS: '72' });
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  for (const l of lines) assert.ok([...l].length <= 72, `wider than 72: ${l}`);
  assert.match(lines[0] ?? '', /^moe verify: backend cpu \(.*\), seed 42; shader/);
  assert.match(r.stdout, /no_renorm\.metal/);
  assert.match(r.stdout, /│ softmax-topk +│ +5 │ +1 │ +4 │/);
  assert.match(r.stdout, /^Failures:$/m);
  assert.match(r.stdout, /reproduce: npx moe verify --kernel softmax-topk/);
  assert.doesNotMatch(r.stdout, /│ shape /, 'no per-case table by default');
  const v = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', bad, '--tokens', '2', '--verbose'], { COLUMNS: '72' });
  assert.match(v.stdout, /│ shape /);
  for (const l of v.stdout.trimEnd().split('\n')) assert.ok([...l].length <= 72, `wider than 72: ${l}`);
});

test('an all-PASS verify of every kernel prints fewer than 80 lines, none wider than 100, at COLUMNS=100 (the renderer)', () => {
  const cases: CaseResult[] = [];
  const kernels: VerifyReport['kernels'] = [];
  for (const spec of SPECS) {
    for (const c of buildCases(spec, {}, undefined, undefined)) {
      cases.push({ kernel: spec.name, entry: spec.entry, origin: c.origin, inputSet: c.inputSet, params: c.params, shape: shapeLabel(spec, c.params), seed: 42, status: 'PASS', outputs: [], error: null, repro: '', ms: 1 });
    }
    kernels.push({ name: spec.name, entry: spec.entry, shader: `shaders/${spec.shader}`, sourceHash: 'x', math: spec.math, status: 'PASS' });
  }
  const report = { schema: 'moe-kernels/verify-report@1', tool: { name: 'moe-kernels', version: '0' }, backend: 'cpu', device: { backend: 'cpu', name: 'cpu', details: {} }, seed: 42, startedAt: '', durationMs: 1, userShader: null, summary: { cases: cases.length, passed: cases.length, failed: 0, errors: 0, skipped: 0, kernels: kernels.length, kernelErrors: 0 }, kernels, cases } as VerifyReport;
  const text = renderText(report, { color: false, width: terminalWidth({ COLUMNS: '100' }), wrapWidth: 100, verbose: false });
  const lines = text.split('\n');
  assert.ok(lines.length < 80, `${lines.length} lines`);
  for (const l of lines) assert.ok([...l].length <= 100, `wider than 100: ${l}`);
});

test('a shader that does not compile: exit 2, and JUnit (an <error> testcase with the message), JSON and Markdown are written', () => {
  const dir = tmp('verify-broken');
  const file = join(dir, 'broken.metal');
  writeFileSync(
    file,
    [
      '#include <metal_stdlib>',
      'using namespace metal;',
      'kernel void fused_gelu_mul(device const float* g [[buffer(0)]], device const float* u [[buffer(1)]],',
      '  device float* o [[buffer(2)]], constant uint& n [[buffer(3)]], uint i [[thread_position_in_grid]]) {',
      '  o[i] = undefined_name;',
      '}',
      '',
    ].join('\n'),
  );
  const xml = join(dir, 'r.xml');
  const r = moe(['verify', '--kernel', 'gelu-mul', '--backend', 'cpu', '--shader', file, '--junit', xml, '--markdown']);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /broken\.metal:5:\d+: error: .*undefined_name/);
  assert.match(r.stdout, /^## moe verify: ❌ ERROR/m);
  const doc = readJunit(xml);
  assert.equal(doc.testsuites.errors, '1');
  const tc = doc.testsuites.testsuite[0]?.testcase[0];
  assert.equal(tc?.error?.type, 'compile');
  assert.match(tc?.error?.message ?? '', /broken\.metal:5:\d+: error/);
  const json = moe(['verify', '--kernel', 'gelu-mul', '--backend', 'cpu', '--shader', file, '--json']);
  assert.equal(json.code, 2);
  const rep = JSON.parse(json.stdout) as VerifyReport;
  assert.equal(rep.kernels[0]?.status, 'ERROR');
  assert.equal(rep.summary.kernelErrors, 1);
});

test('output paths are checked before any kernel runs', () => {
  const t0 = Date.now();
  const r = moe(['verify', '--backend', 'cpu', '--junit', '/nonexistent/x.xml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--junit: cannot write \/nonexistent\/x\.xml: the folder \/nonexistent does not exist/);
  assert.equal(r.stdout, '', 'nothing ran');
  assert.ok(Date.now() - t0 < 30_000, 'refused at once, not after the run');
  const dir = tmp('junit-dir');
  const d = moe([...smallLayer, '--junit', dir]);
  assert.equal(d.code, 2);
  assert.match(d.stderr, /it is a directory/);
  assert.equal(existsSync(join(dir, 'x')), false);
});

test('test names are unique: a case shared by two presets runs once and names both', () => {
  for (const spec of SPECS) {
    const cases = buildCases(spec, {}, undefined, undefined);
    const names = cases.map((c) => caseName({ shape: shapeLabel(spec, c.params), inputSet: c.inputSet, origin: c.origin } as CaseResult));
    assert.equal(new Set(names).size, names.length, `${spec.name}: ${names.filter((n, i) => names.indexOf(n) !== i).join('; ')}`);
    const keys = cases.map((c) => JSON.stringify([c.params, c.inputSet]));
    assert.equal(new Set(keys).size, keys.length, `${spec.name}: a case runs twice`);
  }
  const gather = SPECS.find((s) => s.name === 'gather-topk-weights');
  assert.ok(gather);
  const shared = buildCases(gather, {}, undefined, undefined).filter((c) => c.origin.includes(' + '));
  assert.ok(shared.some((c) => c.origin === 'qwen3-30b-a3b + gemma-4-26b-a4b'), shared.map((c) => c.origin).join('; '));
  // --preset of either model still selects the shared case
  for (const preset of ['qwen3-30b-a3b', 'gemma-4-26b-a4b']) {
    assert.ok(buildCases(gather, {}, undefined, preset).some((c) => c.origin === 'qwen3-30b-a3b + gemma-4-26b-a4b'), preset);
  }
});

test('SIGTERM ends a run at once and prints what finished', { timeout: 120_000 }, async () => {
  const dir = tmp('sigterm');
  const xml = join(dir, 'r.xml');
  const child = spawn(process.execPath, [BIN, 'verify', '--backend', 'cpu', '--junit', xml], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((res) => setTimeout(res, 8000));
  const t0 = Date.now();
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((res) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (c) => {
      clearTimeout(hard);
      res(c);
    });
  });
  assert.equal(code, 143, out.slice(-2000));
  assert.ok(Date.now() - t0 < 15_000, `ended ${Date.now() - t0} ms after SIGTERM`);
  const m = /^INTERRUPTED \(SIGTERM\): (\d+) passed/m.exec(out);
  assert.ok(m, out.slice(-2000));
  // what finished is listed (the first kernel, once any case passed: a cold compile cache may take the 8 s)
  if (Number(m[1]) > 0) assert.match(out, /│ softmax-topk +│/);
  assert.ok(existsSync(xml), 'the JUnit file holds what finished');
});
