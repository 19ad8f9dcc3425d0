/**
 * The whole surface of the native addon (build/Release/moe_native.node), typed
 * in one place. Nothing else in the TypeScript code touches the addon object
 * directly: src/backend/addon.ts loads it and casts it to NativeAddon.
 */

export type Dim3 = [number, number, number];

/** One kernel found in a loaded module (a compiled MSL translation unit). */
export interface NativeKernelInfo {
  /** Host name: the kernel function's name or its [[host_name("...")]]. */
  name: string;
  /** True when the kernel uses barriers or SIMD-group collectives and so runs its threads as fibers. */
  usesSync: boolean;
}

/** A dlopen'ed kernel module. Opaque handle (a Napi::ObjectWrap). */
export interface NativeModule {
  readonly path: string;
  kernels(): NativeKernelInfo[];
  /** dlclose the module; further use throws. */
  close(): void;
}

export interface NativeLaunch {
  /**
   * 'threads': `grid` counts threads (Metal's dispatchThreads; edge threadgroups are smaller).
   * 'threadgroups': `grid` counts threadgroups (Metal's dispatchThreadgroups).
   */
  mode: 'threads' | 'threadgroups';
  grid: Dim3;
  threadgroup: Dim3;
  /** Bytes of dynamic threadgroup memory for [[threadgroup(i)]], index i. */
  threadgroupMemory: number[];
}

export interface NativeRunOptions {
  /** OS worker threads that share the threadgroups (default: hardware concurrency). */
  workers?: number;
  /** Order in which the fibers of a threadgroup are resumed between synchronisation points. */
  schedule?: 'forward' | 'reverse' | 'shuffle';
  /** Seed for schedule 'shuffle'. */
  scheduleSeed?: number;
  /** Bytes of stack per fiber (default 256 KiB). */
  stackSize?: number;
  /** Run barrier-free kernels as fibers too (for measuring the fiber runtime itself). */
  forceFibers?: boolean;
  /**
   * Watchdog: a dispatch still running after this many milliseconds is
   * abandoned and rejects with "timed out" (0: no limit). The CPU backend
   * fills in a default scaled to the work (src/backend/limits.ts).
   */
  timeoutMs?: number;
  /** Names of the buffers by [[buffer(n)]] index, for error messages (out-of-bounds accesses). */
  bufferNames?: (string | null)[];
}

export interface NativeTimeOptions extends NativeRunOptions {
  warmup: number;
  iterations: number;
  /**
   * GPU backends: time with the inputs left in the cache by the dispatch
   * before (default false: the CUDA backend rotates copies of the buffers
   * adding up to twice the L2, so each dispatch reads from memory).
   */
  warmCache?: boolean;
  /**
   * The bytes one dispatch reads and writes by the spec's cost model, when
   * less than its buffers hold (an expert-indexed kernel reads 8 experts out
   * of 128): the CUDA backend sizes its cache rotation by these.
   */
  touchedBytes?: number;
  /**
   * CUDA: back-to-back dispatches per sample (1..100, default 1). A sample is
   * then their device time over their number, as the Metal backend times a
   * command buffer: the throughput of a queue of kernels, without an event
   * pair per dispatch.
   */
  perSample?: number;
  /**
   * CUDA: capture each sample's dispatches in a CUDA graph and replay it (the
   * GPU launches them itself, as engines run decode). The graph holds
   * perSample dispatches rounded up to whole rounds of the buffer copies.
   */
  graph?: boolean;
}

/**
 * Buffers are passed as byte views indexed by [[buffer(n)]] (null = unbound).
 * The addon copies them into its own allocations, runs, and copies every
 * buffer back into the views when the promise settles; the JS side must not
 * touch the views until then.
 */
export interface NativeAddon {
  readonly abiVersion: number;
  hardwareConcurrency(): number;
  /** _exit(code): ends the process at once, without exit handlers or cleanup hooks (which may wait for native work that never ends). */
  exitNow(code: number): never;
  loadModule(path: string): NativeModule;
  run(
    module: NativeModule,
    kernel: string,
    buffers: (Uint8Array | null)[],
    launch: NativeLaunch,
    options: NativeRunOptions,
  ): Promise<void>;
  /** Runs `warmup` then `iterations` dispatches; resolves with the nanoseconds of each timed dispatch. */
  time(
    module: NativeModule,
    kernel: string,
    buffers: (Uint8Array | null)[],
    launch: NativeLaunch,
    options: NativeTimeOptions,
  ): Promise<Float64Array>;
  /**
   * The Metal backend (native/metal/metal_glue.cc over native/metal/metal_c_api.h):
   * present only in a macOS build; absent on Linux, where no Metal code is built.
   */
  readonly metal?: NativeMetal;
  /** The CUDA backend (native/cuda/addon_cuda.cc): in every build; libcuda and NVRTC are opened at run time. */
  readonly cuda?: NativeCuda;
}

/** The system default Metal device, as moe_metal_device_info reads it. */
export interface NativeMetalDevice {
  name: string;
  /** maxThreadsPerThreadgroup.width */
  maxThreadsPerThreadgroup: number;
  /** recommendedMaxWorkingSetSize, bytes */
  recommendedWorkingSet: number;
  /** hasUnifiedMemory */
  unifiedMemory: boolean;
  /** Bit set of supportsFamily: answers: Apple5 1, Apple6 2, Apple7 4, Apple8 8, Apple9 16, Mac2 32, Metal3 64. */
  families: number;
  /** The MSL version compile() requests (31 = 3.1, 30, 24, 23): the newest this macOS compiles. */
  mslVersion: number;
  /** maxThreadgroupMemoryLength, bytes */
  maxThreadgroupMemory: number;
}

