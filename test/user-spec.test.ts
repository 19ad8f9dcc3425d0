/**
 * User kernel specs (--spec FILE) through the command line, the example under
 * examples/rms-norm-spec, `moe kernels NAME`, the launch hint of outputs never
 * written, and the public API's shape checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineSpec, f32In, f32Out, packStruct, structLayout, type SpecDefinition } from '../src/index.js';
import { moe, ROOT, tmp } from './helpers.js';

const EXAMPLE = join('examples', 'rms-norm-spec');
const SPEC = join(EXAMPLE, 'spec.ts');
const SHADER = join(EXAMPLE, 'rms_norm.metal');

/** A copy of the example shader with one edit; fails the test if the edit does not apply. */
function exampleVariant(name: string, from: string, to: string): string {
  const src = readFileSync(join(ROOT, SHADER), 'utf8');
  assert.ok(src.includes(from), `the example shader contains '${from}'`);
  const file = join(tmp('userspec'), name);
  writeFileSync(file, src.replace(from, to));
  return file;
}

test('the example user spec (TypeScript, through tsx) verifies its own shader: every case PASS', () => {
  const r = moe(['verify', '--spec', SPEC, '--backend', 'cpu', '--verbose']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /example-rms-norm \(example_rms_norm\): (\d+)\/\1 PASS/);
  assert.match(r.stdout, /^PASS: 12 passed, 0 failed/m);
});

test('--spec with --shader: the example passes, a planted bug (mean over dim − 1) FAILs with a repro that names the spec file', () => {
  const ok = moe(['verify', '--spec', SPEC, '--shader', SHADER, '--backend', 'cpu', '--inputs', 'normal']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const bug = exampleVariant('rms_norm_bug.metal', 'partial[0] / float(dim) + eps', 'partial[0] / float(dim - 1) + eps');
  const r = moe(['verify', '--spec', SPEC, '--kernel', 'example-rms-norm', '--shader', bug, '--backend', 'cpu', '--inputs', 'normal']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /FAIL/);
  assert.match(r.stdout, /reproduce: npx moe verify --spec examples\/rms-norm-spec\/spec\.ts --kernel example-rms-norm --rows \d+/);
});

test('outputs never written: a hint with the spec launch at that shape and the manifest fields that change it', () => {
  const dir = tmp('unwritten');
  const file = join(dir, 'one_per_thread.metal');
  // Written for threadgroups of `dim` threads (one element each): under the spec's 128-thread groups, most of y stays unwritten.
  writeFileSync(
    file,
    `#include <metal_stdlib>
using namespace metal;
kernel void example_rms_norm(device const float* x [[buffer(0)]], device const float* weight [[buffer(1)]],
    device float* y [[buffer(2)]], constant uint& dim [[buffer(3)]], constant float& eps [[buffer(4)]],
    threadgroup float* partial [[threadgroup(0)]], uint row [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
    if (tid == 0) {
        float ss = 0.0f;
        for (uint j = 0; j < dim; ++j) ss += x[row * dim + j] * x[row * dim + j];
        partial[0] = rsqrt(ss / float(dim) + eps);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid < dim) y[row * dim + tid] = x[row * dim + tid] * partial[0] * weight[tid];
}
`,
  );
  const r = moe(['verify', '--spec', SPEC, '--shader', file, '--backend', 'cpu', '--inputs', 'normal']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /never written/);
  assert.match(
    r.stdout,
    /hint \(example-rms-norm\): outputs never written: the kernel may be launched differently from the spec\. The spec launches example_rms_norm with dispatchThreadgroups: grid \(3, 1, 1\) × threadgroup \(128, 1, 1\) with threadgroup memory 512 B at rows=3 hidden=2048/,
  );
  assert.match(r.stdout, /moe kernels example-rms-norm --spec examples\/rms-norm-spec\/spec\.ts/);
  assert.match(r.stdout, /--manifest FILE\): launch\.mode, launch\.grid, launch\.threadgroup/);
  const j = moe(['verify', '--spec', SPEC, '--shader', file, '--backend', 'cpu', '--inputs', 'normal', '--json']);
  const doc = JSON.parse(j.stdout) as { kernels: { hint?: string }[] };
  assert.match(doc.kernels[0]?.hint ?? '', /dispatchThreadgroups/);
  // A kernel that writes everything gets no hint.
  const ok = moe(['verify', '--spec', SPEC, '--backend', 'cpu', '--inputs', 'normal', '--json']);
  assert.equal((JSON.parse(ok.stdout) as { kernels: { hint?: string }[] }).kernels[0]?.hint, undefined);
});

