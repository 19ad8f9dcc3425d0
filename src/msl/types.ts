/** The public shapes of the MSL front end (see index.ts). */

export type AddressSpace = 'device' | 'constant' | 'threadgroup' | 'thread';

export type ParamAttr =
  | { kind: 'buffer'; index: number }
  | { kind: 'threadgroup'; index: number }
  | { kind: 'builtin'; name: string }
  | { kind: 'none' };

export interface MslParam {
  name: string;
  /** null for builtins and other parameters passed by value. */
  addressSpace: AddressSpace | null;
  /** Type with the address space removed, as written (whitespace collapsed), e.g. "const float *", "MoeParams &", "uint3". */
  cppType: string;
  /** Element type without const, volatile, * or &, e.g. "float", "MoeParams", "uint". */
  baseType: string;
  /** The pointee (or the value) is const. */
  isConst: boolean;
  kind: 'pointer' | 'reference' | 'value';
  attr: ParamAttr;
  line: number;
}

export interface MslKernel {
  /** Host name: the function's name, or its [[host_name("...")]]. */
  name: string;
  /** The C++ function to call, qualified by its namespaces ("foo", "ns::foo"). */
  functionName: string;
  /** Template arguments of an instantiation ("float" for foo<float>), else null. */
  templateArgs: string | null;
  params: MslParam[];
  line: number;
  /** The kernel, or a function of the file it calls, uses barriers or SIMD/quad-group functions. */
  usesSync: boolean;
}

export interface MslStructField {
  name: string;
  /** Type as written, address space removed, with a declarator's '*' or '&' appended. */
  type: string;
  /** Number of elements of an array field (the product of its dimensions), else null. */
  arrayLength: number | null;
}

export interface MslStruct {
  name: string;
  fields: MslStructField[];
  line: number;
}

/** A kernel the front end could not take while the rest of its file parses (parseMsl with perKernel). */
export interface MslKernelFailure {
  name: string;
  /** The .metal line where the kernel's definition starts. */
  kernelLine: number;
  /** The .metal line of the error. */
  line: number;
  /** "file:line:col: error: ..." */
  message: string;
}

export interface ParsedMsl {
  file: string;
  source: string;
  kernels: MslKernel[];
  structs: MslStruct[];
  /** Kernels that failed in the front end (perKernel parses only); they are left out of the emitted code. */
  failed?: MslKernelFailure[];
}

export interface EmittedKernel {
  name: string;
  entrySymbol: string;
  usesSync: boolean;
  /** First and last .metal lines of its definition (a template's, for an instantiation). */
  sourceLines: [number, number];
  /** First and last lines of its generated entry, in the `<file>.entries.*` part of the emitted code. */
  entryLines: [number, number];
}

export interface EmitResult {
  code: string;
  /** The kernels emitted (those not left out). */
  kernels: EmittedKernel[];
}
