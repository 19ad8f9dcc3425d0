// msl_cuda.h — Metal Shading Language on NVIDIA GPUs: the compat header every
// kernel module emitted by src/msl/emit-cuda.ts includes (DESIGN.md, "The
// CUDA backend"). Compiled by NVRTC at run time (and by nvcc in the tests).
// It shares its scalar, vector and math parts with the CPU's msl_cpu.h
// (one text, MOE_FN = __device__, see msl_common/prelude.h); what differs:
//   msl_cuda/rt.h      builtins from blockIdx/threadIdx/blockDim, dynamic threadgroup memory
//   msl_cuda/sync.h    barriers (__syncthreads), SIMD-group = warp collectives over the active mask
//   msl_cuda/atomic.h  atomic<T> on CUDA's atomic functions
// half is a 16-bit struct converted by the hardware; bfloat is the same
// 16-bit struct with the same round-to-nearest-even as the CPU backend.
#ifndef MSL_CUDA_H
#define MSL_CUDA_H

#ifndef MOE_CUDA
#define MOE_CUDA 1
#endif

#include "msl_cuda/abi.h"
#include "msl_common/base.h"
#include "msl_common/vec.h"
#include "msl_cuda/rt.h"
#include "msl_common/math.h"
#include "msl_common/intmath.h"
#include "msl_cuda/sync.h"
#include "msl_cuda/atomic.h"

#endif  // MSL_CUDA_H
