/**
 * The Metal backend (DESIGN.md, "The Metal backend"): the real GPU
 * of a Mac, through addon.metal (native/metal/metal_glue.cc over the Metal calls
 * of native/metal/metal_backend.mm). Everything here — signature parsing,
 * the binding plan, launch limits, timing, device facts, error mapping — is
 * plain TypeScript that the Linux tests run against a recording fake of the
 * Metal calls (build/Release/moe_metal_fake.node).
 */
import { createRequire } from 'node:module';
import { KernelRuntimeError, ShaderCompileError, UsageError } from '../errors.js';
import { emitMsl } from '../msl/index.js';
import { compileEachEntry, parseEntry, sourceHashOf } from './shader.js';
import { loadAddon } from './addon.js';
import type { NativeLaunch, NativeMetal, NativeMetalBinding, NativeMetalDevice, NativeMetalPipeline, NativeRunOptions, NativeTimeOptions } from './addon-types.js';
import { FeatureMissingError, featureSkip } from './features.js';
import {
  LaunchError,
  METAL_THREADGROUP_MEMORY_GRANULE,
  perDispatchTimes,
  planBindings,
  SHARED_MAX_THREADGROUP_MEMORY,
  timingPlan,
  validateLaunch,
} from './launch.js';
import { gib } from './limits.js';
import type { Backend, BackendStatus, Buffers, DeviceInfo, FileCompileResult, Pipeline } from './types.js';

/** supportsFamily: bits of NativeMetalDevice.families, in the order `moe backends` prints them. */
export const GPU_FAMILIES: readonly (readonly [string, number])[] = [
  ['Apple5', 1 << 0],
  ['Apple6', 1 << 1],
  ['Apple7', 1 << 2],
  ['Apple8', 1 << 3],
  ['Apple9', 1 << 4],
  ['Mac2', 1 << 5],
  ['Metal3', 1 << 6],
];

export const PARAVIRTUAL_NAME = 'Apple Paravirtual device';

export function familyNames(bits: number): string[] {
  return GPU_FAMILIES.filter(([, b]) => (bits & b) !== 0).map(([n]) => n);
}

/** 31 → "3.1". */
export function mslText(v: number): string {
  return `${Math.floor(v / 10)}.${v % 10}`;
}

export function isParavirtual(name: string): boolean {
  return name.includes(PARAVIRTUAL_NAME);
}

/** MSL 3.1 (macOS 14) is the first with bfloat. */
export const MSL_BFLOAT = 31;

export function metalDeviceInfo(d: NativeMetalDevice): DeviceInfo {
  const fam = familyNames(d.families);
  const details: DeviceInfo['details'] = {
    families: fam.length > 0 ? fam.join(', ') : 'none of Apple5..9, Mac2, Metal3',
    msl: mslText(d.mslVersion),
    unifiedMemory: d.unifiedMemory,
    recommendedWorkingSet: gib(d.recommendedWorkingSet),
    maxThreadsPerThreadgroup: d.maxThreadsPerThreadgroup,
    maxThreadgroupMemory: d.maxThreadgroupMemory,
  };
  if (isParavirtual(d.name)) details.paravirtual = true;
  const bfloat = d.mslVersion >= MSL_BFLOAT;
  return {
    backend: 'metal',
    name: d.name,
    details,
    features: bfloat
      ? { bfloat: true }
      : { bfloat: false, bfloatReason: `bfloat needs MSL 3.1 (macOS 14 or newer); this system compiles MSL ${mslText(d.mslVersion)}` },
  };
}

/** Metal's compiler output located in the user's file: "program_source:12:5: error: ..." → "FILE:12:5: error: ...". */
export function mapMetalCompilerOutput(message: string, file: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.replace(/program_source:(\d+):(\d+)/g, `${file}:$1:$2`).trimEnd())
    .filter((l) => l.trim() !== '');
  const max = 20;
  return [...lines.slice(0, max), ...(lines.length > max ? [`(${lines.length - max} more lines)`] : [])].join('\n');
}

