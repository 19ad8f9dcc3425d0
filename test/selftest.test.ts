import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/index.js';
import { assertSelfTest, runSelfTest } from '../src/backend/selftest.js';
import type { Backend } from '../src/backend/types.js';
import { UsageError } from '../src/errors.js';

test('device self-test: every check passes exactly on the CPU backend', async () => {
  const be = getBackend('cpu');
  const checks = await runSelfTest(be);
  assert.deepEqual(checks.map((c) => c.name), ['copy', 'barrier reduction', 'SIMD-group sum', 'bfloat round trip']);
  for (const c of checks) assert.equal(c.pass, true, `${c.name}: ${c.detail}`);
  assertSelfTest(be, checks);
});

test('a device whose kernels return zeros (like the paravirtual device) is refused, naming the failed checks', async () => {
  const cpu = getBackend('cpu');
  const zeros: Backend = {
    name: 'metal',
    clock: 'fake',
    device: () => ({ backend: 'metal', name: 'Apple Paravirtual device', details: {} }),
    compile: (s, f, e) => cpu.compile(s, f, e),
    run: async () => {
      /* leaves every output as it was: zeros */
    },
    time: async () => new Float64Array(1),
  };
  const checks = await runSelfTest(zeros);
  assert.ok(checks.every((c) => !c.pass));
  assert.throws(() => assertSelfTest(zeros, checks), (e: unknown) => e instanceof UsageError && /device self-test failed on metal \(Apple Paravirtual device\): copy: element 0/.test(e.message));
});

test('bfloat check skipped (device without MSL 3.1) is reported as skipped, never as a pass', async () => {
  const checks = await runSelfTest(getBackend('cpu'), { noBfloat: 'bfloat needs MSL 3.1' });
  const bf = checks.find((c) => c.name === 'bfloat round trip');
  assert.equal(bf?.skipped, true);
  assert.equal(bf?.pass, false);
});
