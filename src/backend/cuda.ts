/**
 * The CUDA backend (DESIGN.md, "The CUDA backend"): MSL → CUDA C++ (src/msl,
 * emitCuda), compiled at run time by NVRTC into a cubin cached by content
 * hash, loaded and launched through the driver API (addon.cuda: both
 * libraries dlopen'ed, so the addon loads where CUDA is absent), timed with
 * CUDA events around each dispatch.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KernelRuntimeError, UsageError } from '../errors.js';
import { emitCuda } from '../msl/index.js';
import { cacheDir, NATIVE_INCLUDE_DIR } from '../util/paths.js';
import { loadAddon } from './addon.js';
import type { NativeCuda, NativeCudaDevice, NativeCudaModule, NativeLaunch, NativeRunOptions, NativeTimeOptions } from './addon-types.js';
import { LaunchError, SHARED_MAX_THREADGROUP_MEMORY, validateLaunch } from './launch.js';
import { defaultTimeoutMs } from './limits.js';
import { attemptOf, compileKernelByKernel, unitLoadFailure, type Diagnostic, type UnitResult } from './isolate.js';
import { asCompileError, FileCompileMemo, parseFile, pickEntry, sourceHashOf, unitHash } from './shader.js';
import type { Backend, BackendStatus, Buffers, DeviceInfo, FileCompileResult, KernelCompileResult, Pipeline } from './types.js';

/** NVRTC options (the target architecture is added by the addon, from the GPU). */
export function nvrtcOptions(includeDir = NATIVE_INCLUDE_DIR): string[] {
  // -default-device: functions without an execution space are __device__ (the
  // emitter marks them anyway); precise division and sqrt, no fast math: MSL's
  // fast:: functions map to the hardware approximations explicitly.
  return ['--std=c++17', '-default-device', `-I${includeDir}`, '-DMOE_CUDA=1', '--fmad=true', '-lineinfo'];
}

const NVRTC_LOCATED = /^(.*?)\((\d+)\): (error|warning|catastrophic error)[^:]*: (.*)$/;

/**
 * NVRTC's log located in the user's .metal file (the emitted CUDA keeps the
 * .metal line structure under #line): errors at the user's lines as they are,
 * errors in the compat header or the generated entries named as such.
 */
export function mapNvrtcOutput(log: string, file: string): string {
  const picked = [...new Set(nvrtcDiagnostics(log, file).map((d) => d.message))];
  if (picked.length === 0) return log.split('\n').filter((l) => l.trim() !== '').slice(-10).join('\n');
  return [...picked.slice(0, 10), ...(picked.length > 10 ? [`(${picked.length - 10} more errors)`] : [])].join('\n');
}

/** NVRTC's (or nvcc's) errors as diagnostics, with the lines each points at ("detected during instantiation ... at line N of FILE" too). */
export function nvrtcDiagnostics(log: string, file: string): Diagnostic[] {
  const base = file.split('/').pop() ?? file;
  const isEntries = (path: string): boolean => path.endsWith(`${base}.entries.cu`);
  const isUser = (path: string): boolean => !isEntries(path) && (path === file || path.endsWith(`/${base}`) || path === base);
  const out: Diagnostic[] = [];
  let cur: Diagnostic | null = null;
  for (const raw of log.split('\n')) {
    const line = raw.trim();
    const m = NVRTC_LOCATED.exec(line);
    if (m) {
      cur = null;
      if (m[3] === 'warning') continue;
      const [, path, ln, , msg] = m as unknown as [string, string, string, string, string];
      const d: Diagnostic = { message: '', userLines: [], entryLines: [] };
      if (isEntries(path)) {
        d.message = `${file}: error: ${msg} (in the entry point generated for a kernel of this file: check the kernel's parameter types)`;
        d.entryLines.push(Number(ln));
      } else if (isUser(path)) {
        d.message = `${file}:${ln}: error: ${msg}`;
        d.userLines.push(Number(ln));
      } else {
        d.message = `${file}: error: ${msg} (in ${path.split('/').pop() ?? path}:${ln} of the CUDA compat header)`;
      }
      out.push(d);
      cur = d;
      continue;
    }
    if (!cur) continue;
    for (const at of line.matchAll(/at line (\d+) of "?([^"\s]+)"?/g)) {
      if (isEntries(at[2] as string)) cur.entryLines.push(Number(at[1]));
      else if (isUser(at[2] as string)) cur.userLines.push(Number(at[1]));
    }
  }
  return out;
}

