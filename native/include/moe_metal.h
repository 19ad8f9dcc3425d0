// moe_metal.h — Metal Shading Language on the CPU: the compat header every
// kernel module emitted by src/msl includes (DESIGN.md, "The CPU backend").
// Included exactly once per module (one translation unit), so it also defines
// the module's __moe_bind_runtime. Pieces, in order:
//   base.h     scalar types (half = _Float16, bfloat), traits, constants, api()
//   vec.h      vectors (+ generated swizzles.inc), packed vectors, operators
//   rt.h       __moe_bind_runtime, tg_static, bi_* builtins, builtin_as
//   math.h     metal:: float math (metal::precise, metal::fast alike)
//   intmath.h  integer/bit functions, select/all/any, as_type, numeric_limits
//   sync.h     mem_flags, barriers, simd_* and quad_* collectives
//   atomic.h   atomic<T> and the atomic_*_explicit functions
#ifndef MOE_METAL_H
#define MOE_METAL_H

#include "moe_metal/base.h"
#include "moe_metal/vec.h"
#include "moe_metal/rt.h"
#include "moe_metal/math.h"
#include "moe_metal/intmath.h"
#include "moe_metal/sync.h"
#include "moe_metal/atomic.h"

#endif  // MOE_METAL_H
