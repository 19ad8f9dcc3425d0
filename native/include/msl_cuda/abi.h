/*
 * msl_cuda/abi.h — the contract between the CUDA runtime of the addon
 * (native/cuda/cuda_runtime.cc, host C++) and the CUDA C++ that src/msl
 * emits from a .metal file (compiled by NVRTC, see msl_cuda.h).
 *
 * Each kernel becomes `extern "C" __global__ void __moe_entry_<i>(const
 * MoeCudaArgs)`: one CUDA block per Metal threadgroup, one CUDA thread per
 * Metal thread. A dispatchThreads grid that is not a multiple of the
 * threadgroup size is launched as up to 8 grids (the full threadgroups, and
 * the smaller edge threadgroups of each dimension), each with its exact block
 * size and `origin` = the threadgroup position of its first block, so the
 * edge groups have exactly the threads Metal gives them: no thread outside
 * the grid exists, and barriers and SIMD-group collectives see only real
 * threads.
 *
 * Plain C, no includes: read by the host compiler and by NVRTC alike.
 */
#ifndef MOE_CUDA_ABI_H
#define MOE_CUDA_ABI_H

#define MOE_CUDA_MAX_BUFFERS 31
#define MOE_CUDA_MAX_TG_BUFFERS 31

typedef struct MoeCudaU3 {
  unsigned int x, y, z;
} MoeCudaU3;

typedef struct MoeCudaArgs {
  void *buffers[MOE_CUDA_MAX_BUFFERS];             /* [[buffer(n)]] device pointer, index n (0 when unbound) */
  MoeCudaU3 threads_per_grid;                      /* [[threads_per_grid]] */
  MoeCudaU3 threadgroups_per_grid;                 /* [[threadgroups_per_grid]] */
  MoeCudaU3 dispatch_tg_size;                      /* [[dispatch_threads_per_threadgroup]]: the nominal size */
  MoeCudaU3 origin;                                /* threadgroup position of this launch's block (0, 0, 0) */
  unsigned int tg_dyn_offset[MOE_CUDA_MAX_TG_BUFFERS]; /* byte offset of [[threadgroup(n)]] in the dynamic shared memory */
  unsigned int n_tg_dyn;
  /* The watchdog's cooperative stop: host-mapped words, [0] the abort flag
   * (set by the host past the timeout), [1] the .metal line of the first
   * loop that saw it (written by the kernel). 0 when the runtime has none. */
  unsigned int *abort_flag;
} MoeCudaArgs;

#endif /* MOE_CUDA_ABI_H */
