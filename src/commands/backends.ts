import Table from 'cli-table3';
import { detectBackends, type BackendStatus } from '../backend/index.js';
import { MoeCommand } from './base.js';

export default class Backends extends MoeCommand {
  static override summary = 'List the backends, the device each would use, and why any is unavailable';

  async run(): Promise<BackendStatus[]> {
    await this.parse(Backends);
    const list = detectBackends();
    if (!this.jsonEnabled()) {
      const t = new Table({ head: ['backend', 'available', 'device', 'why'], style: { head: [], border: [] }, colWidths: [9, 11, 40, 60], wordWrap: true });
      for (const b of list) {
        const dev = b.device ? [b.device.name, ...Object.entries(b.device.details).map(([k, v]) => `${k}: ${String(v)}`)].join('\n') : '-';
        t.push([b.name, b.available ? 'yes' : 'no', dev, b.reason]);
      }
      this.log(t.toString());
      const def = list.find((b) => b.available);
      this.log(def ? `default backend: ${def.name}` : 'no backend available');
    }
    return list;
  }
}
