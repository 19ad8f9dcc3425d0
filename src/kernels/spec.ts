/**
 * The contract every kernel spec implements (DESIGN.md, "Kernel specs"): what
 * the kernel computes (reference), what it is fed (inputs), how it is bound
 * and launched, how its outputs are judged, and what it costs.
 */
import type { NativeLaunch } from '../backend/addon-types.js';
import type { Rng } from '../util/rng.js';
import type { ModelShape } from './models.js';
import type { FieldType } from './pack.js';

export type DType = 'f32' | 'u32' | 'i32' | 'u16' | 'bf16' | 'u8';
export type TypedArray = Float32Array | Uint32Array | Int32Array | Uint16Array | Uint8Array;
export type Tensors = Record<string, TypedArray>;

/** The numeric parameters of one case (shape, flags), by name. */
export type Params = Record<string, number>;

export interface ParamDef {
  name: string;
  /** CLI flag that sets it (e.g. 'tokens' for n_tokens); list values sweep. */
  flag?: string;
  description: string;
  /** Lowest value (default 1 for integers; -Infinity for floats). */
  min?: number;
  max?: number;
  /** 'float' params take decimals and signs (e.g. a routing weight); default 'int'. */
  kind?: 'int' | 'float';
}

export interface StructField {
  name: string;
  type: FieldType;
  value: (p: Params) => number;
}

/** One [[buffer(n)]] of the kernel's signature. */
export type BufferDecl =
  | {
      index: number;
      name: string;
      kind: 'struct';
      /** MSL type name of the struct, e.g. MoeSoftmaxTopkParams (the user's may differ; fields must match). */
      mslType: string;
      fields: StructField[];
    }
  | {
      index: number;
      name: string;
      kind: 'scalar';
      /** MSL scalar type: uint, int or float. */
      mslType: 'uint' | 'int' | 'float';
      value: (p: Params) => number;
    }
  | {
      index: number;
      name: string;
      kind: 'array';
      /** MSL element type (float, uint, bfloat, ushort, ...). */
      mslType: string;
      dtype: DType;
      access: 'read' | 'write' | 'readwrite';
      /** Element count for this case. */
      length: (p: Params) => number;
    };

export interface ThreadgroupDecl {
  index: number;
  name: string;
  bytes: (p: Params) => number;
}

export interface FloatRule {
  kind: 'float';
  /** Element-wise: |got − expected| ≤ atol + rtol·|expected|. */
  atol: number;
  rtol: number;
  /** Whole-tensor floors. */
  minCosine: number;
  maxRelMaxAbs: number;
  /** One line: why these tolerances. */
  reason: string;
}

export interface ExactRule {
  kind: 'exact';
  reason: string;
  /**
   * Optional tie test: element i may hold `got` instead of `expected` when
   * the two are interchangeable (e.g. expert ids whose probabilities tie).
   */
  tieOk?: (i: number, got: number, expected: number) => boolean;
  /** Optional extra validation of the whole output (e.g. ids distinct per token); returns an error text. */
  validate?: (got: TypedArray) => string | null;
}

export type CompareRule = FloatRule | ExactRule;

export interface Cost {
  /** Bytes that must move to/from device memory at minimum. */
  bytes: number;
  flops: number;
  /** Quantized kernels: the packed weight words among `bytes` (not scales, biases or activations). */
  weightBytes?: number;
}

export interface InputSet {
  name: string;
  description: string;
}

export interface KernelCase {
  params: Params;
  inputSet: string;
  /** Where the shape comes from (model preset name or 'edge'). */
  origin: string;
}

export interface ReferenceResult {
  outputs: Tensors;
  /** Rules may need more than the outputs (e.g. full probabilities for ties). */
  rules: Record<string, CompareRule>;
  /**
   * Elements of an output the kernel is specified to write, when not all of
   * them (e.g. rows padded to a stride). Others are neither compared nor
   * checked for the canary.
   */
  include?: Record<string, (i: number) => boolean>;
}

export interface KernelSpec {
  /** Short name, e.g. softmax-topk. */
  name: string;
  /** Entry point (kernel function or host_name) in the shader. */
  entry: string;
  /** File under shaders/. */
  shader: string;
  /** Family shown by `moe kernels` (routing, ffn, attention, ...). */
  group: string;
  description: string;
  params: ParamDef[];
  /** The kernel's signature: its [[buffer(n)]] and threadgroup memory arguments. */
  buffers: BufferDecl[];
  threadgroup: ThreadgroupDecl[];
  /** Named math the kernel follows (e.g. 'GELU(tanh)·up'); printed in reports. */
  math: string;
  inputSets: InputSet[];
  /** Default sweep (shapes × input sets). */
  cases(): KernelCase[];
  /** Params of a case from the CLI: fill what the user did not give. */
  defaults: Params;
  /** null when valid, else the reason (exit 2). */
  validate(p: Params): string | null;
  inputs(p: Params, inputSet: string, rng: Rng): Tensors;
  launch(p: Params): NativeLaunch;
  reference(p: Params, inputs: Tensors): ReferenceResult;
  cost(p: Params): Cost;
  /** Shape overrides for `moe bench` (larger than the verify sweep), merged over `defaults`. */
  bench?: Params;
  /** The params a model of fixtures/models.json sets (`moe bench --preset`), merged over `bench`. */
  presetParams?(m: ModelShape): Params;
  /** The launch geometry in words, as functions of the params (shown by `moe kernels NAME`; optional). */
  launchText?: string;
  /** Whether the kernel has a top_k parameter (`moe bench --top-k`): derived from `params` by defineKernel, never stated. */
  readonly hasTopK?: boolean;
}

/** A kernel spec as written: everything but what is derived from it; no threadgroup memory unless stated. */
export type KernelDef = Omit<KernelSpec, 'hasTopK' | 'threadgroup'> & { threadgroup?: ThreadgroupDecl[] };

/** Whether a spec's params include top_k. */
export function hasTopKParam(spec: Pick<KernelSpec, 'params'>): boolean {
  return spec.params.some((p) => p.name === 'top_k');
}

/** The spec of a definition, with the fields derived from it. */
export function defineKernel(def: KernelDef): KernelSpec {
  return { ...def, threadgroup: def.threadgroup ?? [], hasTopK: hasTopKParam(def) };
}

export function shapeLabel(spec: KernelSpec, p: Params): string {
  return spec.params.map((d) => `${d.flag ?? d.name}=${p[d.name]}`).join(' ');
}
