/**
 * The MSL front end: parseMsl (kernels, their signatures, structs) and the
 * emitters of the backends that run MSL without Metal (emitCpp for the CPU,
 * emitCuda for NVIDIA GPUs).
 */
export { MslError } from './errors.js';
export type { AddressSpace, EmitResult, EmittedKernel, MslKernel, MslKernelFailure, MslParam, MslStruct, MslStructField, ParamAttr, ParsedMsl } from './types.js';
export { parseMsl, type ParseOptions } from './parse.js';
export { emitCpp, emitMsl, type EmitCppOptions } from './emit-cpp.js';
export { emitCuda, cudaType, type EmitCudaOptions } from './emit-cuda.js';
export { BUILTINS } from './features.js';
export { kernelFacts, typeBytes, type KernelFacts, type ThreadgroupArray } from './facts.js';
