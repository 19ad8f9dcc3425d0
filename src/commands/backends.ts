import Table from 'cli-table3';
import { detectBackends, getBackend, type BackendStatus } from '../backend/index.js';
import { deviceSelfTest } from '../backend/selftest.js';
import { MoeCommand } from '../cli/base.js';

export default class Backends extends MoeCommand {
  static override summary = 'List the backends, the device each would use, and why any is unavailable';

  async run(): Promise<BackendStatus[]> {
    await this.parse(Backends);
    const list = detectBackends();
    // GPU backends that are available: the device self-test's verdict (what verify and bench would decide).
    for (const b of list) {
      if (!b.available || b.name === 'cpu') continue;
      try {
        const checks = await deviceSelfTest(getBackend(b.name));
        b.selfTest = { passed: checks.every((c) => c.pass || c.skipped === true), checks };
      } catch (e) {
        b.selfTest = { passed: false, checks: [{ name: 'start', pass: false, detail: (e as Error).message }] };
      }
    }
    if (!this.jsonEnabled()) {
      const t = new Table({ head: ['backend', 'available', 'device', 'why'], style: { head: [], border: [] }, colWidths: [9, 11, 40, 60], wordWrap: true });
      for (const b of list) {
        const dev = b.device ? [b.device.name, ...Object.entries(b.device.details).map(([k, v]) => `${k}: ${String(v)}`)].join('\n') : '-';
        t.push([b.name, b.available ? (b.selfTest && !b.selfTest.passed ? 'yes, but refused' : 'yes') : 'no', dev, b.selfTest ? `${b.reason}\n${selfTestText(b.selfTest)}` : b.reason]);
      }
      this.log(t.toString());
      const def = list.find((b) => b.available);
      const refused = def?.selfTest && !def.selfTest.passed ? ' (its device self-test failed: verify and bench refuse it; use --backend cpu)' : '';
      this.log(def ? `default backend: ${def.name}${refused}` : 'no backend available');
    }
    return list;
  }
}

/** "self-test: PASS (copy, ...)" or "self-test: FAILED: copy: element 0: ..." with skipped checks named. */
export function selfTestText(v: NonNullable<BackendStatus['selfTest']>): string {
  const skipped = v.checks.filter((c) => c.skipped === true).map((c) => `${c.name} skipped: ${c.detail}`);
  const tail = skipped.length > 0 ? `; ${skipped.join('; ')}` : '';
  if (v.passed) {
    const ok = v.checks.filter((c) => c.pass).map((c) => c.name).join(', ');
    return `self-test: PASS (${ok}: exact)${tail}`;
  }
  const bad = v.checks.filter((c) => !c.pass && c.skipped !== true).map((c) => `${c.name}: ${c.detail}`);
  return `self-test: FAILED (${bad.join('; ')})${tail}: verify and bench refuse this device`;
}
