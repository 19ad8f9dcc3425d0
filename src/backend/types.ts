/** The backend contract (DESIGN.md, "Data flow"): compile, run, time. */
import type { MslKernel, MslStruct } from '../msl/index.js';
import type { NativeLaunch, NativeRunOptions, NativeTimeOptions } from './addon-types.js';

export type BackendName = 'cpu' | 'cuda' | 'metal';
export const BACKEND_NAMES: BackendName[] = ['metal', 'cuda', 'cpu'];

export interface DeviceInfo {
  backend: BackendName;
  name: string;
  /** Free-form facts shown by `moe backends` and stored in --json reports. */
  details: Record<string, string | number | boolean>;
  /** What the device can run; absent: everything the MSL front end accepts (the CPU backend). */
  features?: DeviceFeatures;
}

/**
 * Optional features of a device, set by any backend that may lack one (Metal
 * by its MSL version, CUDA by its compute capability). Kernels that need a
 * missing feature are reported as SKIP with the reason, never run.
 */
export interface DeviceFeatures {
  /** MSL's bfloat type compiles and runs (Metal: MSL 3.1, macOS 14). */
  bfloat: boolean;
  /** Why bfloat is missing (shown in SKIP rows); set when bfloat is false. */
  bfloatReason?: string;
}

export interface Pipeline {
  backend: BackendName;
  entry: string;
  /** The .metal file it came from. */
  file: string;
  /** Parsed signature of the kernel, for binding checks. */
  kernel: MslKernel;
  /** Structs declared in the source (param struct layouts). */
  structs: MslStruct[];
  usesSync: boolean;
  /** sha256 of the source, reported as the shaders' version. */
  sourceHash: string;
}

export type Buffers = (Uint8Array | null)[];

/** One kernel of a file compiled kernel by kernel: its pipeline, or its own error. */
export type KernelCompileResult =
  | { name: string; /** .metal line of the kernel (or of its error, when it did not parse). */ line: number; ok: true; pipeline: Pipeline }
  | {
      name: string;
      line: number;
      ok: false;
      /** The compiler's words, located in the .metal file ("file: compile failed\nfile:12:5: error: ..."). */
      error: string;
      /** The .metal line of its first error, when it has one. */
      errorLine: number | null;
    };

/** Every kernel of a file, in source order. */
export interface FileCompileResult {
  file: string;
  backend: BackendName;
  kernels: KernelCompileResult[];
}

export interface Backend {
  readonly name: BackendName;
  /** Which clock time() reads, for reports. */
  readonly clock: string;
  device(): DeviceInfo;
  /** One kernel; a ShaderCompileError with that kernel's own error when it does not compile (the file's other kernels do not matter). */
  compile(source: string, file: string, entry: string): Promise<Pipeline>;
  /**
   * Every kernel of the file: one compile when the file compiles, else each
   * kernel isolated so that one broken kernel never hides the others.
   * Throws ShaderCompileError only for an error outside every kernel that
   * the front end sees (unbalanced braces, a malformed struct).
   * (Optional for stand-ins; compileFileWith falls back to compile per kernel.)
   */
  compileFile?(source: string, file: string): Promise<FileCompileResult>;
  run(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options?: NativeRunOptions): Promise<void>;
  time(p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeTimeOptions): Promise<Float64Array>;
}

export interface BackendStatus {
  name: BackendName;
  available: boolean;
  /** Why it is (or is not) available. */
  reason: string;
  device?: DeviceInfo;
  /** The device self-test's verdict (GPU backends that are available; `moe backends`). */
  selfTest?: { passed: boolean; checks: { name: string; pass: boolean; detail: string; skipped?: boolean }[] };
}
