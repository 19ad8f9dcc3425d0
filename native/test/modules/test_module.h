// test_module.h — what a hand-written test kernel module needs: the runtime
// table and the two exported symbols of native/include/msl_cpu/abi.h.
#ifndef MOE_TEST_MODULE_H
#define MOE_TEST_MODULE_H

#include <stdint.h>
#include <string.h>

#include "msl_cpu/abi.h"

#define MOE_EXPORT extern "C" __attribute__((visibility("default")))

static const MoeRuntimeApi *rt = nullptr;

MOE_EXPORT int __moe_bind_runtime(const MoeRuntimeApi *api) {
  if (api == nullptr || api->abi_version != MOE_ABI_VERSION) return 1;
  rt = api;
  return 0;
}

// [[thread_position_in_grid]].x etc.
static inline uint32_t gid_x(const MoeThreadCtx *t) { return t->g->tg_pos.x * t->d->dispatch_tg_size.x + t->tid.x; }
static inline uint32_t gid_y(const MoeThreadCtx *t) { return t->g->tg_pos.y * t->d->dispatch_tg_size.y + t->tid.y; }
static inline uint32_t gid_z(const MoeThreadCtx *t) { return t->g->tg_pos.z * t->d->dispatch_tg_size.z + t->tid.z; }
static inline uint32_t group_linear(const MoeThreadCtx *t) {
  const MoeU3 &n = t->d->threadgroups_per_grid;
  return t->g->tg_pos.x + n.x * (t->g->tg_pos.y + n.y * t->g->tg_pos.z);
}
template <typename T>
static inline T *buf(const MoeThreadCtx *t, uint32_t i) {
  return static_cast<T *>(t->d->buffers[i]);
}
template <typename T>
static inline T simd_sum(T v, uint64_t *mask_out = nullptr) {
  uint64_t mask = 0;
  const uint8_t *slots = static_cast<const uint8_t *>(rt->simd_exchange(&v, sizeof v, &mask));
  T s = 0;
  for (uint32_t l = 0; l < MOE_SIMD_WIDTH; ++l) {
    if (mask & (uint64_t(1) << l)) {
      T x;
      memcpy(&x, slots + l * MOE_SIMD_SLOT_BYTES, sizeof x);
      s += x;
    }
  }
  if (mask_out) *mask_out = mask;
  return s;
}

#endif
