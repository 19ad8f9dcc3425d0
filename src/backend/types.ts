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

export interface Backend {
  readonly name: BackendName;
  /** Which clock time() reads, for reports. */
  readonly clock: string;
  device(): DeviceInfo;
  compile(source: string, file: string, entry: string): Promise<Pipeline>;
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
