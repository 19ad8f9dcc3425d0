import { Args, Flags } from '@oclif/core';
import { existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { UsageError } from '../errors.js';
import { manifestSkeleton } from '../harness/init.js';
import { readShader } from '../harness/source.js';
import { SPECS } from '../kernels/index.js';
import { parseMsl } from '../msl/index.js';
import { MoeCommand } from '../cli/base.js';
import type { ManifestJson } from '../harness/manifest.js';

export interface InitResult {
  manifest: string;
  shader: string;
  kernels: { entry: string; spec: string | null }[];
  todos: number;
}

export default class Init extends MoeCommand {
  static override summary = 'Write a binding manifest skeleton for every kernel of a .metal file';
  static override description = `For each kernel the manifest proposes the catalog spec that fits it best (by entry name, by signature: input and output arrays and their element types, and by buffer names), maps the buffers it can, and leaves TODO markers where you must decide: the launch geometry, scalars whose values no name explains, buffers the spec does not have. A manifest with a TODO left is refused by --manifest, with the JSON path of the TODO.

Then: moe verify --manifest FILE.manifest.json (docs/manifest.md). Never overwrites a file without --force.`;

  static override examples = ['<%= config.bin %> init engine/kernels.metal', '<%= config.bin %> init engine/kernels.metal --output engine/moe.manifest.json --force'];

  static override args = { file: Args.string({ description: 'the .metal file', required: true }) };

  static override flags = {
    output: Flags.string({ char: 'o', description: 'the manifest to write (default: FILE with .manifest.json in place of .metal)' }),
    force: Flags.boolean({ description: 'overwrite an existing manifest', default: false }),
  };

  async run(): Promise<InitResult> {
    const { args, flags } = await this.parse(Init);
    const source = readShader(args.file);
    const out = flags.output ?? join(dirname(args.file), `${basename(args.file).replace(/\.metal$/, '')}.manifest.json`);
    if (existsSync(out) && !flags.force) throw new UsageError(`${out} exists: pass --force to overwrite it (or --output another file)`);
    let parsed;
    try {
      parsed = parseMsl(source, args.file);
    } catch (e) {
      throw new UsageError(`${args.file} does not parse: ${(e as Error).message}`);
    }
    if (parsed.kernels.length === 0) throw new UsageError(`${args.file} has no kernel functions`);
    const shaderRel = relative(dirname(out), args.file) || basename(args.file);
    const manifest: ManifestJson = manifestSkeleton(parsed, SPECS, shaderRel);
    const text = `${JSON.stringify(manifest, null, 2)}\n`;
    writeFileSync(out, text);
    const todos = (text.match(/TODO/g) ?? []).length;
    const kernels = Object.entries(manifest.kernels).map(([entry, e]) => ({ entry, spec: e.spec ?? null }));
    if (!this.jsonEnabled()) {
      this.log(`wrote ${out}: ${kernels.length} kernel(s), ${todos} TODO marker(s) to decide`);
      for (const k of kernels) this.log(`  ${k.entry}: ${k.spec ?? 'no spec proposed (compiled only unless you name one)'}`);
      this.log(`then: moe verify --manifest ${out}`);
    }
    return { manifest: out, shader: shaderRel, kernels, todos };
  }
}