/** A directory with a tiny doubling kernel and a spec for it written as `body` (the file is `name`). */
function userDir(name: string, body: string): string {
  const dir = tmp('specfile');
  writeFileSync(
    join(dir, 'scale.metal'),
    `#include <metal_stdlib>
using namespace metal;
kernel void user_scale(device const float* x [[buffer(0)]], device float* y [[buffer(1)]], constant uint& n [[buffer(2)]],
                       uint i [[thread_position_in_grid]]) {
    if (i < n) y[i] = 2.0f * x[i];
}
`,
  );
  writeFileSync(join(dir, name), body);
  return join(dir, name);
}

const SCALE_SPEC = `{
  name: 'user-scale', entry: 'user_scale', shader: './scale.metal', description: 'y = 2x', math: 'y[i] = 2·x[i]',
  params: [{ name: 'n_elements', flag: 'elements', description: 'elements' }],
  defaults: { n_elements: 1000 },
  inputSets: [{ name: 'ramp', description: 'x[i] = i - 500' }],
  buffers: [
    { index: 0, name: 'x', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: (p) => p.n_elements },
    { index: 1, name: 'y', kind: 'array', mslType: 'float', dtype: 'f32', access: 'write', length: (p) => p.n_elements },
    { index: 2, name: 'n', kind: 'scalar', mslType: 'uint', value: (p) => p.n_elements },
  ],
  validate: () => null,
  inputs: (p) => ({ x: Float32Array.from({ length: p.n_elements }, (_, i) => i - 500) }),
  launch: (p) => ({ mode: 'threads', grid: [p.n_elements, 1, 1], threadgroup: [64, 1, 1], threadgroupMemory: [] }),
  reference: (p, inp) => ({ outputs: { y: inp.x.map((v) => 2 * v) }, rules: { y: { kind: 'float', atol: 0, rtol: 0, minCosine: 0.99999, maxRelMaxAbs: 0, reason: 'doubling is exact' } } }),
  cost: (p) => ({ bytes: 8 * p.n_elements, flops: p.n_elements }),
}`;

test('a CommonJS spec file (module.exports of named specs, no import of the package): verify by entry name, and bench', () => {
  const file = userDir('specs.cjs', `const scale = ${SCALE_SPEC};\nmodule.exports = { scale };\n`);
  const r = moe(['verify', '--spec', file, '--kernel', 'user_scale', '--backend', 'cpu', '--verbose']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /user-scale \(user_scale\): 1\/1 PASS/);
  const b = moe(['bench', '--spec', file, '--backend', 'cpu', '--max-time', '0.05', '--min-samples', '2', '--warmup', '0', '--json']);
  assert.equal(b.code, 0, b.stdout + b.stderr);
  const doc = JSON.parse(b.stdout) as { cases: { kernel: string }[] };
  assert.deepEqual(doc.cases.map((c) => c.kernel), ['user-scale']);
});

