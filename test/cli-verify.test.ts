import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { moe, shader, tmp } from './helpers.js';

test('moe verify --kernel softmax-topk --backend cpu --verbose: every case PASS, exit 0', () => {
  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--verbose']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /softmax-topk \(moe_softmax_topk_f32\): (\d+)\/\1 PASS/);
  assert.doesNotMatch(r.stdout, /FAIL|ERROR/);
  assert.match(r.stdout, /^PASS: \d+ passed, 0 failed, 0 errors/m);
});

test('the entry-point name selects the same spec; --json has every case', () => {
  const r = moe(['verify', '--kernel', 'moe_softmax_topk_f32', '--backend', 'cpu', '--tokens', '3', '--experts', '60', '--top-k', '4', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { schema: string; seed: number; backend: string; cases: { status: string; params: Record<string, number> }[] };
  assert.equal(doc.schema, 'moe-kernels/verify-report@1');
  assert.equal(doc.backend, 'cpu');
  assert.equal(doc.seed, 42);
  assert.ok(doc.cases.length >= 5);
  for (const c of doc.cases) {
    assert.equal(c.status, 'PASS');
    assert.deepEqual(c.params, { n_tokens: 3, n_experts: 60, top_k: 4 });
  }
});

for (const bug of ['missing_barrier', 'no_renorm', 'off_by_one']) {
  test(`planted bug ${bug}: verify --shader exits 1 with FAIL rows and a repro line`, () => {
    const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', shader('softmax-topk', `${bug}.metal`)]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /FAIL|ERROR/);
    assert.match(r.stdout, /reproduce: npx moe verify --kernel softmax-topk --tokens \d+ --experts \d+ --top-k \d+ --inputs \w+ --seed 42/);
  });
}

test('a correct variant written differently (serial insertion top-k, tree reductions) passes', () => {
  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', shader('softmax-topk', 'alt_serial_topk.metal')]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test('bad input: clear message, exit 2, no stack trace', () => {
  const cases: [string[], RegExp][] = [
    [['verify', '--kernel', 'no-such-kernel'], /unknown kernel 'no-such-kernel'/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--experts', '4', '--top-k', '5'], /top_k = 5 must not exceed n_experts = 4/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--tokens', '0'], /--tokens: 0 must be positive/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--tokens', '-3'], /must be positive/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--experts', 'abc'], /'abc' is not an integer/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', '/nonexistent/k.metal'], /shader file not found: \/nonexistent\/k.metal/],
    [['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--inputs', 'bogus'], /unknown input set 'bogus'/],
  ];
  for (const [args, re] of cases) {
    const r = moe(args);
    assert.equal(r.code, 2, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
  }
});

test('a shader that fails to compile: exit 2 with the .metal file and line', () => {
  const dir = tmp('badshader');
  const file = join(dir, 'broken.metal');
  writeFileSync(
    file,
    [
      '#include <metal_stdlib>',
      'using namespace metal;',
      'struct P { uint n_tokens; uint n_experts; uint top_k; float pad; };',
      'kernel void moe_softmax_topk_f32(constant P& p [[buffer(0)]], device const float* l [[buffer(1)]],',
      '  device uint* ids [[buffer(2)]], device float* w [[buffer(3)]], threadgroup float* s [[threadgroup(0)]],',
      '  uint t [[threadgroup_position_in_grid]]) {',
      '  w[t] = undefined_name + 1.0f;',
      '}',
      '',
    ].join('\n'),
  );
  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /broken\.metal:7:\d+: error: .*undefined_name/);
});

test('a signature that does not match the spec: exit 2 naming the buffer index and both types', () => {
  const dir = tmp('sig');
  const file = join(dir, 'wrongsig.metal');
  writeFileSync(
    file,
    [
      '#include <metal_stdlib>',
      'using namespace metal;',
      'struct P { uint n_tokens; uint n_experts; uint top_k; float pad; };',
      'kernel void moe_softmax_topk_f32(constant P& p [[buffer(0)]], device const half* l [[buffer(1)]],',
      '  device uint* ids [[buffer(2)]], device float* w [[buffer(3)]], threadgroup float* s [[threadgroup(0)]],',
      '  uint t [[threadgroup_position_in_grid]]) {',
      '}',
      '',
    ].join('\n'),
  );
  const r = moe(['verify', '--kernel', 'softmax-topk', '--backend', 'cpu', '--shader', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /buffer\(1\) type mismatch: the spec binds logits as device const float\*, the shader declares 'l' as device const half ?\*/);
});

test('moe kernels --json lists the spec; moe backends explains each backend', () => {
  const k = moe(['kernels', '--json']);
  assert.equal(k.code, 0, k.stderr);
  const list = JSON.parse(k.stdout) as { entry: string }[];
  assert.ok(list.some((s) => s.entry === 'moe_softmax_topk_f32'));
  const b = moe(['backends', '--json']);
  assert.equal(b.code, 0, b.stderr);
  const st = JSON.parse(b.stdout) as { name: string; available: boolean; reason: string }[];
  assert.equal(st.find((s) => s.name === 'cpu')?.available, true);
  const metal = st.find((s) => s.name === 'metal');
  assert.equal(metal?.available, false);
  assert.match(metal?.reason ?? '', /macOS/);
});
