// msl_cpu/rt.h — the module's side of the runtime ABI (msl_cpu/abi.h):
// __moe_bind_runtime, threadgroup storage (tg_static) and the compute builtins
// the generated entries pass to kernels (bi_*, builtin_as). Part of msl_cpu.h.
#ifndef MOE_METAL_RT_H
#define MOE_METAL_RT_H

// The header is included once per module, so this definition is the module's.
extern "C" __attribute__((visibility("default"))) int __moe_bind_runtime(const MoeRuntimeApi* api) {
  if (!api || api->abi_version != MOE_ABI_VERSION) return 1;
  ::moe_rt::g_api = api;
  return 0;
}

namespace moe_rt {
// `threadgroup T x;` in a kernel: storage shared by the group, one per slot.
// T may be an array type (float[4][32]).
template <typename T> inline T& tg_static(uint32_t slot) {
  return *reinterpret_cast<T*>(api()->tg_static(slot, sizeof(T), alignof(T)));
}
// The same with the declaration's name and element type (E: T without its
// array extents), against a guard page: an access past it names the array.
template <typename T, typename E> inline T& tg_array(uint32_t slot, const char* name) {
  return *reinterpret_cast<T*>(api()->tg_array(slot, sizeof(T), alignof(T), name, sizeof(E)));
}

// The watchdog's cooperative stop: the emitter puts MOE_LOOP_POLL(counter,
// line) in the condition of every loop of kernel code. It reads the abort
// flag every MOE_LOOP_POLL_EVERY iterations (a power of two); a loop that
// sees it set leaves the dispatch, naming its line (and __FILE__: the .metal
// file, under the emitted #line directives).
#ifndef MOE_LOOP_POLL_EVERY
#define MOE_LOOP_POLL_EVERY 1024u
#endif
__attribute__((noinline, cold)) inline bool loop_stop(const char* file, unsigned line) {
  api()->loop_abort(file, line);
  return true;
}
inline bool loop_poll(const char* file, unsigned line) {
  if (__builtin_expect(*api()->abort_flag != 0u, 0)) return loop_stop(file, line);
  return true;
}
#ifndef MOE_LOOP_POLL  // (defined to `true` beforehand: no polls, for measuring their cost)
#define MOE_LOOP_POLL(c, line) \
  (__builtin_expect(((++(c)) & (MOE_LOOP_POLL_EVERY - 1u)) != 0u, 1) || ::moe_rt::loop_poll(__FILE__, (line)))
#endif

inline uint3 u3(MoeU3 a) { return uint3(a.x, a.y, a.z); }
inline uint3 bi_thread_position_in_grid(const MoeThreadCtx* t) {
  const MoeU3 p = t->g->tg_pos, s = t->d->dispatch_tg_size;
  return uint3(p.x * s.x + t->tid.x, p.y * s.y + t->tid.y, p.z * s.z + t->tid.z);
}
inline uint3 bi_thread_position_in_threadgroup(const MoeThreadCtx* t) { return u3(t->tid); }
inline uint3 bi_threadgroup_position_in_grid(const MoeThreadCtx* t) { return u3(t->g->tg_pos); }
inline uint3 bi_threads_per_threadgroup(const MoeThreadCtx* t) { return u3(t->g->tg_size); }
inline uint3 bi_threadgroups_per_grid(const MoeThreadCtx* t) { return u3(t->d->threadgroups_per_grid); }
inline uint3 bi_threads_per_grid(const MoeThreadCtx* t) { return u3(t->d->threads_per_grid); }
inline uint3 bi_grid_size(const MoeThreadCtx* t) { return u3(t->d->threads_per_grid); }
inline uint3 bi_grid_origin(const MoeThreadCtx*) { return uint3(0u); }
inline uint3 bi_dispatch_threads_per_threadgroup(const MoeThreadCtx* t) { return u3(t->d->dispatch_tg_size); }
inline uint bi_thread_index_in_threadgroup(const MoeThreadCtx* t) { return t->index; }
inline uint bi_thread_index_in_simdgroup(const MoeThreadCtx* t) { return t->index % MOE_SIMD_WIDTH; }
inline uint bi_simdgroup_index_in_threadgroup(const MoeThreadCtx* t) { return t->index / MOE_SIMD_WIDTH; }
inline uint bi_threads_per_simdgroup(const MoeThreadCtx*) { return MOE_SIMD_WIDTH; }
inline uint bi_thread_execution_width(const MoeThreadCtx*) { return MOE_SIMD_WIDTH; }
inline uint bi_simdgroups_per_threadgroup(const MoeThreadCtx* t) {
  return (t->g->n_threads + MOE_SIMD_WIDTH - 1) / MOE_SIMD_WIDTH;
}
inline uint bi_dispatch_simdgroups_per_threadgroup(const MoeThreadCtx* t) {
  const MoeU3 s = t->d->dispatch_tg_size;
  return (s.x * s.y * s.z + MOE_SIMD_WIDTH - 1) / MOE_SIMD_WIDTH;
}
inline uint bi_thread_index_in_quadgroup(const MoeThreadCtx* t) { return t->index % 4u; }
inline uint bi_quadgroup_index_in_threadgroup(const MoeThreadCtx* t) { return t->index / 4u; }
inline uint bi_quadgroups_per_threadgroup(const MoeThreadCtx* t) { return (t->g->n_threads + 3u) / 4u; }

// A builtin as the kernel declared it: scalars take .x, 2-vectors .xy,
// 3-vectors .xyz (uint, ushort, int, ushort2, uint3, ...).
template <typename T> struct builtin_conv {
  static T from(const uint3& v) { return T(v.x); }
  static T from(uint v) { return T(v); }
};
template <typename E> struct builtin_conv<moe::vec<E, 2>> {
  static moe::vec<E, 2> from(const uint3& v) { return moe::vec<E, 2>(E(v.x), E(v.y)); }
  static moe::vec<E, 2> from(uint v) { return moe::vec<E, 2>(E(v)); }
};
template <typename E> struct builtin_conv<moe::vec<E, 3>> {
  static moe::vec<E, 3> from(const uint3& v) { return moe::vec<E, 3>(E(v.x), E(v.y), E(v.z)); }
  static moe::vec<E, 3> from(uint v) { return moe::vec<E, 3>(E(v)); }
};
template <typename T, typename V> inline typename std::decay<T>::type builtin_as(const V& v) {
  return builtin_conv<typename std::decay<T>::type>::from(v);
}
}  // namespace moe_rt

#endif  // MOE_METAL_RT_H
