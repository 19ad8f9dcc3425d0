// msl_cpu.h — Metal Shading Language on the CPU: the compat header every
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
#ifndef MSL_CPU_H
#define MSL_CPU_H

#include "msl_common/base.h"
#include "msl_common/vec.h"
#include "msl_cpu/rt.h"
#include "msl_common/math.h"
#include "msl_common/intmath.h"
#include "msl_cpu/sync.h"
#include "msl_cpu/atomic.h"

#endif  // MSL_CPU_H
