// fake_rt.h — a hand-written MoeRuntimeApi for the header tests, and a tiny
// check framework. Include after msl_cpu.h, in exactly one TU per program.
//
// SIMD-group collectives are driven, not run: a test fills the 32 lane slots
// (fake::set_lane) and the active mask, picks the calling lane
// (fake::as_lane), then calls the collective; simd_exchange copies the
// caller's value into its slot and returns all 32, as the runtime would once
// every lane had arrived.
#ifndef MOE_FAKE_RT_H
#define MOE_FAKE_RT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace fake {
static int failures = 0, checks = 0;
static unsigned tg_barriers = 0, simd_barriers = 0, exchanges = 0;
alignas(16) static unsigned char slots[MOE_SIMD_WIDTH * MOE_SIMD_SLOT_BYTES];
static uint64_t mask = ~uint64_t(0) >> (64 - MOE_SIMD_WIDTH);
static MoeDispatchCtx dctx;
static MoeGroupCtx gctx;
static MoeThreadCtx tctx;
alignas(64) static unsigned char tg_mem[8][4096];
static uint64_t tg_size[8];

static void tg_barrier() { ++tg_barriers; }
static void simd_barrier() { ++simd_barriers; }
static const void* simd_exchange(const void* v, uint32_t size, uint64_t* active) {
  ++exchanges;
  if (size > MOE_SIMD_SLOT_BYTES) abort();
  memcpy(slots + (tctx.index % MOE_SIMD_WIDTH) * MOE_SIMD_SLOT_BYTES, v, size);
  *active = mask;
  return slots;
}
static void* tg_static(uint32_t slot, uint64_t size, uint64_t align) {
  if (slot >= 8 || size > sizeof tg_mem[0] || align > 64) abort();
  tg_size[slot] = size;
  return tg_mem[slot];
}
static void fail(const char* m) {
  fprintf(stderr, "fail(): %s\n", m);
  abort();
}
static const MoeThreadCtx* current_thread() { return &tctx; }
static const MoeRuntimeApi api = {MOE_ABI_VERSION, tg_barrier, simd_barrier, simd_exchange, tg_static, fail, current_thread};

// Binds the fake runtime and sets up a 1-D dispatch context.
inline void bind() {
  if (__moe_bind_runtime(&api) != 0) {
    fprintf(stderr, "__moe_bind_runtime refused the fake runtime\n");
    exit(1);
  }
  tctx.d = &dctx;
  tctx.g = &gctx;
}
// The calling lane of the next collective (thread index = lane).
inline void as_lane(unsigned lane) { tctx.index = lane; }
template <typename V> inline void set_lane(unsigned lane, const V& v) {
  static_assert(sizeof(V) <= MOE_SIMD_SLOT_BYTES, "slot");
  memcpy(slots + lane * MOE_SIMD_SLOT_BYTES, &v, sizeof(V));
}
}  // namespace fake

#define CHECK(cond)                                                        \
  do {                                                                     \
    ++fake::checks;                                                        \
    if (!(cond)) {                                                         \
      ++fake::failures;                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)
#define CHECK_EQ(a, b)                                                                          \
  do {                                                                                          \
    ++fake::checks;                                                                             \
    const double va_ = double(a), vb_ = double(b);                                              \
    if (!(va_ == vb_)) {                                                                        \
      ++fake::failures;                                                                         \
      fprintf(stderr, "%s:%d: %s == %s failed: %.9g vs %.9g\n", __FILE__, __LINE__, #a, #b, va_, vb_); \
    }                                                                                           \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                                                   \
  do {                                                                                          \
    ++fake::checks;                                                                             \
    const double va_ = double(a), vb_ = double(b);                                              \
    if (!(va_ - vb_ <= (tol) && vb_ - va_ <= (tol))) {                                          \
      ++fake::failures;                                                                         \
      fprintf(stderr, "%s:%d: %s ~ %s failed: %.9g vs %.9g\n", __FILE__, __LINE__, #a, #b, va_, vb_); \
    }                                                                                           \
  } while (0)
// Same type, exactly (overload resolution results).
template <typename A, typename B> struct same_type { static const bool value = false; };
template <typename A> struct same_type<A, A> { static const bool value = true; };
#define CHECK_TYPE(T, expr) static_assert(same_type<T, decltype(expr)>::value, #expr " is not " #T)

inline int report(const char* name) {
  printf("%s: %d checks, %d failures\n", name, fake::checks, fake::failures);
  return fake::failures ? 1 : 0;
}

#endif  // MOE_FAKE_RT_H