/** A runtime error (shader validation's function logs) located in the user's file: "program_source:12:5" → "FILE:12:5". */
export function locateInFile(message: string, file: string): string {
  return message.replace(/program_source:(\d+)(:\d+)?/g, (_m, line: string, col: string | undefined) => `${file}:${line}${col ?? ''}`);
}

/** The addon object whose `metal` to use, and where it came from. */
export interface MetalSource {
  metal: NativeMetal;
  from: string;
}

/**
 * addon.metal, or a string saying why there is none. MOE_METAL_ADDON names
 * a substitute addon (the tests' recording fake, build/Release/moe_metal_fake.node);
 * it is used on any OS and every report says so through the device's name.
 */
export function findMetal(platform: string = process.platform, env: NodeJS.ProcessEnv = process.env): MetalSource | string {
  const override = env.MOE_METAL_ADDON?.trim();
  if (override) {
    try {
      const require = createRequire(import.meta.url);
      // The substitute's shape is checked right below.
      const mod = require(override) as { metal?: NativeMetal };
      if (!mod.metal) return `MOE_METAL_ADDON=${override} has no 'metal' export`;
      return { metal: mod.metal, from: `MOE_METAL_ADDON=${override}` };
    } catch (e) {
      return `MOE_METAL_ADDON=${override} does not load: ${(e as Error).message}`;
    }
  }
  if (platform !== 'darwin') return `Metal needs macOS; this is ${platform}`;
  let addon;
  try {
    addon = loadAddon();
  } catch (e) {
    return (e as Error).message;
  }
  if (!addon.metal) {
    return 'the Metal backend is not built into this addon: rebuild on macOS with the Xcode command line tools (xcode-select --install, then npm ci)';
  }
  return { metal: addon.metal, from: 'the addon' };
}

/** `moe backends`' row for Metal: why not, or the device with its GPU families, MSL version and a paravirtual warning. */
export function metalStatusFrom(found: MetalSource | string): BackendStatus {
  if (typeof found === 'string') return { name: 'metal', available: false, reason: found };
  let device: DeviceInfo;
  try {
    device = metalDeviceInfo(found.metal.deviceInfo());
  } catch (e) {
    return { name: 'metal', available: false, reason: `no usable Metal device: ${(e as Error).message}` };
  }
  const parts = [`Metal GPU: families ${String(device.details.families)}; MSL ${String(device.details.msl)}`];
  if (!device.features?.bfloat) parts.push(`no bfloat: ${device.features?.bfloatReason ?? ''} (bf16 kernels are skipped)`);
  if (device.details.paravirtual === true) {
    parts.push(
      `WARNING: ${PARAVIRTUAL_NAME}: the GPU of a virtual machine (GitHub-hosted macOS runners), on which custom kernels have been seen to return zeros; the device self-test decides whether it is used`,
    );
  }
  if (found.from !== 'the addon') parts.push(`(from ${found.from})`);
  return { name: 'metal', available: true, reason: parts.join('; '), device };
}

interface MetalPipeline extends Pipeline {
  native: NativeMetalPipeline;
}

export class MetalBackend implements Backend {
  readonly name = 'metal' as const;
  readonly clock = 'GPU: GPUEndTime − GPUStartTime of each command buffer of back-to-back dispatches, over its dispatches';
  private info: DeviceInfo | null = null;
  private raw: NativeMetalDevice | null = null;

  /** fastMath: compile with MTLMathModeFast (default: safe, IEEE-conforming math; MOE_METAL_FAST_MATH=1 turns it on). */
  constructor(
    private readonly metal: NativeMetal,
    private readonly fastMath: boolean = process.env.MOE_METAL_FAST_MATH === '1',
  ) {}

  private rawDevice(): NativeMetalDevice {
    if (!this.raw) this.raw = this.metal.deviceInfo();
    return this.raw;
  }

  device(): DeviceInfo {
    if (!this.info) this.info = metalDeviceInfo(this.rawDevice());
    return this.info;
  }

