import { Args, Flags } from '@oclif/core';
import Table from 'cli-table3';
import { isAbsolute } from 'node:path';
import { findSpec, SPECS } from '../kernels/index.js';
import { describeBuffers, describeLaunch, launchLines, type BufferListing, type LaunchDescription } from '../kernels/describe.js';
import type { KernelSpec } from '../kernels/spec.js';
import { loadUserSpecs, withUserSpecs } from '../kernels/user.js';
import { MoeCommand } from '../cli/base.js';
import { UsageError } from '../errors.js';

/** A spec as `moe kernels --json` lists it: its own fields, and its interface (buffers, threadgroup memory, launch) at the default params. */
export interface KernelListing extends Pick<KernelSpec, 'name' | 'entry' | 'group' | 'description' | 'math' | 'inputSets'> {
  shader: string;
  /** Whether the spec came from --spec (a user's) rather than the catalog. */
  user: boolean;
  params: { name: string; flag: string; description: string; default: number }[];
  buffers: BufferListing[];
  threadgroupMemory: { index: number; name: string; bytes: number }[];
  launch: LaunchDescription;
  cases: number;
}

function listing(s: KernelSpec, user: boolean): KernelListing {
  let launch: LaunchDescription;
  try {
    launch = describeLaunch(s);
  } catch (e) {
    throw new UsageError(`${s.name}: its launch cannot be evaluated at the default params ${JSON.stringify(s.defaults)}: ${(e as Error).message}`);
  }
  return {
    name: s.name,
    entry: s.entry,
    shader: s.shader === '' ? '(none: give --shader)' : isAbsolute(s.shader) ? s.shader : `shaders/${s.shader}`,
    user,
    group: s.group,
    description: s.description,
    math: s.math,
    params: s.params.map((p) => ({ name: p.name, flag: `--${p.flag ?? p.name}`, description: p.description, default: s.defaults[p.name] as number })),
    inputSets: s.inputSets,
    buffers: describeBuffers(s),
    threadgroupMemory: s.threadgroup.map((t) => ({ index: t.index, name: t.name, bytes: t.bytes({ ...s.defaults }) })),
    launch,
    cases: s.cases().length,
  };
}

/** One spec in full, as text. */
function detailText(k: KernelListing): string {
  const lines = [`${k.name} (${k.entry})${k.user ? ' [user spec]' : ''}: ${k.description}`, `  shader: ${k.shader}`, `  math: ${k.math}`, '  params (default):'];
  for (const p of k.params) lines.push(`    ${p.name} (${p.flag}) = ${p.default}: ${p.description}`);
  lines.push('  buffers (values at the defaults):');
  for (const b of k.buffers) {
    if (b.kind === 'array') lines.push(`    buffer(${b.index}) ${b.name}: device ${b.access === 'read' ? 'const ' : ''}${b.type}* (${b.access}), ${b.elements} elements, ${b.bytes} bytes`);
    else if (b.kind === 'scalar') lines.push(`    buffer(${b.index}) ${b.name}: constant ${b.type}& = ${b.value}`);
    else {
      lines.push(`    buffer(${b.index}) ${b.name}: constant ${b.type}& (${b.bytes} bytes)`);
      for (const f of b.fields ?? []) lines.push(`      +${f.offset} ${f.type} ${f.name} = ${f.value}`);
    }
  }
  lines.push('  threadgroup memory:');
  if (k.threadgroupMemory.length === 0) lines.push('    none');
  for (const t of k.threadgroupMemory) lines.push(`    threadgroup(${t.index}) ${t.name}: ${t.bytes} bytes at the defaults`);
  lines.push('  launch:');
  for (const l of launchLines(k.launch)) lines.push(`    ${l}`);
  lines.push(`  input sets: ${k.inputSets.map((s) => s.name).join(', ')}; ${k.cases} cases in the default sweep`);
  lines.push('  a kernel bound or launched otherwise: describe it in a manifest (--manifest FILE: buffers, launch.mode, launch.grid, launch.threadgroup)');
  return lines.join('\n');
}

export default class Kernels extends MoeCommand {
  static override summary = 'List the kernel specs; with NAME, one spec in full: buffers, struct offsets, threadgroup memory, launch';

  static override examples = [
    '<%= config.bin %> kernels',
    '<%= config.bin %> kernels gelu-mul',
    '<%= config.bin %> kernels moe_softmax_topk_f32 --json',
    '<%= config.bin %> kernels --spec ./my-specs.js',
  ];

  static override args = {
    name: Args.string({ description: 'a kernel, by short name or entry point: show its interface and launch in full', required: false }),
  };

  static override flags = {
    spec: Flags.string({ description: 'also list the kernel specs of this file (.js, or .ts through tsx where installed)' }),
  };

  async run(): Promise<KernelListing[]> {
    const { args, flags } = await this.parse(Kernels);
    const user = flags.spec ? await loadUserSpecs(flags.spec) : [];
    const all = flags.spec ? withUserSpecs(SPECS, user, flags.spec) : SPECS;
    const chosen = args.name ? [findSpec(args.name, all)] : all;
    const list = chosen.map((s) => listing(s, user.includes(s)));
    if (!this.jsonEnabled()) {
      if (args.name) {
        this.log(list.map(detailText).join('\n'));
      } else {
        const t = new Table({ head: ['kernel', 'entry point', 'group', 'parameters', 'cases'], style: { head: [], border: [] } });
        for (const k of list) t.push([k.name, k.entry, k.group, k.params.map((p) => p.flag).join(' '), k.cases]);
        this.log(t.toString());
        this.log('One kernel in full (buffers, struct offsets, threadgroup memory, launch): moe kernels NAME');
      }
    }
    return list;
  }
}
