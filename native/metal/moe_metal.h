/*
 * moe_metal.h — the C interface of the Metal backend (metal_backend.mm).
 *
 * The .mm file holds only Metal calls. Everything else — argument checks,
 * launch geometry, binding order, timing statistics, async work — lives in
 * shared code (src/backend/*.ts and native/src) that the CPU backend's tests
 * cover. All functions return 0 on success, or non-zero with a message in
 * `err` (NUL-terminated, truncated to errlen).
 */
#ifndef MOE_METAL_H
#define MOE_METAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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
  uint64_t recommended_working_set;     /* bytes */
  uint32_t unified_memory;              /* hasUnifiedMemory */
  uint32_t families;                    /* MOE_MTL_FAMILY_* bits from supportsFamily: */
  uint32_t msl_version;                 /* highest MSL version requested: 31 = 3.1, 30, 24 */
  uint32_t max_threadgroup_memory;      /* maxThreadgroupMemoryLength */
} MoeMetalDeviceInfo;

typedef struct MoeMetalBinding {
  uint32_t index;   /* [[buffer(index)]] */
  void *data;       /* host bytes: copied in before and (unless is_bytes) back after */
  uint64_t size;
  uint32_t is_bytes; /* 1: setBytes (small constant structs, <= 4096 bytes); 0: a shared buffer */
} MoeMetalBinding;

typedef struct MoeMetalLaunch {
  uint32_t mode;        /* 0 dispatchThreads, 1 dispatchThreadgroups */
  uint32_t grid[3];
  uint32_t tg[3];
  const uint32_t *tg_mem; /* bytes per [[threadgroup(i)]] */
  uint32_t n_tg_mem;
} MoeMetalLaunch;

int moe_metal_device_info(MoeMetalDeviceInfo *out, char *err, size_t errlen);

/* Compile `source` and make a pipeline for `entry`. *pipeline is an opaque retained handle. */
int moe_metal_compile(const char *source, const char *entry, void **pipeline, uint32_t *exec_width,
                      uint32_t *max_threads, char *err, size_t errlen);
void moe_metal_release(void *pipeline);

/*
 * Encode `per_batch` back-to-back dispatches in one command buffer, `batches`
 * times. ns_per_batch[b] (may be NULL) receives GPUEndTime − GPUStartTime of
 * batch b in ns. Buffers are created once, filled from the bindings, and
 * copied back into them after the last batch.
 */
int moe_metal_dispatch(void *pipeline, const MoeMetalBinding *bindings, uint32_t n_bindings,
                       const MoeMetalLaunch *launch, uint32_t per_batch, uint32_t batches,
                       double *ns_per_batch, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