test('an ESM spec file with a default array; user specs are selected with --kernel among the catalog', () => {
  const file = userDir('specs.mjs', `export default [${SCALE_SPEC}];\n`);
  const r = moe(['verify', '--spec', file, '--kernel', 'user-scale,gelu-mul', '--elements', '300', '--backend', 'cpu', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as { kernels: { name: string; shader: string }[] };
  assert.deepEqual(doc.kernels.map((k) => k.name), ['user-scale', 'gelu-mul']);
  assert.match(doc.kernels[0]?.shader ?? '', /scale\.metal$/);
});

test('--spec errors: a name clash with the catalog, a malformed spec (every problem named), no spec exported, a missing file; exit 2', () => {
  const clash = userDir('clash.mjs', `export const s = { ...${SCALE_SPEC}, name: 'gelu-mul' };\n`);
  const bad = userDir('bad.mjs', `const s = ${SCALE_SPEC};\nexport default { ...s, reference: undefined, buffers: [s.buffers[0], { ...s.buffers[1], index: 0 }], defaults: {} };\n`);
  const none = userDir('none.mjs', 'export const answer = 42;\n');
  const cases: [string[], RegExp][] = [
    [['verify', '--spec', clash, '--backend', 'cpu'], /spec 'gelu-mul' \(entry user_scale\) clashes with the catalog's 'gelu-mul' \(entry fused_gelu_mul\)/],
    [['verify', '--spec', bad, '--backend', 'cpu'], /spec #1 'user-scale' is not a valid kernel spec:\n.*- reference: a function, got undefined\n.*- defaults\.n_elements: a number is needed for every param\n.*- buffers\[1\] 'y': buffer\(0\) is declared twice/],
    [['verify', '--spec', none, '--backend', 'cpu'], /exports no kernel spec/],
    [['verify', '--spec', '/nonexistent/specs.js', '--backend', 'cpu'], /--spec: file not found: \/nonexistent\/specs\.js/],
    [['kernels', '--spec', clash], /clashes with the catalog's 'gelu-mul'/],
  ];
  for (const [args, re] of cases) {
    const r = moe(args);
    assert.equal(r.code, 2, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
  }
});

test('moe kernels NAME: launch mode and geometry, struct field offsets, threadgroup memory, every buffer', () => {
  const r = moe(['kernels', 'gelu-mul']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /mode: threads — dispatchThreads \(grid counts threads\)/);
  assert.match(r.stdout, /at defaults \(elements=768\): grid \(768, 1, 1\) × threadgroup \(256, 1, 1\)/);
  assert.match(r.stdout, /grid changes with n_elements; threadgroup fixed/);
  assert.match(r.stdout, /buffer\(3\) params: constant FusedGeluMulParams& \(4 bytes\)\n\s+\+0 uint n_elements = 768/);
  const j = moe(['kernels', 'moe_softmax_topk_f32', '--json']);
  assert.equal(j.code, 0, j.stderr);
  type Listing = {
    name: string;
    buffers: { index: number; kind: string; fields?: { name: string; offset: number }[] }[];
    threadgroupMemory: { bytes: number }[];
    launch: { mode: string; at: { grid: number[]; threadgroup: number[] }[]; dependsOn: { grid: string[]; threadgroupMemory: string[] } };
  };
  const [k] = JSON.parse(j.stdout) as Listing[];
  assert.equal(k?.name, 'softmax-topk');
  assert.deepEqual(k?.buffers[0]?.fields?.map((f) => [f.name, f.offset]), [['n_tokens', 0], ['n_experts', 4], ['top_k', 8], ['_pad', 12]]);
  assert.equal(k?.launch.mode, 'threadgroups');
  assert.deepEqual(k?.launch.at[0]?.grid, [4, 1, 1]);
  assert.deepEqual(k?.launch.dependsOn.grid, ['n_tokens']);
  assert.deepEqual(k?.launch.dependsOn.threadgroupMemory, ['n_experts']);
  assert.ok((k?.threadgroupMemory[0]?.bytes ?? 0) > 0);
  // A user spec in full, with its own launch formula.
  const u = moe(['kernels', 'example-rms-norm', '--spec', SPEC]);
  assert.equal(u.code, 0, u.stdout + u.stderr);
  assert.match(u.stdout, /\[user spec\]/);
  assert.match(u.stdout, /formula: dispatchThreadgroups: grid \(n_rows, 1, 1\)/);
  assert.match(u.stdout, /buffer\(4\) eps: constant float& = 0\.000001/);
  assert.equal(moe(['kernels', 'no-such-kernel']).code, 2);
});

test('the missing-addon hint, inside the repository checkout, names its build scripts', () => {
  // a file that exists but is no addon (a path that does not exist is refused earlier, as a bad MOE_NATIVE_ADDON)
  const r = moe(['verify', '--kernel', 'gelu-mul', '--backend', 'cpu'], { MOE_NATIVE_ADDON: join(ROOT, 'package.json') });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /npm run build:native/);
  assert.doesNotMatch(r.stderr, /npm rebuild moe-kernels/);
});

test('defineSpec (public API): fills the defaults; a malformed definition names each problem', () => {
  const ok = defineSpec({
    name: 'api-copy',
    entry: 'api_copy',
    description: 'copy',
    math: 'y = x',
    params: [{ name: 'n', description: 'elements' }],
    defaults: { n: 8 },
    inputSets: [{ name: 'ramp', description: 'x[i] = i' }],
    buffers: [f32In(0, 'x', (p) => p.n as number), f32Out(1, 'y', (p) => p.n as number)],
    validate: () => null,
    inputs: (p) => ({ x: Float32Array.from({ length: p.n as number }, (_, i) => i) }),
    launch: (p) => ({ mode: 'threads', grid: [p.n as number, 1, 1], threadgroup: [8, 1, 1], threadgroupMemory: [] }),
    reference: (_p, inp) => ({ outputs: { y: inp.x as Float32Array }, rules: { y: { kind: 'exact', reason: 'a copy' } } }),
    cost: (p) => ({ bytes: 8 * (p.n as number), flops: 0 }),
  });
  assert.equal(ok.group, 'user');
  assert.equal(ok.shader, '');
  assert.deepEqual(ok.threadgroup, []);
  assert.deepEqual(ok.cases(), [{ params: { n: 8 }, inputSet: 'ramp', origin: 'defaults' }]);
  const broken = { ...ok, name: 'has space', launch: () => ({ mode: 'warp', grid: [1, 1, 1], threadgroup: [1, 1, 1], threadgroupMemory: [] }) } as unknown as SpecDefinition;
  assert.throws(() => defineSpec(broken), /name: a short name/);
  const badLaunch = { ...ok, launch: () => ({ mode: 'threads', grid: [0, 1, 1], threadgroup: [1, 1, 1], threadgroupMemory: [] }) } as unknown as SpecDefinition;
  assert.throws(() => defineSpec(badLaunch), /launch\(defaults\): grid must be three positive integers/);
  // Struct packing with C alignment: a ushort then a float puts the float at 4.
  assert.deepEqual(structLayout(['ushort', 'float']).fields.map((f) => f.offset), [0, 4]);
  assert.equal(packStruct([['ushort', 1], ['float', 1]]).length, 8);
});

test("the example's manifest entry binds and launches the kernel as its spec does", () => {
  type Manifest = { shader: string; kernels: Record<string, { spec: string; buffers: Record<string, string>; launch: { mode: string; grid: (string | number)[]; threadgroup: number[] } }> };
  const m = JSON.parse(readFileSync(join(ROOT, EXAMPLE, 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(m.shader, 'rms_norm.metal');
  const r = moe(['kernels', 'example-rms-norm', '--spec', SPEC, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const [k] = JSON.parse(r.stdout) as { entry: string; buffers: { index: number; name: string }[]; launch: { mode: string; at: { threadgroup: number[] }[] } }[];
  const entry = m.kernels[k?.entry ?? ''];
  assert.ok(entry, `the manifest has an entry for ${k?.entry}`);
  assert.equal(entry.spec, 'example-rms-norm');
  assert.deepEqual(Object.entries(entry.buffers).map(([i, n]) => [Number(i), n]), k?.buffers.map((b) => [b.index, b.name]));
  assert.equal(entry.launch.mode, k?.launch.mode);
  assert.equal(entry.launch.threadgroup[0], k?.launch.at[0]?.threadgroup[0]);
});

test('--param NAME=VALUES sets a user param that has no flag of its own; repro lines repeat it; unknown names are errors', () => {
  const file = userDir('flagless.mjs', `const s = ${SCALE_SPEC};\nexport default { ...s, params: [{ name: 'n_elements', flag: 'width', description: 'elements' }] };\n`);
  const r = moe(['verify', '--spec', file, '--backend', 'cpu', '--param', 'width=10,33', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as { cases: { params: Record<string, number>; repro: string }[] };
  assert.deepEqual(doc.cases.map((c) => c.params.n_elements), [10, 33]);
  assert.match(doc.cases[0]?.repro ?? '', /--kernel user-scale --param n_elements=10 --inputs ramp/);
  const byName = moe(['verify', '--spec', file, '--backend', 'cpu', '--param', 'n_elements=12', '--json']);
  assert.equal((JSON.parse(byName.stdout) as { cases: { params: Record<string, number> }[] }).cases[0]?.params.n_elements, 12);
  const b = moe(['bench', '--spec', file, '--backend', 'cpu', '--param', 'width=77', '--max-time', '0.05', '--min-samples', '2', '--warmup', '0', '--json']);
  assert.equal(b.code, 0, b.stdout + b.stderr);
  assert.deepEqual((JSON.parse(b.stdout) as { cases: { params: Record<string, number> }[] }).cases.map((c) => c.params.n_elements), [77]);
  for (const [arg, re] of [['nope=3', /--param: no selected kernel has a param 'nope' \(they have: n_elements\)/], ['width', /--param: 'width' is not NAME=VALUES/]] as const) {
    const e = moe(['verify', '--spec', file, '--backend', 'cpu', '--param', arg]);
    assert.equal(e.code, 2, e.stdout + e.stderr);
    assert.match(e.stderr, re);
  }
});
