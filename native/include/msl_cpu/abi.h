/*
 * msl_cpu/abi.h — the contract between the moe-kernels native runtime (the
 * Node addon, native/cpu) and the shared objects it compiles from MSL.
 *
 * Every kernel module (the C++ emitted by src/msl from a .metal file, compiled
 * to a .so by the system compiler) includes msl_cpu.h, which includes this
 * file. The module exports two C symbols:
 *
 *   int __moe_bind_runtime(const MoeRuntimeApi *api);
 *       Called once by the runtime right after dlopen, before any kernel runs.
 *       Fails (returns non-zero) when api->abi_version != MOE_ABI_VERSION.
 *
 *   const MoeKernelInfo *__moe_kernels(uint32_t *count);
 *       The kernels (one per `kernel` function or [[host_name]] instantiation).
 *
 * A kernel entry runs ONE thread of a threadgroup: the runtime calls it once
 * per thread (as a fiber when info.uses_sync, else in a plain loop).
 *
 * Plain C so that both the C++ runtime and any emitted module agree on layout.
 */
#ifndef MOE_RT_ABI_H
#define MOE_RT_ABI_H

#include <stdint.h>

#define MOE_ABI_VERSION 2u
/* Lanes per SIMD-group (Apple GPUs and NVIDIA warps: 32). */
#define MOE_SIMD_WIDTH 32u
/* Bytes each lane may contribute to one SIMD-group exchange. */
#define MOE_SIMD_SLOT_BYTES 64u
/* Maximum number of [[buffer(n)]] and [[threadgroup(n)]] indices. */
#define MOE_MAX_BUFFERS 31u
#define MOE_MAX_TG_BUFFERS 31u

#ifdef __cplusplus
extern "C" {
#endif

typedef struct MoeU3 {
  uint32_t x, y, z;
} MoeU3;

/* Fixed for the whole dispatch. */
typedef struct MoeDispatchCtx {
  void *const *buffers;           /* [[buffer(n)]] base pointer, index n (NULL when unbound) */
  const uint64_t *buffer_sizes;   /* bytes of each buffer */
  uint32_t n_buffers;             /* entries in buffers/buffer_sizes */
  MoeU3 threads_per_grid;         /* [[threads_per_grid]] */
  MoeU3 threadgroups_per_grid;    /* [[threadgroups_per_grid]] */
  MoeU3 dispatch_tg_size;         /* [[dispatch_threads_per_threadgroup]]: the nominal threadgroup size */
} MoeDispatchCtx;

/* Fixed for one threadgroup. */
typedef struct MoeGroupCtx {
  MoeU3 tg_pos;                   /* [[threadgroup_position_in_grid]] */
  MoeU3 tg_size;                  /* [[threads_per_threadgroup]]: actual size (edge groups of dispatchThreads are smaller) */
  uint32_t n_threads;             /* tg_size.x * tg_size.y * tg_size.z */
  void *const *tg_dyn;            /* [[threadgroup(n)]] dynamic threadgroup memory, index n */
  const uint64_t *tg_dyn_sizes;   /* bytes of each */
  uint32_t n_tg_dyn;
} MoeGroupCtx;

/* One thread. */
typedef struct MoeThreadCtx {
  const MoeDispatchCtx *d;
  const MoeGroupCtx *g;
  MoeU3 tid;                      /* [[thread_position_in_threadgroup]] */
  uint32_t index;                 /* [[thread_index_in_threadgroup]] = tid.x + tid.y*size.x + tid.z*size.x*size.y */
} MoeThreadCtx;

/* Services of the runtime that a kernel calls. All act on the calling thread
 * (the runtime knows which fiber is current). */
typedef struct MoeRuntimeApi {
  uint32_t abi_version;           /* MOE_ABI_VERSION */
  /* threadgroup_barrier(): every live thread of the group must arrive. */
  void (*tg_barrier)(void);
  /* simdgroup_barrier(): every live lane of the caller's SIMD-group must arrive. */
  void (*simd_barrier)(void);
  /* SIMD-group exchange, the primitive of every simd_* collective.
   * Copies `size` (<= MOE_SIMD_SLOT_BYTES) bytes from `value` into the calling
   * lane's slot, waits until every live lane of its SIMD-group has arrived,
   * and returns the base of MOE_SIMD_WIDTH slots of MOE_SIMD_SLOT_BYTES bytes
   * each (slot i = lane i's value). *active_mask receives the lanes that took
   * part (bit i = lane i). The slots stay valid until the caller's next
   * exchange. */
  const void *(*simd_exchange)(const void *value, uint32_t size, uint64_t *active_mask);
  /* Storage of a `threadgroup` variable declared in kernel code. Every thread
   * of the group asking with the same `slot` (a number the emitter gives each
   * declaration) gets the same pointer; contents are undefined at first use,
   * as on a GPU. */
  void *(*tg_static)(uint32_t slot, uint64_t size, uint64_t align);
  /* Abort the dispatch with a message (never returns). */
  void (*fail)(const char *message);
  /* The calling thread's context (for its lane: index % MOE_SIMD_WIDTH). */
  const MoeThreadCtx *(*current_thread)(void);
  /* Non-zero once the dispatch in flight is aborted (the watchdog's timeout,
   * another thread's failure). Loops of kernel code poll it (MOE_LOOP_POLL). */
  const volatile uint32_t *abort_flag;
  /* Called by a loop that saw *abort_flag set, with the loop's source file
   * and line: records them and leaves the dispatch (never returns, unless
   * the flag was stale). */
  void (*loop_abort)(const char *file, uint32_t line);
  /* tg_static for a `threadgroup` array or variable declared in kernel
   * code, with its name and element size: the storage ends against an
   * inaccessible guard page, so that an access past it is reported with the
   * array's name, the element index and the thread. */
  void *(*tg_array)(uint32_t slot, uint64_t size, uint64_t align, const char *name, uint64_t elem_size);
} MoeRuntimeApi;

typedef void (*MoeKernelEntry)(const MoeThreadCtx *t);

/* A [[threadgroup(n)]] parameter of a kernel: its name and element size, for reports. */
typedef struct MoeTgParamInfo {
  uint32_t index;                 /* n */
  uint32_t elem_size;             /* bytes of the pointee (0: unknown) */
  const char *name;
} MoeTgParamInfo;

typedef struct MoeKernelInfo {
  const char *name;               /* host name: the kernel's name or its [[host_name("...")]] */
  MoeKernelEntry entry;
  uint32_t uses_sync;             /* 1 when the source uses barriers or simd_* collectives (needs fibers) */
  uint32_t n_tg_params;           /* entries in tg_params */
  const MoeTgParamInfo *tg_params;
} MoeKernelInfo;

typedef int (*MoeBindRuntimeFn)(const MoeRuntimeApi *api);
typedef const MoeKernelInfo *(*MoeKernelsFn)(uint32_t *count);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RT_ABI_H */
