/**
 * The metal backend from the command line, on Linux: `moe backends`, verify,
 * bench and dispatch over the recording fake of the Metal calls
 * (MOE_METAL_ADDON=build/Release/moe_metal_fake.node, profile in MOE_FAKE_METAL).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { moe, ROOT, tmp } from './helpers.js';

const FAKE = join(ROOT, 'build', 'Release', 'moe_metal_fake.node');
const withFake = (profile: string): Record<string, string> => ({ MOE_METAL_ADDON: FAKE, MOE_FAKE_METAL: profile });
const noFake = { MOE_METAL_ADDON: '' };

test('moe backends on Linux: Metal is unavailable and says why', () => {
  const r = moe(['backends', '--json'], noFake);
  assert.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { name: string; available: boolean; reason: string }[];
  const m = list.find((b) => b.name === 'metal');
  assert.deepEqual(m, { name: 'metal', available: false, reason: `Metal needs macOS; this is ${process.platform}` });
  const v = moe(['verify', '--backend', 'metal', '--kernel', 'zero-buffer'], noFake);
  assert.equal(v.code, 2);
  assert.match(v.stderr, /backend 'metal' is not available: Metal needs macOS/);
});

test('moe backends: GPU families, MSL version and the self-test verdict; the paravirtual device is flagged and refused', () => {
  const ok = moe(['backends'], withFake('m2'));
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /msl: 3\.1/);
  assert.match(ok.stdout, /Metal GPU: families Apple5, Apple6, Apple7, Apple8, Mac2,/);
  assert.match(ok.stdout, /self-test: PASS \(copy, barrier reduction, SIMD-group sum,/);
  assert.match(ok.stdout, /default backend: metal\n/);
  const pv = moe(['backends', '--json'], withFake('paravirtual'));
  assert.equal(pv.code, 0, pv.stderr);
  const list = JSON.parse(pv.stdout) as { name: string; reason: string; device?: { name: string; details: Record<string, unknown> }; selfTest?: { passed: boolean; checks: { name: string; pass: boolean }[] } }[];
  const m = list.find((b) => b.name === 'metal');
  assert.equal(m?.device?.name, 'Apple Paravirtual device');
  assert.equal(m?.device?.details.families, 'Apple5');
  assert.equal(m?.device?.details.paravirtual, true);
  assert.match(m?.reason ?? '', /WARNING: Apple Paravirtual device/);
  assert.equal(m?.selfTest?.passed, false);
  assert.deepEqual(m?.selfTest?.checks.map((c) => c.pass), [false, false, false, false]);
  const table = moe(['backends'], withFake('paravirtual'));
  assert.match(table.stdout, /yes, but\s*│[^\n]*\n[^\n]*refused/);
  assert.match(table.stdout, /default backend: metal \(its device self-test failed: verify and bench refuse it; use --backend cpu\)/);
});

test('moe verify --backend metal: PASS rows on a working device, exit 0', () => {
  const r = moe(['verify', '--backend', 'metal', '--kernel', 'zero-buffer,accumulate', '--json'], withFake('m2'));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as { backend: string; device: { name: string }; cases: { status: string }[]; summary: { passed: number; skipped: number } };
  assert.equal(doc.backend, 'metal');
  assert.equal(doc.device.name, 'Fake Apple M2 (moe_metal_fake)');
  assert.ok(doc.cases.length > 5);
  assert.ok(doc.cases.every((c) => c.status === 'PASS'));
  assert.equal(doc.summary.skipped, 0);
});

test('a device that fails the self-test never yields kernel rows: exit 2 naming the failed checks', () => {
  for (const [profile, re] of [
    ['paravirtual', /device self-test failed on metal \(Apple Paravirtual device\): copy: element 0: got 0/],
    ['broken-simd', /device self-test failed on metal \(Fake broken GPU \(moe_metal_fake\)\): SIMD-group sum: element 0/],
    ['cb-error', /copy: selftest_copy: command buffer failed/],
  ] as const) {
    for (const cmd of [['verify', '--kernel', 'zero-buffer'], ['bench', '--kernel', 'zero-buffer'], ['dispatch', '--preset', 'qwen1.5-moe-a2.7b', '--tokens', '1']]) {
      const r = moe([...cmd, '--backend', 'metal'], withFake(profile));
      assert.equal(r.code, 2, `${profile} ${cmd[0]}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stdout, /PASS|FAIL/);
    }
  }
});

test('bf16 kernels on a device without MSL 3.1: SKIP with the reason in the table, --json, --junit and --markdown; exit 0', () => {
  const env = withFake('no-msl31');
  const dir = tmp('metal-skip');
  const junit = join(dir, 'results.xml');
  const r = moe(['verify', '--backend', 'metal', '--kernel', 'gelu-mul-bf16', '--json', '--junit', junit], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as { summary: { cases: number; passed: number; skipped: number; failed: number }; kernels: { status: string }[]; cases: { status: string; skipReason: string }[] };
  assert.equal(doc.summary.passed, 0);
  assert.equal(doc.summary.failed, 0);
  assert.equal(doc.summary.skipped, doc.summary.cases);
  assert.deepEqual(doc.kernels.map((k) => k.status), ['SKIP']);
  for (const c of doc.cases) assert.match(c.skipReason, /uses bfloat, .*bfloat needs MSL 3.1 \(macOS 14 or newer\); this system compiles MSL 3.0/);
  const schema = JSON.parse(readFileSync(join(ROOT, 'docs', 'verify-report.schema.json'), 'utf8')) as object;
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));

  const xml = readFileSync(junit, 'utf8');
  assert.equal(XMLValidator.validate(xml), true);
  const parsed = new XMLParser({ ignoreAttributes: false }).parse(xml) as { testsuites: { '@_skipped': string; testsuite: { testcase: { skipped?: { '@_message': string } }[] } } };
  assert.equal(Number(parsed.testsuites['@_skipped']), doc.summary.cases);
  for (const tc of parsed.testsuites.testsuite.testcase) assert.match(tc.skipped?.['@_message'] ?? '', /bfloat needs MSL 3.1/);

  const table = moe(['verify', '--backend', 'metal', '--kernel', 'gelu-mul-bf16', '--verbose'], env);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /gelu-mul-bf16 \(fused_gelu_mul_bf16\): 0\/\d+ PASS, \d+ SKIP/);
  assert.match(table.stdout, /^SKIP: 0 passed, 0 failed, 0 errors, \d+ skipped/m);
  assert.doesNotMatch(table.stdout, /│ PASS/);
  const md = moe(['verify', '--backend', 'metal', '--kernel', 'gelu-mul-bf16', '--markdown'], env);
  assert.equal(md.code, 0);
  assert.match(md.stdout, /## moe verify: ⏭️ SKIP/);
  assert.match(md.stdout, /\| gelu-mul-bf16 \| `fused_gelu_mul_bf16` \| \d+ \| 0 \| ⏭️ SKIP \|/);
  assert.match(md.stdout, /### Skipped\n\n- \*\*gelu-mul-bf16\*\*: shaders\/moe_dispatch.metal:\d+ uses bfloat/);

  const bench = moe(['bench', '--backend', 'metal', '--kernel', 'gelu-mul-bf16', '--json'], env);
  assert.equal(bench.code, 0, bench.stderr);
  const b = JSON.parse(bench.stdout) as { cases: unknown[]; skipped: { kernel: string; reason: string }[] };
  assert.deepEqual(b.cases, []);
  assert.equal(b.skipped[0]?.kernel, 'gelu-mul-bf16');
  assert.match(b.skipped[0]?.reason ?? '', /bfloat needs MSL 3.1/);
});

test('moe bench --backend metal: times from the GPU clock, per dispatch', () => {
  const r = moe(['bench', '--backend', 'metal', '--kernel', 'zero-buffer', '--max-time', '0.01', '--min-samples', '3', '--json'], withFake('m2'));
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { clock: string; cases: { medianNs: number; samples: number }[] };
  assert.match(doc.clock, /GPUEndTime − GPUStartTime/);
  // The fake's GPU: 1000 ns per dispatch plus the batch number per command buffer (≤ 1 ns per dispatch here).
  for (const c of doc.cases) {
    assert.ok(c.medianNs >= 1000 && c.medianNs < 1001, String(c.medianNs));
    assert.ok(c.samples >= 3);
  }
});