/** A compute pipeline (MTLComputePipelineState) made by metal.compile. Opaque otherwise. */
export interface NativeMetalPipeline {
  readonly entry: string;
  /** threadExecutionWidth (the SIMD-group width). */
  readonly execWidth: number;
  /** maxTotalThreadsPerThreadgroup: a larger threadgroup is refused before dispatch. */
  readonly maxThreads: number;
  /** staticThreadgroupMemoryLength: threadgroup memory the kernel declares itself, bytes. */
  readonly staticThreadgroupMemory: number;
}

/** One [[buffer(n)]] binding, as src/backend/launch.ts plans it. */
export interface NativeMetalBinding {
  index: number;
  /** Copied in before the dispatches and (buffers only) back into the view after. */
  data: Uint8Array;
  /** true: setBytes:length:atIndex: (a `constant` param struct of 1..4096 bytes); false: a shared-storage MTLBuffer. */
  bytes: boolean;
  /** The buffer's name, for reports (a redzone's out-of-bounds write). */
  name?: string;
}

export interface NativeMetalTimeOptions {
  /** Untimed dispatches in a command buffer of their own, first. */
  warmup: number;
  /** Dispatches per timed command buffer. */
  perBatch: number;
  /** Timed command buffers. */
  batches: number;
}

export interface NativeMetal {
  deviceInfo(): NativeMetalDevice;
  /** Throws an Error with Metal's compiler output (lines located as "program_source:LINE:COL"). */
  compile(source: string, entry: string, options?: { fastMath?: boolean }): NativeMetalPipeline;
  run(pipeline: NativeMetalPipeline, bindings: NativeMetalBinding[], launch: NativeLaunch): Promise<void>;
  /** Resolves with GPUEndTime − GPUStartTime of each timed command buffer, in ns (the whole batch, not one dispatch). */
  time(
    pipeline: NativeMetalPipeline,
    bindings: NativeMetalBinding[],
    launch: NativeLaunch,
    options: NativeMetalTimeOptions,
  ): Promise<Float64Array>;
}

/** GPU 0 as the CUDA driver describes it (cuDeviceGetAttribute). */
export interface NativeCudaDevice {
  name: string;
  totalMemory: number;
  /** "9.0" */
  computeCapability: string;
  multiprocessors: number;
  l2Bytes: number;
  maxThreadsPerBlock: number;
  sharedPerBlock: number;
  sharedPerBlockOptin: number;
  clockKHz: number;
  memoryClockKHz: number;
  memoryBusWidth: number;
  /** cuDriverGetVersion: 13000 = 13.0 */
  driverVersion: number;
  /** "13.0" */
  nvrtcVersion: string;
  driverLibrary: string;
  nvrtcLibrary: string;
}

export interface NativeCudaCompiled {
  /** A cubin, or PTX text for the driver to compile (isCubin false). */
  image: Uint8Array;
  isCubin: boolean;
  /** "sm_90" (cubin) or "compute_90" (PTX). */
  arch: string;
  /** NVRTC's warnings. */
  log: string;
}

/** A loaded CUDA module (opaque handle). */
export interface NativeCudaModule {
  functionInfo(entry: string): { maxThreads: number; staticShared: number; registers: number };
  close(): void;
}

export interface NativeCudaRunOptions {
  /** Watchdog per dispatch (0: none). */
  timeoutMs?: number;
  /** Names of the buffers by [[buffer(n)]] index, for the redzone reports (out-of-bounds writes). */
  bufferNames?: (string | null)[];
  /**
   * Guard bytes before and after every buffer, checked after the dispatch (timing: after the series).
   * Default: on, unless the environment has MOE_GPU_REDZONES=0 (to measure what they cost).
   */
  redzones?: boolean;
}

export interface NativeCudaTimeOptions extends NativeCudaRunOptions {
  warmup: number;
  iterations: number;
  /** Rotate through copies of the buffers adding up to at least this many bytes (0: one copy, warm L2). */
  rotateBytes?: number;
  /** What one dispatch reads and writes when less than its buffers (rotation counts these). */
  touchedBytes?: number;
  /** Back-to-back dispatches per returned sample, 1..100 (default 1). */
  perSample?: number;
  /** Replay each sample's dispatches from a CUDA graph (rounded up to whole rounds of the buffer copies). */
  graph?: boolean;
}

export interface NativeCuda {
  /** Opens libcuda and NVRTC and GPU 0 once; never throws. */
  probe(): { available: boolean; reason: string; device?: NativeCudaDevice };
  /** NVRTC on a worker thread; rejects with an Error whose message is NVRTC's log and `compileError` true when the source does not compile. */
  compile(source: string, name: string, options: string[]): Promise<NativeCudaCompiled>;
  loadModule(image: Uint8Array): NativeCudaModule;
  run(module: NativeCudaModule, entry: string, buffers: (Uint8Array | null)[], launch: NativeLaunch, options: NativeCudaRunOptions): Promise<void>;
  /** Resolves with the device time of each timed dispatch in ns (CUDA events before and after each). */
  time(module: NativeCudaModule, entry: string, buffers: (Uint8Array | null)[], launch: NativeLaunch, options: NativeCudaTimeOptions): Promise<Float64Array>;
}