interface CudaPipeline extends Pipeline {
  module: NativeCudaModule;
  /** The generated __global__ entry. */
  symbol: string;
  maxThreads: number;
}

function cudaOf(): NativeCuda {
  const c = loadAddon().cuda;
  if (!c) throw new UsageError('this build of the native addon has no CUDA backend: rebuild it (npm ci)');
  return c;
}

export function cudaDeviceInfo(d: NativeCudaDevice): DeviceInfo {
  return {
    backend: 'cuda',
    name: d.name,
    details: {
      computeCapability: d.computeCapability,
      memory: `${(d.totalMemory / 2 ** 30).toFixed(1)} GiB`,
      multiprocessors: d.multiprocessors,
      l2: `${(d.l2Bytes / 2 ** 20).toFixed(0)} MiB`,
      driver: `${Math.floor(d.driverVersion / 1000)}.${(d.driverVersion % 1000) / 10}`,
      nvrtc: d.nvrtcVersion,
      memoryBusWidth: d.memoryBusWidth,
      memoryClockMHz: Math.round(d.memoryClockKHz / 1000),
    },
    features: { bfloat: true },
  };
}

/** `moe backends`: the GPU, or why CUDA cannot be used here. */
export function cudaStatus(): BackendStatus {
  let c: NativeCuda;
  try {
    c = cudaOf();
  } catch (e) {
    return { name: 'cuda', available: false, reason: (e as Error).message };
  }
  const p = c.probe();
  if (!p.available || !p.device) return { name: 'cuda', available: false, reason: p.reason };
  return { name: 'cuda', available: true, reason: `MSL emitted as CUDA C++, compiled by NVRTC (${p.reason})`, device: cudaDeviceInfo(p.device) };
}

export class CudaBackend implements Backend {
  readonly name = 'cuda' as const;
  readonly clock = 'CUDA events recorded before and after each dispatch (device time); buffers rotated through copies adding up to twice the L2 (those of 4 KiB or less, scalars and ids, shared), so each dispatch reads memory the one before did not leave in the cache';
  private readonly cuda = cudaOf();
  private readonly dev: NativeCudaDevice;
  private modules = new Map<string, NativeCudaModule>();

  constructor() {
    const p = this.cuda.probe();
    if (!p.available || !p.device) throw new UsageError(`backend 'cuda' is not available: ${p.reason}`);
    this.dev = p.device;
  }

  device(): DeviceInfo {
    return cudaDeviceInfo(this.dev);
  }

  private readonly files = new FileCompileMemo();

  /**
   * Whether kernel loops poll the watchdog's abort flag (the cooperative stop;
   * src/msl/loops.ts). On by default, for verification; `moe bench` turns it
   * off before compiling, so that timings are of the kernel as written: on the
   * H200 the polls cost the loop-heavy kernels up to 2x (a tiled 4-bit mat-vec
   * 6.6 -> 14.3 us), the counters keeping loops from being unrolled.
   */
  loopPolls = true;

  async compile(source: string, file: string, entry: string): Promise<Pipeline> {
    return pickEntry(await this.compileFile(source, file), entry);
  }

  compileFile(source: string, file: string): Promise<FileCompileResult> {
    return this.files.get([this.loopPolls ? 'polls' : 'no-polls'], source, file, () => this.compileKernels(source, file));
  }

  private async compileKernels(source: string, file: string): Promise<FileCompileResult> {
    const parsed = parseFile(source, file);
    const outcomes = await compileKernelByKernel<NativeCudaModule>(
      parsed,
      async (omit) => {
        const emitted = asCompileError(() => emitCuda(parsed, { omit, loopPolls: this.loopPolls }));
        return attemptOf(emitted.kernels, await this.compileUnit(emitted.code, file));
      },
      'compile failed (NVRTC)',
    );
    const sourceHash = sourceHashOf(source);
    const kernels: KernelCompileResult[] = outcomes.map((o) => {
      if (!o.ok) return o;
      const kernel = parsed.kernels.find((k) => k.name === o.name)!;
      let maxThreads: number;
      try {
        maxThreads = o.module.functionInfo(o.emitted.entrySymbol).maxThreads;
      } catch (e) {
        return { name: o.name, line: o.line, ok: false, error: `${file}: ${(e as Error).message}`, errorLine: null };
      }
      const p: CudaPipeline = {
        backend: 'cuda',
        entry: o.name,
        file,
        kernel,
        structs: parsed.structs,
        usesSync: o.emitted.usesSync,
        sourceHash,
        module: o.module,
        symbol: o.emitted.entrySymbol,
        maxThreads,
      };
      return { name: o.name, line: o.line, ok: true, pipeline: p };
    });
    return { file, backend: 'cuda', kernels };
  }

