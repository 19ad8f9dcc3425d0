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
}
