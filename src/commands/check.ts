import { Args, Flags } from '@oclif/core';
import { existsSync, readFileSync } from 'node:fs';
import { getBackend } from '../backend/index.js';
import { cudaStatus } from '../backend/cuda.js';
import { compileFileWith } from '../backend/shader.js';
import type { BackendName } from '../backend/types.js';
import { UsageError } from '../errors.js';
import { kernelFacts, MslError, parseMsl, type KernelFacts } from '../msl/index.js';
import { MoeCommand } from '../cli/base.js';

export interface CheckedKernel extends Omit<KernelFacts, 'line'> {
  line: number;
  status: 'compiled' | 'error';
  /** The compiler's words, located in the .metal file (status 'error'). */
  error?: string;
  /** The .metal line of the first error, where there is one. */
  errorLine?: number | null;
}

export interface CheckResult {
  file: string;
  backend: BackendName;
  /** An error outside every kernel (the file does not parse): no kernel can be checked. */
  fileError: string | null;
  kernels: CheckedKernel[];
  summary: { kernels: number; compiled: number; errors: number };
}

/** `moe check --json`: one result per file given. */
export interface CheckReport {
  backend: BackendName;
  files: CheckResult[];
  summary: { files: number; kernels: number; compiled: number; errors: number; filesNotParsed: number };
}

export default class Check extends MoeCommand {
  static override summary = 'Translate and compile every kernel of a .metal file, each on its own: the MSL coverage report of a file';
  static override description = `For each kernel of the file: compiled, or its own error with its .metal line (one broken kernel never hides the others); the MSL features it uses; its threadgroup memory; its barriers and SIMD-group functions.
Exit status: 0 every kernel compiles, 1 one or more do not (or the file does not parse), 2 bad usage.`;

  static override examples = [
    '<%= config.bin %> check shaders/moe_dispatch.metal',
    '<%= config.bin %> check my_kernels.metal --backend cuda --json',
    '<%= config.bin %> check shaders/*.metal',
  ];

  // more files may follow the first
  static override strict = false;

  static override args = {
    file: Args.string({ description: 'the .metal file (more may follow)', required: true }),
  };

  static override flags = {
    backend: Flags.string({
      description: 'backend whose translation and compiler to use: cpu or cuda (default: cuda where a GPU is found, else cpu)',
      options: ['cpu', 'cuda'],
    }),
  };

  async run(): Promise<CheckReport> {
    const { argv, flags } = await this.parse(Check);
    const files = argv.map(String);
    for (const f of files) {
      if (f.startsWith('-')) throw new UsageError(`unknown flag '${f}' (flags: --backend cpu|cuda, --json)`);
      if (!existsSync(f)) throw new UsageError(`shader file not found: ${f}`);
    }
    const sources = files.map((f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${f}: ${(e as Error).message}`);
      }
    });
    const name = (flags.backend ?? (cudaStatus().available ? 'cuda' : 'cpu')) as BackendName;
    const backend = getBackend(name);
    const results: CheckResult[] = [];
    for (let i = 0; i < files.length; i++) {
      const r = await checkFile(sources[i] as string, files[i] as string, backend);
      if (!this.jsonEnabled()) process.stdout.write(renderCheck(r));
      results.push(r);
    }
    const sum = (f: (r: CheckResult) => number): number => results.reduce((p, r) => p + f(r), 0);
    const report: CheckReport = {
      backend: backend.name,
      files: results,
      summary: {
        files: results.length,
        kernels: sum((r) => r.summary.kernels),
        compiled: sum((r) => r.summary.compiled),
        errors: sum((r) => r.summary.errors),
        filesNotParsed: sum((r) => (r.fileError !== null ? 1 : 0)),
      },
    };
    if (files.length > 1 && !this.jsonEnabled()) {
      process.stdout.write(`${report.summary.files} files: ${report.summary.compiled} of ${report.summary.kernels} kernels compile${report.summary.filesNotParsed ? `; ${report.summary.filesNotParsed} files do not parse` : ''}\n`);
    }
    if (report.summary.errors > 0 || report.summary.filesNotParsed > 0) process.exitCode = 1;
    return report;
  }
}

/** Every kernel of the file compiled through `backend`, with the facts of its source. */
export async function checkFile(source: string, file: string, backend: ReturnType<typeof getBackend>): Promise<CheckResult> {
  let facts: KernelFacts[];
  try {
    facts = kernelFacts(parseMsl(source, file, { perKernel: true }));
  } catch (e) {
    if (!(e instanceof MslError)) throw e;
    return { file, backend: backend.name, fileError: e.message, kernels: [], summary: { kernels: 0, compiled: 0, errors: 0 } };
  }
  const compiled = await compileFileWith(backend, source, file);
  const kernels: CheckedKernel[] = compiled.kernels.map((k) => {
    const f = facts.find((x) => x.name === k.name);
    const base: Omit<KernelFacts, 'line'> = f ?? {
      name: k.name,
      features: [],
      barriers: [],
      simdgroup: [],
      threadgroupMemory: { static: [], staticBytes: null, dynamic: [] },
    };
    return k.ok
      ? { ...base, line: k.line, status: 'compiled' }
      : { ...base, line: k.line, status: 'error', error: k.error, errorLine: k.errorLine };
  });
  const errors = kernels.filter((k) => k.status === 'error').length;
  return { file, backend: backend.name, fileError: null, kernels, summary: { kernels: kernels.length, compiled: kernels.length - errors, errors } };
}

export function renderCheck(r: CheckResult): string {
  const out: string[] = [`${r.file} (${r.backend} backend)`];
  if (r.fileError !== null) {
    out.push(`  the file does not parse, so no kernel of it can be checked:`, ...r.fileError.split('\n').map((l) => `    ${l}`));
    return `${out.join('\n')}\n`;
  }
  for (const k of r.kernels) {
    if (k.status === 'compiled') {
      out.push(`  ok    ${k.name} (line ${k.line})`);
      const tg = k.threadgroupMemory;
      const mem: string[] = [];
      if (tg.static.length) {
        mem.push(
          `${tg.static.map((a) => `${a.type} ${a.name}${a.dims.map((d) => `[${d ?? '?'}]`).join('')}`).join(', ')} = ${tg.staticBytes !== null ? `${tg.staticBytes} bytes` : 'size not known'}`,
        );
      }
      if (tg.dynamic.length) mem.push(tg.dynamic.map((d) => `[[threadgroup(${d.index})]] ${d.name}`).join(', '));
      out.push(`        threadgroup memory: ${mem.length ? mem.join('; ') : 'none'}`);
      out.push(`        barriers: ${k.barriers.join(', ') || 'none'}; SIMD-group: ${k.simdgroup.join(', ') || 'none'}`);
      const other = k.features.filter((x) => !k.barriers.includes(x) && !k.simdgroup.includes(x));
      if (other.length) out.push(`        uses: ${other.join(', ')}`);
    } else {
      out.push(`  ERROR ${k.name} (line ${k.line}${k.errorLine !== null && k.errorLine !== undefined && k.errorLine !== k.line ? `, error at line ${k.errorLine}` : ''})`);
      out.push(...(k.error ?? '').split('\n').map((l) => `        ${l}`));
    }
  }
  out.push(`${r.summary.compiled} of ${r.summary.kernels} kernels compile${r.summary.errors ? `; ${r.summary.errors} do not` : ''}`);
  return `${out.join('\n')}\n`;
}
