import { Args, Flags } from '@oclif/core';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ShaderCompileError, UsageError } from '../errors.js';
import { emitCpp, emitCuda, MslError, parseMsl } from '../msl/index.js';
import { MoeCommand } from '../cli/base.js';

export interface TranslateResult {
  file: string;
  target: 'cpp' | 'cuda';
  kernels: { name: string; entrySymbol: string; usesSync: boolean }[];
  code: string;
}

export default class Translate extends MoeCommand {
  static override summary = 'Print the C++ (cpu backend) or CUDA C++ (cuda backend) emitted from a .metal file';
  static override description = `The same parse of the MSL source feeds both emitters. The output keeps the .metal file's line structure under #line directives (compiler messages point at the .metal lines), then one generated entry per kernel:
  cpp   included with native/include/msl_cpu.h, compiled by the system C++ compiler into a shared object;
  cuda  included with native/include/msl_cuda.h, compiled by NVRTC (or: nvcc -arch=sm_90 -std=c++17 -c -I native/include).
Use it to debug how a kernel is executed, or to read what a compile error refers to.`;

  static override examples = [
    '<%= config.bin %> translate shaders/moe_softmax_topk.metal --target cuda',
    '<%= config.bin %> translate my_kernels.metal --target cpp --output my_kernels.cpp',
  ];

  static override args = {
    file: Args.string({ description: 'the .metal file', required: true }),
  };

  static override flags = {
    target: Flags.string({ char: 't', description: 'what to emit', options: ['cpp', 'cuda'], default: 'cuda' }),
    output: Flags.string({ char: 'o', description: 'write to this file instead of standard output' }),
  };

  async run(): Promise<TranslateResult> {
    const { args, flags } = await this.parse(Translate);
    const file = args.file;
    if (!existsSync(file)) throw new UsageError(`shader file not found: ${file}`);
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
    }
    const target = flags.target === 'cpp' ? 'cpp' : 'cuda';
    let out;
    try {
      const parsed = parseMsl(source, file);
      out = target === 'cpp' ? emitCpp(parsed) : emitCuda(parsed);
    } catch (e) {
      if (e instanceof MslError) throw new ShaderCompileError(e.message);
      throw e;
    }
    if (flags.output) writeFileSync(flags.output, out.code);
    else if (!this.jsonEnabled()) process.stdout.write(out.code);
    return { file, target, kernels: out.kernels, code: out.code };
  }
}
