/**
 * The CPU backend (DESIGN.md, "The CPU backend"): MSL → C++ (src/msl), compiled
 * by the system compiler into a shared object cached by content hash, loaded
 * and executed by the native runtime with Metal's semantics.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ShaderCompileError, KernelRuntimeError, UsageError } from '../errors.js';
import { emitCpp, MslError, parseMsl } from '../msl/index.js';
import { cacheDir, NATIVE_INCLUDE_DIR } from '../util/paths.js';
import { loadAddon } from './addon.js';
import type { NativeLaunch, NativeModule, NativeRunOptions, NativeTimeOptions } from './addon-types.js';
import type { Backend, Buffers, DeviceInfo, Pipeline } from './types.js';

const run = promisify(execFile);

export const CXX_FLAGS = ['-std=c++17', '-O2', '-fPIC', '-shared', '-fno-strict-aliasing', '-fvisibility=hidden'];

export function compilerCommand(): string {
  return process.env.CXX && process.env.CXX.trim() !== '' ? process.env.CXX.trim() : 'c++';
}

interface CpuPipeline extends Pipeline {
  module: NativeModule;
}

/** Every header under native/include (recursively): any change invalidates the compile cache. */
function readHeaders(dir = NATIVE_INCLUDE_DIR): string {
  let all = '';
  if (!existsSync(dir)) return all;
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) all += readHeaders(p);
    else if (/\.(h|hpp|inc)$/.test(e.name)) all += `\0${e.name}\0${readFileSync(p, 'utf8')}`;
  }
  return all;
}

/** Keep the compiler's lines about the user's .metal file; drop noise about generated code. */
export function mapCompilerOutput(stderr: string, file: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const base = file.split('/').pop() ?? file;
  const mine = lines.filter((l) => l.includes(base) && /(error|warning|note)/.test(l));
  const errors = mine.filter((l) => l.includes('error'));
  const picked = errors.length > 0 ? errors : lines.filter((l) => /error/.test(l));
  return (picked.length > 0 ? picked : lines).slice(0, 20).join('\n');
}

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly clock = 'host steady_clock around each dispatch (all worker threads)';
  private modules = new Map<string, NativeModule>();

  device(): DeviceInfo {
    const c = cpus();
    const addon = loadAddon();
    return {
      backend: 'cpu',
      name: c[0]?.model.trim() ?? 'unknown CPU',
      details: {
        threads: addon.hardwareConcurrency(),
        compiler: compilerCommand(),
        cache: cacheDir(),
        arch: process.arch,
      },
    };
  }

  async compile(source: string, file: string, entry: string): Promise<Pipeline> {
    const addon = loadAddon();
    let parsed;
    try {
      parsed = parseMsl(source, file);
    } catch (e) {
      if (e instanceof MslError) throw new ShaderCompileError(e.message);
      throw e;
    }
    const kernel = parsed.kernels.find((k) => k.name === entry);
    if (!kernel) {
      const names = parsed.kernels.map((k) => k.name).join(', ') || 'none';
      throw new UsageError(`${file}: no kernel named '${entry}' (kernels in the file: ${names})`);
    }
    let emitted;
    try {
      emitted = emitCpp(parsed);
    } catch (e) {
      if (e instanceof MslError) throw new ShaderCompileError(e.message);
      throw e;
    }
    const cxx = compilerCommand();
    const hash = createHash('sha256')
      .update(emitted.code)
      .update('\0')
      .update(readHeaders())
      .update('\0')
      .update([cxx, ...CXX_FLAGS, process.arch].join(' '))
      .digest('hex')
      .slice(0, 32);
    const dir = cacheDir();
    const so = join(dir, `${hash}.so`);
    let module = this.modules.get(hash);
    if (!module) {
      if (!existsSync(so)) {
        mkdirSync(dir, { recursive: true });
        const cpp = join(dir, `${hash}.cpp`);
        writeFileSync(cpp, emitted.code);
        const tmp = join(dir, `${hash}.${process.pid}.${Date.now()}.tmp.so`);
        try {
          await run(cxx, [...CXX_FLAGS, `-I${NATIVE_INCLUDE_DIR}`, `-I${dirname(resolve(file))}`, '-o', tmp, cpp], {
            maxBuffer: 16 * 1024 * 1024,
          });
        } catch (e) {
          rmSync(tmp, { force: true });
          const err = e as { stderr?: string; code?: string | number; message: string };
          if (err.code === 'ENOENT') {
            throw new UsageError(`the C++ compiler '${cxx}' was not found: install g++ or clang++, or set CXX`);
          }
          throw new ShaderCompileError(`${file}: compile failed\n${mapCompilerOutput(err.stderr ?? err.message, file)}`);
        }
        renameSync(tmp, so);
      }
      module = addon.loadModule(so);
      this.modules.set(hash, module);
    }
    const info = module.kernels().find((k) => k.name === entry);
    if (!info) throw new UsageError(`${file}: compiled module has no kernel '${entry}'`);
    const sourceHash = createHash('sha256').update(source).digest('hex').slice(0, 16);
    const p: CpuPipeline = { backend: 'cpu', entry, file, kernel, structs: parsed.structs, usesSync: info.usesSync, sourceHash, module };
    return p;
  }

  async run(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeRunOptions = {}): Promise<void> {
    try {
      await loadAddon().run((p as CpuPipeline).module, p.entry, buffers, launch, options);
    } catch (e) {
      throw new KernelRuntimeError((e as Error).message);
    }
  }

  async time(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeTimeOptions): Promise<Float64Array> {
    try {
      return await loadAddon().time((p as CpuPipeline).module, p.entry, buffers, launch, options);
    } catch (e) {
      throw new KernelRuntimeError((e as Error).message);
    }
  }
}
