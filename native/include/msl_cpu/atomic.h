// msl_cpu/atomic.h — metal::atomic<T> (atomic_int, atomic_uint, atomic_float,
// atomic_bool, atomic_ulong), memory_order, thread_scope, atomic_thread_fence
// and the atomic_*_explicit functions. Device atomics are hit by several OS
// threads at once (one per threadgroup in flight), so every operation is a
// GCC __atomic builtin (sequentially consistent, whatever order is asked:
// never weaker than Metal's); float add/sub/min/max are compare-and-swap loops.
// Part of msl_cpu.h.
#ifndef MOE_METAL_ATOMIC_H
#define MOE_METAL_ATOMIC_H

#include "../msl_common/atomic_types.h"

namespace metal {
// Orders the calling thread's memory accesses. Threadgroup memory is only
// touched by fibers of one OS thread (a compiler barrier is enough); device
// memory is shared between OS threads (a real fence).
inline void atomic_thread_fence(mem_flags f, memory_order = memory_order_seq_cst, thread_scope = thread_scope_device) {
  if (uint(f & mem_flags::mem_device)) __atomic_thread_fence(__ATOMIC_SEQ_CST);
  else __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

#define MOE_SC __ATOMIC_SEQ_CST

template <typename T> inline T atomic_load_explicit(const volatile atomic<T>* a, memory_order = memory_order_relaxed) {
  T r;
  __atomic_load(moe_atomic_ptr(a), &r, MOE_SC);
  return r;
}
template <typename T> inline void atomic_store_explicit(volatile atomic<T>* a, moe::nd<T> v, memory_order = memory_order_relaxed) {
  __atomic_store(moe_atomic_ptr(a), &v, MOE_SC);
}
template <typename T> inline T atomic_exchange_explicit(volatile atomic<T>* a, moe::nd<T> v, memory_order = memory_order_relaxed) {
  T r;
  __atomic_exchange(moe_atomic_ptr(a), &v, &r, MOE_SC);
  return r;
}
template <typename T>
inline bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* a, moe::nd<T>* expected, moe::nd<T> desired,
                                                  memory_order = memory_order_relaxed, memory_order = memory_order_relaxed) {
  return __atomic_compare_exchange(moe_atomic_ptr(a), expected, &desired, false, MOE_SC, MOE_SC);
}
template <typename T>
inline bool atomic_compare_exchange_strong_explicit(volatile atomic<T>* a, moe::nd<T>* expected, moe::nd<T> desired,
                                                    memory_order = memory_order_relaxed, memory_order = memory_order_relaxed) {
  return __atomic_compare_exchange(moe_atomic_ptr(a), expected, &desired, false, MOE_SC, MOE_SC);
}
// Read-modify-write by compare-and-swap: returns the old value.
template <typename T, typename F> inline T moe_atomic_rmw(volatile atomic<T>* a, F f) {
  T* p = moe_atomic_ptr(a);
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  T nv = f(old);
  while (!__atomic_compare_exchange(p, &old, &nv, true, MOE_SC, __ATOMIC_RELAXED)) nv = f(old);
  return old;
}
#define MOE_ATOMIC_OP(name, builtin, expr)                                                                     \
  template <typename T> inline T name(volatile atomic<T>* a, moe::nd<T> v, memory_order = memory_order_relaxed) { \
    if constexpr (std::is_integral<T>::value && !std::is_same<T, bool>::value && builtin != 0) {               \
      return moe_atomic_builtin<builtin>(moe_atomic_ptr(a), v);                                                \
    } else {                                                                                                   \
      return moe_atomic_rmw(a, [v](T o) { return T(expr); });                                                  \
    }                                                                                                          \
  }
enum { MOE_ADD = 1, MOE_SUB, MOE_AND, MOE_OR, MOE_XOR };
template <int Op, typename T> inline T moe_atomic_builtin(T* p, T v) {
  if constexpr (Op == MOE_ADD) return __atomic_fetch_add(p, v, MOE_SC);
  else if constexpr (Op == MOE_SUB) return __atomic_fetch_sub(p, v, MOE_SC);
  else if constexpr (Op == MOE_AND) return __atomic_fetch_and(p, v, MOE_SC);
  else if constexpr (Op == MOE_OR) return __atomic_fetch_or(p, v, MOE_SC);
  else return __atomic_fetch_xor(p, v, MOE_SC);
}
MOE_ATOMIC_OP(atomic_fetch_add_explicit, MOE_ADD, o + v)
MOE_ATOMIC_OP(atomic_fetch_sub_explicit, MOE_SUB, o - v)
MOE_ATOMIC_OP(atomic_fetch_and_explicit, MOE_AND, o & v)
MOE_ATOMIC_OP(atomic_fetch_or_explicit, MOE_OR, o | v)
MOE_ATOMIC_OP(atomic_fetch_xor_explicit, MOE_XOR, o ^ v)
MOE_ATOMIC_OP(atomic_fetch_max_explicit, 0, o < v ? v : o)
MOE_ATOMIC_OP(atomic_fetch_min_explicit, 0, v < o ? v : o)
#undef MOE_ATOMIC_OP
#undef MOE_SC
}  // namespace metal

#endif  // MOE_METAL_ATOMIC_H
