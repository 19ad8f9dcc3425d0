/*
 * metal_c_api.h — the C interface of the Metal backend (metal_backend.mm).
 *
 * The .mm file holds only Metal calls. Everything else — argument checks,
 * launch geometry and limits, binding order, the setBytes/buffer split,
 * timing statistics, async work, locking — lives in shared code
 * (src/backend/launch.ts, src/backend/metal.ts, native/metal/metal_glue.cc)
 * that the Linux tests exercise through a fake implementation of this header
 * (native/test/metal/fake_metal.cc). Callers guarantee what the comments
 * below say ("the caller checked ..."); the implementation does not check
 * again.
 *
 * Every function that can fail returns 0 on success, or non-zero with a
 * message in `err` (NUL-terminated, truncated to errlen).
 */
#ifndef MOE_METAL_C_API_H
#define MOE_METAL_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GPU families from -[MTLDevice supportsFamily:]. */
enum {
  MOE_MTL_FAMILY_APPLE5 = 1 << 0,
  MOE_MTL_FAMILY_APPLE6 = 1 << 1,
  MOE_MTL_FAMILY_APPLE7 = 1 << 2,
  MOE_MTL_FAMILY_APPLE8 = 1 << 3,
  MOE_MTL_FAMILY_APPLE9 = 1 << 4,
  MOE_MTL_FAMILY_MAC2 = 1 << 5,
  MOE_MTL_FAMILY_METAL3 = 1 << 6,
};

typedef struct MoeMetalDeviceInfo {
  char name[256];
  uint32_t max_threads_per_threadgroup; /* maxThreadsPerThreadgroup.width */
  uint64_t recommended_working_set;     /* recommendedMaxWorkingSetSize, bytes */
  uint32_t unified_memory;              /* hasUnifiedMemory */
  uint32_t families;                    /* MOE_MTL_FAMILY_* bits */
  uint32_t msl_version;                 /* the MSL version moe_metal_compile requests: 31 = 3.1, 30, 24 */
  uint32_t max_threadgroup_memory;      /* maxThreadgroupMemoryLength, bytes */
} MoeMetalDeviceInfo;

typedef struct MoeMetalPipelineInfo {
  uint32_t exec_width;                /* threadExecutionWidth */
  uint32_t max_threads;               /* maxTotalThreadsPerThreadgroup */
  uint32_t static_threadgroup_memory; /* staticThreadgroupMemoryLength, bytes */
} MoeMetalPipelineInfo;

typedef struct MoeMetalBinding {
  uint32_t index; /* [[buffer(index)]] */
  /* Host bytes. A buffer binding's bytes are copied in before the first
     dispatch and back after the last one; a setBytes binding's are read. */
  void *data;
  uint64_t size;     /* bytes; a buffer may have 0 (the caller passes data != NULL anyway) */
  uint32_t is_bytes; /* 1: setBytes (the caller checked size <= 4096); 0: a shared-storage buffer */
  /* -1, or the position in the bindings array of an earlier buffer binding of
     the same host memory: both indices then bind the same MTLBuffer. */
  int32_t alias;
  /* Redzones (native/common/redzone.h), buffer bindings only: 0, or the
     bytes of guard before and after the buffer (a multiple of 256). When
     non-zero, `data` holds guard + size + guard bytes (the guards already
     filled with their pattern by the caller); the MTLBuffer is made of all of
     them and bound at offset `guard`, and all of them are copied back, so
     the caller checks the guards. */
  uint64_t guard;
} MoeMetalBinding;

typedef struct MoeMetalLaunch {
  uint32_t mode;    /* 0 dispatchThreads, 1 dispatchThreadgroups */
  uint32_t grid[3]; /* threads (mode 0) or threadgroups (mode 1); the caller checked: none is 0 */
  uint32_t tg[3];   /* the caller checked: product <= the pipeline's max_threads */
  /* Bytes per [[threadgroup(i)]]; the caller checked: each a multiple of 16,
     and their sum plus the static length within the device's maximum. 0: not set. */
  const uint32_t *tg_mem;
  uint32_t n_tg_mem;
} MoeMetalLaunch;

/* The system default device (created once per process). */
int moe_metal_device_info(MoeMetalDeviceInfo *out, char *err, size_t errlen);

/* Compile `source` (UTF-8) at the MSL version of MoeMetalDeviceInfo.msl_version,
   safe math unless fast_math, and make a compute pipeline for `entry`.
   *pipeline is an opaque retained handle for moe_metal_dispatch and
   moe_metal_release. */
int moe_metal_compile(const char *source, const char *entry, uint32_t fast_math, void **pipeline,
                      MoeMetalPipelineInfo *info, char *err, size_t errlen);

/* Releases a handle from moe_metal_compile (NULL is ignored). */
void moe_metal_release(void *pipeline);

/*
 * Buffers are created once and filled from the bindings (guards included). Then, when warmup
 * > 0, one untimed command buffer of `warmup` dispatches; then `batches`
 * command buffers of `per_batch` back-to-back dispatches each (one compute
 * encoder, serial dispatch). ns_per_batch[b] (may be NULL) receives
 * (GPUEndTime − GPUStartTime) of batch b in nanoseconds: the whole command
 * buffer, not one dispatch. The buffers are copied back into the bindings'
 * host bytes after the last batch, also when a command buffer failed.
 * When a command buffer fails and it carries function logs (shader
 * validation: MTL_SHADER_VALIDATION=1 in the environment, see
 * docs/metal-backend.md), `err` holds "command buffer failed: ..." followed
 * by one line per log: "shader validation: FUNCTION at FILE:LINE:COL: TEXT"
 * (the location parts only when Metal gives them).
 */
int moe_metal_dispatch(void *pipeline, const MoeMetalBinding *bindings, uint32_t n_bindings,
                       const MoeMetalLaunch *launch, uint32_t warmup, uint32_t per_batch, uint32_t batches,
                       double *ns_per_batch, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
