/** What the front end knows of MSL's vocabulary: builtins, address spaces, unsupported features. */
import type { AddressSpace } from './types.js';

export const ADDRESS_SPACES: ReadonlySet<string> = new Set<AddressSpace>(['device', 'constant', 'threadgroup', 'thread']);

/** Compute-kernel builtins; true when the builtin may be a vector (uint2/uint3). */
export const BUILTINS: ReadonlyMap<string, boolean> = new Map([
  ['thread_position_in_grid', true],
  ['thread_position_in_threadgroup', true],
  ['threadgroup_position_in_grid', true],
  ['threads_per_threadgroup', true],
  ['threadgroups_per_grid', true],
  ['threads_per_grid', true],
  ['grid_size', true],
  ['grid_origin', true],
  ['dispatch_threads_per_threadgroup', true],
  ['thread_index_in_threadgroup', false],
  ['thread_index_in_simdgroup', false],
  ['simdgroup_index_in_threadgroup', false],
  ['threads_per_simdgroup', false],
  ['thread_execution_width', false],
  ['simdgroups_per_threadgroup', false],
  ['dispatch_simdgroups_per_threadgroup', false],
  ['thread_index_in_quadgroup', false],
  ['quadgroup_index_in_threadgroup', false],
  ['quadgroups_per_threadgroup', false],
]);

/** Integer scalar (group 1) and optional vector width (group 2) of a builtin's declared type. */
export const BUILTIN_TYPE = /^(?:metal::)?(uint|ushort|int|short|uchar|char|ulong|long|uint32_t|uint16_t|int32_t|int16_t|uint64_t|int64_t|size_t|unsigned|unsigned int|unsigned short|unsigned long)([234])?$/;

/** Attribute names allowed on kernel parameters that change nothing here. */
export const IGNORED_PARAM_ATTRS: ReadonlySet<string> = new Set(['maybe_unused', 'restrict']);

/** Identifiers that mean a kernel needs fibers: barriers and SIMD/quad-group collectives. */
export const SYNC_IDENT = /^(threadgroup_barrier|simdgroup_barrier|simd_\w+|quad_\w+)$/;

const SIMDGROUP_MATRIX = 'simdgroup_matrix is not supported by the cpu backend yet';

/** Identifiers that name a feature no backend of ours supports (checked wherever they appear in code). */
export const UNSUPPORTED_IDENTS: [RegExp, (name: string) => string][] = [
  [
    /^simdgroup_(matrix|(float|half|bfloat)\d+x\d+|multiply|multiply_accumulate|load|store|matrix_storage)$/,
    () => SIMDGROUP_MATRIX,
  ],
  [
    /^(texture(1d|2d|3d|cube|_buffer)(_array|_ms|_ms_array)?|texture2d_ms(_array)?|depth(2d|cube)(_array|_ms|_ms_array)?)$/,
    (n) => `textures (${n}) are not supported by the cpu backend: compute kernels over buffers only`,
  ],
  [/^sampler$/, () => 'samplers are not supported by the cpu backend: compute kernels over buffers only'],
  [/^(imageblock|threadgroup_imageblock)$/, (n) => `imageblocks (${n}) are not supported by the cpu backend`],
  [
    /^(acceleration_structure|primitive_acceleration_structure|instance_acceleration_structure|intersector|intersection_function_table|intersection_result|intersection_query|visible_function_table)$/,
    (n) => `ray tracing (${n}) is not supported by the cpu backend`,
  ],
  [/^raytracing$/, () => 'ray tracing (metal::raytracing) is not supported by the cpu backend'],
  [/^(indirect_command_buffer|render_command|compute_command)$/, (n) => `indirect command buffers (${n}) are not supported by the cpu backend`],
];

/** Functions other than kernels, by the qualifier (or attribute) that makes them so. */
const FUNCTION_KINDS: [string, string][] = [
  ['vertex', 'vertex functions are not supported by the cpu backend: only compute kernels'],
  ['fragment', 'fragment functions are not supported by the cpu backend: only compute kernels'],
  ['visible', 'visible functions are not supported by the cpu backend'],
  ['intersection', 'intersection functions are not supported by the cpu backend'],
  ['mesh', 'mesh functions are not supported by the cpu backend: only compute kernels'],
  ['object', 'object functions are not supported by the cpu backend: only compute kernels'],
];

/** Attributes that name an unsupported feature, wherever they appear. */
export const UNSUPPORTED_ATTRS: ReadonlyMap<string, string> = new Map([
  ['stage_in', '[[stage_in]] is not supported by the cpu backend: only compute kernels'],
  ['function_constant', 'function constants ([[function_constant(n)]]) are not supported by the cpu backend'],
  ...FUNCTION_KINDS,
  ['texture', 'textures ([[texture(n)]]) are not supported by the cpu backend: compute kernels over buffers only'],
  ['sampler', 'samplers ([[sampler(n)]]) are not supported by the cpu backend: compute kernels over buffers only'],
  ['imageblock_data', 'imageblocks ([[imageblock_data]]) are not supported by the cpu backend'],
  ['color', '[[color(n)]] is a fragment-function attribute: only compute kernels are supported'],
  ['position', '[[position]] is a vertex/fragment attribute: only compute kernels are supported'],
  ['patch', 'tessellation ([[patch]]) is not supported by the cpu backend'],
]);

/** Function qualifiers (keywords in front of a function) of unsupported kinds. */
export const UNSUPPORTED_QUALIFIERS: ReadonlyMap<string, string> = new Map(FUNCTION_KINDS);

/**
 * `.xy`, `.rgba`: multi-letter swizzles the compat header provides as member
 * functions. Single letters (.x .. .w, .r .. .a) are data members there.
 */
export const SWIZZLE = /^([xyzw]{2,4}|[rgba]{2,4})$/;

/**
 * MSL's vector type names (float4, packed_uint3, bool2, ...). CUDA predefines
 * most of them as its own structs, so its emitter renames them.
 */
export const VECTOR_TYPE = /^(packed_)?(float|half|bfloat|int|uint|short|ushort|char|uchar|bool|long|ulong)[234]$/;