  /** One translation unit through NVRTC: its module (cubin cached by content hash), or NVRTC's errors. */
  private async compileUnit(code: string, file: string): Promise<UnitResult<NativeCudaModule>> {
    const options = nvrtcOptions();
    const hash = unitHash(code, [...options.filter((o) => !o.startsWith('-I')), this.dev.nvrtcVersion, this.dev.computeCapability].join(' '));
    let module = this.modules.get(hash);
    if (module) return { ok: true, module };
    const dir = join(cacheDir(), 'cuda');
    const path = join(dir, `${hash}.img`);
    let image: Uint8Array;
    if (existsSync(path)) {
      image = new Uint8Array(readFileSync(path));
    } else {
      try {
        image = (await this.cuda.compile(code, `${file}.cu`, options)).image;
      } catch (e) {
        const err = e as Error & { compileError?: boolean };
        if (err.compileError) {
          return { ok: false, diagnostics: nvrtcDiagnostics(err.message, file), message: `${file}: compile failed (NVRTC)\n${mapNvrtcOutput(err.message, file)}` };
        }
        throw new UsageError(`${file}: NVRTC failed: ${err.message}`);
      }
      mkdirSync(dir, { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, image);
      renameSync(tmp, path);
    }
    try {
      module = this.cuda.loadModule(image);
    } catch (e) {
      const message = `${file}: the compiled CUDA module does not load: ${(e as Error).message}`;
      return unitLoadFailure(message);
    }
    this.modules.set(hash, module);
    return { ok: true, module };
  }

  /** A launch this kernel cannot have on this GPU is a KernelRuntimeError before dispatch. */
  private check(p: CudaPipeline, launch: NativeLaunch): void {
    try {
      validateLaunch(launch, {
        maxThreadsPerThreadgroup: p.maxThreads,
        threadsLimitName: `this kernel's maxTotalThreadsPerThreadgroup on ${this.dev.name}`,
        maxThreadgroupMemory: SHARED_MAX_THREADGROUP_MEMORY,
      });
    } catch (e) {
      if (e instanceof LaunchError) throw new KernelRuntimeError(`${p.entry}: ${e.message}`);
      throw e;
    }
  }

  async run(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeRunOptions = {}): Promise<void> {
    const cp = p as CudaPipeline;
    this.check(cp, launch);
    try {
      await this.cuda.run(cp.module, cp.symbol, buffers, launch, {
        timeoutMs: options.timeoutMs ?? defaultTimeoutMs(launch),
        ...(options.bufferNames ? { bufferNames: options.bufferNames } : {}),
      });
    } catch (e) {
      throw new KernelRuntimeError((e as Error).message.split(cp.symbol).join(cp.entry));
    }
  }

  async time(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeTimeOptions): Promise<Float64Array> {
    const cp = p as CudaPipeline;
    this.check(cp, launch);
    try {
      return await this.cuda.time(cp.module, cp.symbol, buffers, launch, {
        warmup: options.warmup,
        iterations: options.iterations,
        timeoutMs: options.timeoutMs ?? defaultTimeoutMs(launch),
        ...(options.bufferNames ? { bufferNames: options.bufferNames } : {}),
        rotateBytes: options.warmCache ? 0 : 2 * this.dev.l2Bytes,
        ...(options.touchedBytes !== undefined ? { touchedBytes: Math.ceil(options.touchedBytes) } : {}),
        ...(options.perSample !== undefined ? { perSample: options.perSample } : {}),
        ...(options.graph ? { graph: true } : {}),
      });
    } catch (e) {
      throw new KernelRuntimeError((e as Error).message.split(cp.symbol).join(cp.entry));
    }
  }
}
