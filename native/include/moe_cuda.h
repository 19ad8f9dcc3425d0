// moe_cuda.h — Metal Shading Language on NVIDIA GPUs: the compat header every
// kernel module emitted by src/msl/emit-cuda.ts includes (DESIGN.md, "The
// CUDA backend"). Compiled by NVRTC at run time (and by nvcc in the tests).
// It shares its scalar, vector and math parts with the CPU's moe_metal.h
// (one text, MOE_FN = __device__, see moe_metal/prelude.h); what differs:
//   moe_cuda/rt.h      builtins from blockIdx/threadIdx/blockDim, dynamic threadgroup memory
//   moe_cuda/sync.h    barriers (__syncthreads), SIMD-group = warp collectives over the active mask
//   moe_cuda/atomic.h  atomic<T> on CUDA's atomic functions
// half is a 16-bit struct converted by the hardware; bfloat is the same
// 16-bit struct with the same round-to-nearest-even as the CPU backend.
#ifndef MOE_CUDA_H
#define MOE_CUDA_H

#ifndef MOE_CUDA
#define MOE_CUDA 1
#endif

#include "moe_cuda_abi.h"
#include "moe_metal/base.h"
#include "moe_metal/vec.h"
#include "moe_cuda/rt.h"
#include "moe_metal/math.h"
#include "moe_metal/intmath.h"
#include "moe_cuda/sync.h"
#include "moe_cuda/atomic.h"

#endif  // MOE_CUDA_H
