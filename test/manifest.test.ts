/**
 * Binding manifests through the command line: two engines' shader files (test/engines/,
 * never edited for the harness) verified as they bind and launch their kernels, planted
 * bugs caught, `moe init` proposing the specs, and every manifest error located.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { moe, ROOT, tmp } from './helpers.js';
import { MANIFEST_SCHEMA } from '../src/harness/manifest-schema.js';
import { parseExpr } from '../src/harness/expr.js';

const ENGINES = [
  { dir: 'llama-style', shader: 'kernels.metal', manifest: 'manifest.json' },
  { dir: 'moeflux-style', shader: 'shaders.metal', manifest: 'engine.manifest.json' },
];

interface Report {
  summary: { cases: number; passed: number; failed: number; errors: number; skipped: number };
  kernels: { name: string; spec?: string; status: string; manifest?: string; shader: string }[];
  manifest?: { file: string; shader: string };
  compiledOnly?: { entry: string }[];
  cases: { status: string; repro: string; skipReason?: string; kernel: string; error: string | null }[];
}

function copyEngine(dir: string): string {
  const t = tmp('engine');
  cpSync(join(ROOT, 'test', 'engines', dir), t, { recursive: true });
  return t;
}

test('the published schema is the one the loader validates with', () => {
  assert.deepEqual(JSON.parse(readFileSync(join(ROOT, 'docs', 'manifest.schema.json'), 'utf8')), MANIFEST_SCHEMA);
});

test('expressions: arithmetic, ceil/floor/min/max, integer division; nothing else runs', () => {
  assert.equal(parseExpr('ceil(out_dim / 8)').evaluate({ out_dim: 17 }), 3);
  assert.equal(parseExpr('n // 4 + min(a, 2) * max(1, b) - floor(2.5)').evaluate({ n: 11, a: 5, b: 3 }), 2 + 6 - 2);
  assert.equal(parseExpr('params.dim * 2').evaluate({ params: { dim: 5 } }), 10);
  assert.equal(parseExpr(256).evaluate({}), 256);
  assert.throws(() => parseExpr('process.exit(1)'), /not allowed|unknown function/);
  assert.throws(() => parseExpr('constructor("x")'), /unknown function/);
  assert.throws(() => parseExpr('"abc"'), /only numbers/);
  assert.throws(() => parseExpr('a = 1'), /parse|not allowed/);
  assert.throws(() => parseExpr('x * y').evaluate({ x: 1 }), /unknown name 'y'/);
});

for (const e of ENGINES) {
  test(`${e.dir}: every kernel of the file verified through its manifest, unedited`, () => {
    const m = join('test', 'engines', e.dir, e.manifest);
    const r = moe(['verify', '--manifest', m, '--backend', 'cpu', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(0, 2000));
    const rep = JSON.parse(r.stdout) as Report;
    assert.deepEqual(rep.manifest, { file: m, shader: e.shader });
    assert.ok(rep.kernels.length >= 5, `${rep.kernels.length} kernels`);
    for (const k of rep.kernels) {
      assert.equal(k.status, 'PASS', k.name);
      assert.equal(k.manifest, m);
      assert.equal(k.shader, e.shader);
      assert.ok(k.spec, `${k.name} names its spec`);
    }
    assert.equal(rep.summary.failed + rep.summary.errors, 0);
    assert.ok(rep.summary.passed >= 100, `${rep.summary.passed} passed`);
    assert.equal(rep.compiledOnly?.length, 1);
    for (const c of rep.cases) if (c.status !== 'SKIP') assert.match(c.repro, new RegExp(`--manifest ${m.replace(/[.]/g, '\\.')}`));
    // The table names the manifest and its shader too.
    const t = moe(['verify', '--manifest', m, '--backend', 'cpu', '--kernel', rep.kernels[0]?.name ?? '', '--inputs', rep.cases[0] ? 'normal' : '']);
    if (t.code === 0) assert.match(t.stdout, new RegExp(`manifest: ${m.replace(/[.]/g, '\\.')} \\(shader ${e.shader.replace('.', '\\.')}\\)`));
  });

  test(`${e.dir}: moe init proposes the manifest's spec for at least 80% of the kernels; never overwrites without --force`, () => {
    const t = copyEngine(e.dir);
    const out = join(t, 'proposed.json');
    const r = moe(['init', join(t, e.shader), '--output', out]);
    assert.equal(r.code, 0, r.stderr);
    const proposed = JSON.parse(readFileSync(out, 'utf8')) as { shader: string; kernels: Record<string, { spec: string | null }> };
    const truth = JSON.parse(readFileSync(join(t, e.manifest), 'utf8')) as { kernels: Record<string, { spec?: string | null }> };
    assert.equal(proposed.shader, e.shader);
    const entries = Object.keys(truth.kernels);
    assert.deepEqual(Object.keys(proposed.kernels).sort(), entries.sort());
    const right = entries.filter((k) => (proposed.kernels[k]?.spec ?? null) === (truth.kernels[k]?.spec ?? null)).length;
    assert.ok(right / entries.length >= 0.8, `${right}/${entries.length} right`);
    // The skeleton's TODOs are refused with their JSON path.
    const v = moe(['verify', '--manifest', out, '--backend', 'cpu']);
    assert.equal(v.code, 2);
    assert.match(v.stderr, /TODO of moe init/);
    if (e.dir === 'moeflux-style') {
      // A struct of the engine's own whose fields are named like the spec's params is proposed field by field.
      const q = proposed.kernels.dequant_matvec_4bit as unknown as { buffers: Record<string, unknown> };
      assert.deepEqual(q.buffers['5'], { struct: { out_dim: 'out_dim', in_dim: 'in_dim', group_size: 'group_size' } });
      assert.equal(q.buffers['0'], 'w');
      assert.equal(q.buffers['4'], 'y');
    }
    const again = moe(['init', join(t, e.shader), '--output', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists: pass --force/);
    assert.equal(moe(['init', join(t, e.shader), '--output', out, '--force']).code, 0);
  });
}

const BUGS: { dir: string; entry: string; from: string; to: string }[] = [
  { dir: 'llama-style', entry: 'kernel_mul_mv_q4_f32_r8', from: 'acc += (float((word >> (4 * j)) & 15u) * s + b) * src1[k * 8 + j];', to: 'acc += (float((word >> (4 * (7 - j))) & 15u) * s + b) * src1[k * 8 + j];' },
  { dir: 'llama-style', entry: 'kernel_mul_mv_q4_f32_batched', from: 'device const float * x = src1 + x_offs[t];', to: 'device const float * x = src1 + x_offs[0];' },
  { dir: 'llama-style', entry: 'kernel_rms_norm_f32', from: 'sum[0] / float(ne00) + eps', to: 'sum[0] / float(ne00)' },
  { dir: 'moeflux-style', entry: 'weighted_sum', from: 'acc += w[k] * expert_out[k * p.dim + gid];', to: 'acc += w[0] * expert_out[k * p.dim + gid];' },
  { dir: 'moeflux-style', entry: 'swiglu_fused_halves', from: 'gate_up[dim + gid]', to: 'gate_up[gid]' },
  { dir: 'moeflux-style', entry: 'dequant_matvec_4bit', from: 'const uint g = (k * 8) / p.group_size;', to: 'const uint g = k / p.group_size;' },
];

for (const b of BUGS) {
  test(`${b.dir}: a planted bug in ${b.entry} fails its verification`, () => {
    const t = copyEngine(b.dir);
    const e = ENGINES.find((x) => x.dir === b.dir) as (typeof ENGINES)[number];
    const file = join(t, e.shader);
    const src = readFileSync(file, 'utf8');
    assert.ok(src.includes(b.from));
    writeFileSync(file, src.replace(b.from, b.to));
    const r = moe(['verify', '--manifest', join(t, e.manifest), '--backend', 'cpu', '--kernel', b.entry, '--json']);
    assert.equal(r.code, 1, r.stderr);
    const rep = JSON.parse(r.stdout) as Report;
    assert.equal(rep.kernels[0]?.status, 'FAIL');
    assert.ok(rep.summary.failed + rep.summary.errors > 0);
  });
}

function withManifest(dir: string, edit: (m: Record<string, unknown> & { kernels: Record<string, Record<string, unknown>> }) => void): { file: string; t: string } {
  const t = copyEngine(dir);
  const e = ENGINES.find((x) => x.dir === dir) as (typeof ENGINES)[number];
  const file = join(t, e.manifest);
  const m = JSON.parse(readFileSync(file, 'utf8'));
  edit(m);
  writeFileSync(file, JSON.stringify(m));
  return { file, t };
}

test('schema errors name the JSON path', () => {
  const { file } = withManifest('llama-style', (m) => {
    (m.kernels.kernel_rms_norm_f32 as { launch: { mode: string } }).launch.mode = 'grid';
  });
  const r = moe(['verify', '--manifest', file, '--backend', 'cpu']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /kernels\.kernel_rms_norm_f32\.launch\.mode must be one of "threads", "threadgroups"/);
  const { file: f2 } = withManifest('llama-style', (m) => {
    (m.kernels.kernel_rms_norm_f32 as Record<string, unknown>).buffrs = {};
  });
  const r2 = moe(['verify', '--manifest', f2, '--backend', 'cpu']);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /kernels\.kernel_rms_norm_f32 has an unknown property 'buffrs'/);
});

test('a mismatch between manifest, spec and signature names all three', () => {
  const { file } = withManifest('llama-style', (m) => {
    const b = (m.kernels.kernel_rms_norm_f32 as { buffers: Record<string, unknown> }).buffers;
    b['2'] = 'w';
    b['4'] = { value: 'hidden' };
  });
  const r = moe(['verify', '--manifest', file, '--backend', 'cpu']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /manifest .*manifest\.json kernels\["kernel_rms_norm_f32"\]\.buffers\["2"\] \(spec rms-norm; shader .*kernels\.metal:\d+\): spec buffer 'w' is an array of float; the shader's buffer\(2\) 'ne00' \(constant uint ?&\) is not a pointer/);
  const { file: f2 } = withManifest('llama-style', (m) => {
    delete (m.kernels.kernel_rms_norm_f32 as { buffers: Record<string, unknown> }).buffers['4'];
  });
  const r2 = moe(['verify', '--manifest', f2, '--backend', 'cpu']);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /spec buffer 'w' \(input, float\[\]\) is bound to no index/);
  const { file: f3 } = withManifest('llama-style', (m) => {
    const b = (m.kernels.kernel_mul_mv_q4_f32_r8 as { buffers: Record<string, unknown> }).buffers;
    b['2'] = 'scales';
  });
  const r3 = moe(['verify', '--manifest', f3, '--backend', 'cpu']);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /holds bfloat data, the shader's buffer\(2\) 'scales' \(device const ushort ?\*\) takes it as raw ushort words: say so/);
  const { file: f4 } = withManifest('moeflux-style', (m) => {
    (m.kernels.weighted_sum as { buffers: Record<string, unknown> }).buffers['0'] = { struct: { top_k: 'top_k', hidden: 'hidden' } };
  });
  const r4 = moe(['verify', '--manifest', f4, '--backend', 'cpu']);
  assert.equal(r4.code, 2);
  assert.match(r4.stderr, /WeightedSumParams \{uint top_k; uint dim\} \(8 bytes\) needs dim and has no field hidden/);
});

test('without a manifest, the signature check explains the layout it expected and found', () => {
  const r = moe(['verify', '--kernel', 'gelu-mul', '--shader', 'test/engines/moeflux-style/shaders.metal', '--entry', 'gelu_gate_mul', '--backend', 'cpu']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /layout: the spec passes the param struct FusedGeluMulParams \{uint n_elements\} \(4 bytes\) here, the shader one u32 \(4 bytes\) scalar/);
  assert.match(r.stderr, /moe init/);
  const r2 = moe(['verify', '--kernel', 'residual-add', '--shader', 'test/engines/llama-style/kernels.metal', '--entry', 'kernel_add_f32_4', '--backend', 'cpu']);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /layout: the spec's elements are f32 \(4 bytes\) each, the shader reads 4 × f32 \(16 bytes\) per element/);
});

test('float4 buffers: cases whose length is not a whole number of vectors are skipped with the reason', () => {
  const r = moe(['verify', '--manifest', 'test/engines/llama-style/manifest.json', '--kernel', 'kernel_add_f32_4', '--elements', '8,10', '--backend', 'cpu', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as Report;
  assert.ok(rep.cases.some((c) => c.status === 'PASS'));
  const skipped = rep.cases.filter((c) => c.status === 'SKIP');
  assert.ok(skipped.length > 0);
  assert.match(skipped[0]?.skipReason ?? '', /not a whole number of 4-lane vectors/);
});

test('bench --manifest times an entry as the engine launches it', () => {
  const r = moe(['bench', '--manifest', 'test/engines/llama-style/manifest.json', '--kernel', 'kernel_add_f32_4', '--elements', '4096', '--backend', 'cpu', '--min-samples', '3', '--max-time', '0.2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { manifest?: { file: string; shader: string }; cases: unknown[] };
  assert.deepEqual(rep.manifest, { file: 'test/engines/llama-style/manifest.json', shader: 'kernels.metal' });
  assert.equal(rep.cases.length, 1);
  assert.ok(existsSync(join(ROOT, 'docs', 'manifest.md')));
});

test('dispatch --manifest: the engine\'s kernels replace ours in the layer, and a planted bug is named by its stage', () => {
  const args = ['--tokens', '2', '--hidden', '64', '--intermediate', '32', '--experts', '8', '--top-k', '2', '--backend', 'cpu', '--json'];
  const m = 'test/engines/moeflux-style/engine.manifest.json';
  const r = moe(['dispatch', '--manifest', m, ...args]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { manifest?: { file: string; shader: string }; pass: boolean; stages: { stage: string; kernels: string[] }[] };
  assert.deepEqual(rep.manifest, { file: m, shader: 'shaders.metal' });
  const kernels = rep.stages.flatMap((s) => s.kernels);
  assert.ok(kernels.includes('softmax_topk') && kernels.includes('gelu_gate_mul'), kernels.join(', '));
  const t = copyEngine('moeflux-style');
  const file = join(t, 'shaders.metal');
  writeFileSync(file, readFileSync(file, 'utf8').replace('out[gid] = gelu_tanh(gate[gid]) * up[gid];', 'out[gid] = gelu_tanh(gate[gid]) + up[gid];'));
  const bad = moe(['dispatch', '--manifest', join(t, 'engine.manifest.json'), ...args]);
  assert.equal(bad.code, 1, bad.stderr);
  const badRep = JSON.parse(bad.stdout) as { firstDivergence: string | null };
  assert.equal(badRep.firstDivergence, 'GELU·up');
});

test('kernel by kernel: an entry that does not compile is reported with its line, the others run, exit 1', () => {
  const t = copyEngine('moeflux-style');
  const file = join(t, 'shaders.metal');
  writeFileSync(file, readFileSync(file, 'utf8').replace('out[gid] = gelu_tanh(gate_up[gid]) * gate_up[dim + gid];', 'out[gid] = gelu_tanh(gate_up[gid]) * gate_up[dim + gid] + no_such_name;'));
  const r = moe(['verify', '--manifest', join(t, 'engine.manifest.json'), '--backend', 'cpu', '--kernel', 'swiglu_fused_halves,weighted_sum', '--json']);
  assert.equal(r.code, 1, r.stderr);
  const rep = JSON.parse(r.stdout) as Report;
  const broken = rep.cases.filter((c) => c.kernel === 'swiglu_fused_halves');
  assert.ok(broken.length > 0 && broken.every((c) => c.status === 'ERROR'));
  assert.match(broken[0]?.error ?? '', /shaders\.metal:\d+/);
  assert.equal(rep.kernels.find((k) => k.name === 'weighted_sum')?.status, 'PASS');
});
