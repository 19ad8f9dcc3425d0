/**
 * The CUDA backend (DESIGN.md, "The CUDA backend"): MSL → CUDA C++ (src/msl,
 * emitCuda), compiled at run time by NVRTC into a cubin cached by content
 * hash, loaded and launched through the driver API (addon.cuda: both
 * libraries dlopen'ed, so the addon loads where CUDA is absent), timed with
 * CUDA events around each dispatch.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KernelRuntimeError, ShaderCompileError, UsageError } from '../errors.js';
import { emitCuda } from '../msl/index.js';
import { cacheDir, NATIVE_INCLUDE_DIR } from '../util/paths.js';
import { loadAddon } from './addon.js';
import type { NativeCuda, NativeCudaDevice, NativeCudaModule, NativeLaunch, NativeRunOptions, NativeTimeOptions } from './addon-types.js';
import { LaunchError, SHARED_MAX_THREADGROUP_MEMORY, validateLaunch } from './launch.js';
import { defaultTimeoutMs } from './limits.js';
import { asCompileError, headerText, parseEntry, sourceHashOf } from './shader.js';
import type { Backend, BackendStatus, Buffers, DeviceInfo, Pipeline } from './types.js';

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
  const base = file.split('/').pop() ?? file;
  const out: string[] = [];
  for (const line of log.split('\n')) {
    const m = NVRTC_LOCATED.exec(line.trim());
    if (!m || m[3] === 'warning') continue;
    const [, path, ln, , msg] = m as unknown as [string, string, string, string, string];
    if (path.endsWith(`${base}.entries.cu`)) {
      out.push(`${file}: error: ${msg} (in the entry point generated for a kernel of this file: check the kernel's parameter types)`);
    } else if (path === file || path.endsWith(`/${base}`) || path === base) {
      out.push(`${file}:${ln}: error: ${msg}`);
    } else {
      out.push(`${file}: error: ${msg} (in ${path.split('/').pop() ?? path}:${ln} of the CUDA compat header)`);
    }
  }
  const picked = [...new Set(out)];
  if (picked.length === 0) return log.split('\n').filter((l) => l.trim() !== '').slice(-10).join('\n');
  return [...picked.slice(0, 10), ...(picked.length > 10 ? [`(${picked.length - 10} more errors)`] : [])].join('\n');
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

  async compile(source: string, file: string, entry: string): Promise<Pipeline> {
    const { parsed, kernel } = parseEntry(source, file, entry);
    const emitted = asCompileError(() => emitCuda(parsed));
    const options = nvrtcOptions();
    const hash = createHash('sha256')
      .update(emitted.code)
      .update('\0')
      .update(headerText())
      .update('\0')
      .update([...options.filter((o) => !o.startsWith('-I')), this.dev.nvrtcVersion, this.dev.computeCapability].join(' '))
      .digest('hex')
      .slice(0, 32);
    let module = this.modules.get(hash);
    if (!module) {
      const dir = join(cacheDir(), 'cuda');
      const path = join(dir, `${hash}.img`);
      let image: Uint8Array;
      if (existsSync(path)) {
        image = new Uint8Array(readFileSync(path));
      } else {
        try {
          image = (await this.cuda.compile(emitted.code, `${file}.cu`, options)).image;
        } catch (e) {
          const err = e as Error & { compileError?: boolean };
          if (err.compileError) throw new ShaderCompileError(`${file}: compile failed (NVRTC)\n${mapNvrtcOutput(err.message, file)}`);
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
        throw new ShaderCompileError(`${file}: the compiled CUDA module does not load: ${(e as Error).message}`);
      }
      this.modules.set(hash, module);
    }
    const info = emitted.kernels.find((k) => k.name === entry);
    if (!info) throw new UsageError(`${file}: no kernel '${entry}' was emitted`);
    let maxThreads: number;
    try {
      maxThreads = module.functionInfo(info.entrySymbol).maxThreads;
    } catch (e) {
      throw new ShaderCompileError(`${file}: ${(e as Error).message}`);
    }
    const sourceHash = sourceHashOf(source);
    const p: CudaPipeline = {
      backend: 'cuda',
      entry,
      file,
      kernel,
      structs: parsed.structs,
      usesSync: info.usesSync,
      sourceHash,
      module,
      symbol: info.entrySymbol,
      maxThreads,
    };
    return p;
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
      throw new KernelRuntimeError((e as Error).message.replace(cp.symbol, cp.entry));
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
      throw new KernelRuntimeError((e as Error).message.replace(cp.symbol, cp.entry));
    }
  }
}
