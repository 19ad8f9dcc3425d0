import Table from 'cli-table3';
import { SPECS } from '../kernels/index.js';
import type { KernelSpec } from '../kernels/spec.js';
import { MoeCommand } from '../cli/base.js';

/** A spec as `moe kernels --json` lists it: its own fields, and its interface in words. */
export interface KernelListing extends Pick<KernelSpec, 'name' | 'entry' | 'shader' | 'group' | 'description' | 'math' | 'inputSets'> {
  params: { name: string; flag: string; description: string }[];
  buffers: { index: number; name: string; kind: string; type: string; access?: string }[];
  cases: number;
}

export default class Kernels extends MoeCommand {
  static override summary = 'List the kernel specs: entry points, buffers, parameters and input sets';

  async run(): Promise<KernelListing[]> {
    await this.parse(Kernels);
    const list: KernelListing[] = SPECS.map((s) => ({
      name: s.name,
      entry: s.entry,
      shader: `shaders/${s.shader}`,
      group: s.group,
      description: s.description,
      math: s.math,
      params: s.params.map((p) => ({ name: p.name, flag: `--${p.flag ?? p.name}`, description: p.description })),
      inputSets: s.inputSets,
      buffers: s.buffers.map((b) => ({
        index: b.index,
        name: b.name,
        kind: b.kind,
        type: b.mslType,
        ...(b.kind === 'array' ? { access: b.access } : {}),
      })),
      cases: s.cases().length,
    }));
    if (!this.jsonEnabled()) {
      const t = new Table({ head: ['kernel', 'entry point', 'group', 'parameters', 'cases'], style: { head: [], border: [] } });
      for (const k of list) t.push([k.name, k.entry, k.group, k.params.map((p) => p.flag).join(' '), k.cases]);
      this.log(t.toString());
    }
    return list;
  }
}