  async compile(source: string, file: string, entry: string): Promise<Pipeline> {
    const { parsed, kernel } = parseEntry(source, file, entry);
    const skip = featureSkip(this.device(), source, file);
    if (skip !== null) throw new FeatureMissingError(skip);
    let native: NativeMetalPipeline;
    try {
      // kernels the front end failed are left out (lines kept), so that they do not fail this one
      const src = parsed.failed?.length ? emitMsl(parsed).code : source;
      native = this.metal.compile(src, entry, { fastMath: this.fastMath });
    } catch (e) {
      throw new ShaderCompileError(`${file}: compile failed (Metal)\n${mapMetalCompilerOutput((e as Error).message, file)}`);
    }
    const sourceHash = sourceHashOf(source);
    const p: MetalPipeline = { backend: 'metal', entry, file, kernel, structs: parsed.structs, usesSync: kernel.usesSync, sourceHash, native };
    return p;
  }

  /** Each kernel compiled on its own (Metal compiles the source as it is: a C++ error in one kernel fails them all). */
  compileFile(source: string, file: string): Promise<FileCompileResult> {
    return compileEachEntry(source, file, 'metal', (entry) => this.compile(source, file, entry));
  }

  /** The bindings and the launch as they are encoded; a launch Metal would refuse is a KernelRuntimeError before dispatch. */
  private prepare(
    p: Pipeline,
    buffers: Buffers,
    launch: NativeLaunch,
    names?: (string | null)[],
  ): { native: NativeMetalPipeline; bindings: NativeMetalBinding[]; launch: NativeLaunch } {
    const native = (p as MetalPipeline).native;
    if (p.backend !== 'metal' || !native) throw new UsageError(`pipeline for '${p.entry}' was not compiled by the metal backend`);
    try {
      // Named for the redzone reports (native/common/redzone.h).
      const bindings: NativeMetalBinding[] = planBindings(p.kernel, buffers).map((b) => {
        const name = names?.[b.index];
        return name ? { ...b, name } : b;
      });
      const l = validateLaunch(launch, {
        maxThreadsPerThreadgroup: native.maxThreads,
        threadsLimitName: "the pipeline's maxTotalThreadsPerThreadgroup",
        maxThreadgroupMemory: Math.min(this.rawDevice().maxThreadgroupMemory, SHARED_MAX_THREADGROUP_MEMORY),
        staticThreadgroupMemory: native.staticThreadgroupMemory,
        threadgroupMemoryGranule: METAL_THREADGROUP_MEMORY_GRANULE,
      });
      return { native, bindings, launch: l };
    } catch (e) {
      if (e instanceof LaunchError) throw new KernelRuntimeError(`${p.entry}: ${e.message}`);
      throw e;
    }
  }

  /** (Of the run options only the buffers' names are used; the CPU runtime's — workers, schedule, stack size, watchdog — have no meaning on the GPU.) */
  async run(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options?: NativeRunOptions): Promise<void> {
    const prep = this.prepare(p, buffers, launch, options?.bufferNames);
    try {
      await this.metal.run(prep.native, prep.bindings, prep.launch);
    } catch (e) {
      throw new KernelRuntimeError(locateInFile((e as Error).message, p.file));
    }
  }

  async time(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeTimeOptions): Promise<Float64Array> {
    const prep = this.prepare(p, buffers, launch, options.bufferNames);
    let plan;
    let ns: Float64Array;
    try {
      plan = timingPlan(options.iterations);
      ns = await this.metal.time(prep.native, prep.bindings, prep.launch, { warmup: options.warmup, ...plan });
    } catch (e) {
      throw new KernelRuntimeError(e instanceof LaunchError ? `${p.entry}: ${e.message}` : locateInFile((e as Error).message, p.file));
    }
    try {
      return perDispatchTimes(ns, plan.perBatch);
    } catch (e) {
      throw new KernelRuntimeError(`${p.entry}: ${(e as Error).message}`);
    }
  }
}

/** The backend over the addon findMetal picks; UsageError (exit 2) saying why when there is none. */
export function createMetalBackend(): MetalBackend {
  const found = findMetal();
  if (typeof found === 'string') throw new UsageError(`backend 'metal' is not available: ${found}`);
  return new MetalBackend(found.metal);
}
