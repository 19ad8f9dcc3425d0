/**
 * The public API of moe-kernels, for kernel specs written by users
 * (`moe verify --spec FILE`): the KernelSpec contract and the helpers a spec
 * needs — seeded random numbers, struct packing, comparison rules, f64
 * reference helpers, bfloat16, buffer and launch builders.
 *
 *   import { defineSpec, f32In, f32Out, paramStruct, floatRule } from 'moe-kernels';
 *   export default defineSpec({ name: 'my-norm', entry: 'my_norm', shader: './my_norm.metal', ... });
 *
 * A complete example: examples/rms-norm-spec/.
 */

// The contract.
export type {
  BufferDecl,
  CompareRule,
  Cost,
  DType,
  ExactRule,
  FloatRule,
  InputSet,
  KernelCase,
  KernelSpec,
  ParamDef,
  Params,
  ReferenceResult,
  StructField,
  Tensors,
  ThreadgroupDecl,
  TypedArray,
} from './kernels/spec.js';
export type { NativeLaunch as Launch, Dim3 } from './backend/addon-types.js';
export type { SpecDefinition } from './kernels/user.js';
export { defineSpec } from './kernels/user.js';

// Seeded random numbers: the harness hands each case an Rng seeded by (--seed, kernel, shape, input set).
export type { Rng } from './util/rng.js';
export { makeRng } from './util/rng.js';

// Param structs, packed with C (and MSL) alignment rules.
export type { FieldSlot, FieldType } from './kernels/pack.js';
export { packStruct, structLayout } from './kernels/pack.js';

// Buffer declarations, params and cases.
export { f32In, f32InOut, f32Out, floatArray, paramStruct, u32In, u32Out, uintArg } from './kernels/common/buffers.js';
export { param, product } from './kernels/common/params.js';
export { arrayBuf, casesOf, inputSets, num, structBuf } from './kernels/common/extra.js';

// Launch builders.
export { groups, threads, threadsOf } from './kernels/common/launch.js';

// Comparison rules.
export { boundedRule, floatRule, U as F32_U } from './kernels/common/rules.js';
export { boundRule } from './kernels/common/extra.js';

// f64 reference helpers.
export type { SumResult } from './reference/ffn.js';
export { geluTanh, matvecRef, maxOf } from './reference/ffn.js';
export { silu, sigmoid } from './reference/moe-layer.js';
export { softmaxInto } from './reference/softmax-topk.js';
export { dot64, sum64, rmsOf } from './reference/f64.js';

// bfloat16.
export { bf16BitsToF32, f32ToBf16Bits, roundBf16 } from './util/bf16.js';
export { fromBf16Bits, toBf16Bits } from './kernels/common/bf16.js';
