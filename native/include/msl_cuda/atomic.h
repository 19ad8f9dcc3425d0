// msl_cuda/atomic.h — metal::atomic<T> (atomic_int, atomic_uint, atomic_float,
// atomic_bool, atomic_long, atomic_ulong), memory_order, thread_scope,
// atomic_thread_fence and the atomic_*_explicit functions on CUDA's atomic
// functions (atomicAdd, atomicCAS, ...): native where CUDA has the operation
// for the type, a compare-and-swap loop on the same-sized word otherwise
// (float min/max, 64-bit signed min/max...; bool on its aligned 32-bit word).
// Device-scope atomics, so never weaker than Metal's relaxed order.
// Part of msl_cuda.h.
#ifndef MOE_CUDA_ATOMIC_H
#define MOE_CUDA_ATOMIC_H

#include "../msl_common/atomic_types.h"

namespace metal {
MOE_FN inline void atomic_thread_fence(mem_flags f, memory_order = memory_order_seq_cst, thread_scope = thread_scope_device) {
  if (uint(f & mem_flags::mem_device)) __threadfence();
  else __threadfence_block();
}

// The word type CUDA's atomicCAS takes for a T of 4 or 8 bytes.
template <int Bytes> struct moe_word;
template <> struct moe_word<4> { typedef unsigned int type; };
template <> struct moe_word<8> { typedef unsigned long long type; };

// Read-modify-write by compare-and-swap: returns the old value.
template <typename T, typename F> MOE_FN inline T moe_atomic_rmw(T* p, F f) {
  if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
    typedef typename moe_word<int(sizeof(T))>::type W;
    W* wp = reinterpret_cast<W*>(p);
    W old = *reinterpret_cast<volatile W*>(wp);
    for (;;) {
      const T nv = f(moe::bitcast<T>(old));
      const W got = atomicCAS(wp, old, moe::bitcast<W>(nv));
      if (got == old) return moe::bitcast<T>(old);
      old = got;
    }
  } else {
    // 1 or 2 bytes: the aligned 32-bit word that holds it.
    const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
    unsigned int* wp = reinterpret_cast<unsigned int*>(addr & ~uintptr_t(3));
    const unsigned shift = unsigned(addr & 3u) * 8u;
    const unsigned mask = (sizeof(T) == 1 ? 0xffu : 0xffffu) << shift;
    unsigned int old = *reinterpret_cast<volatile unsigned int*>(wp);
    for (;;) {
      T cur;
      const unsigned bits = (old & mask) >> shift;
      MOE_MEMCPY(&cur, &bits, sizeof(T));
      const T nv = f(cur);
      unsigned nb = 0;
      MOE_MEMCPY(&nb, &nv, sizeof(T));
      const unsigned want = (old & ~mask) | ((nb << shift) & mask);
      const unsigned got = atomicCAS(wp, old, want);
      if (got == old) return cur;
      old = got;
    }
  }
}

template <typename T> MOE_FN inline T atomic_load_explicit(const volatile atomic<T>* a, memory_order = memory_order_relaxed) {
  return *reinterpret_cast<const volatile T*>(&a->__v);
}
template <typename T> MOE_FN inline void atomic_store_explicit(volatile atomic<T>* a, moe::nd<T> v, memory_order = memory_order_relaxed) {
  moe_atomic_rmw(moe_atomic_ptr(a), [v](T) { return v; });
}
template <typename T> MOE_FN inline T atomic_exchange_explicit(volatile atomic<T>* a, moe::nd<T> v, memory_order = memory_order_relaxed) {
  return moe_atomic_rmw(moe_atomic_ptr(a), [v](T) { return v; });
}
// Unsigned integer of T's size: compare-and-swap compares bits, as Metal does.
template <typename T> using moe_bits_t = typename mstd::conditional<
    sizeof(T) == 8, unsigned long long,
    typename mstd::conditional<sizeof(T) == 4, unsigned int,
                               typename mstd::conditional<sizeof(T) == 2, unsigned short, unsigned char>::type>::type>::type;
template <typename T>
MOE_FN inline bool moe_atomic_cas(volatile atomic<T>* a, moe::nd<T>* expected, moe::nd<T> desired) {
  const moe_bits_t<T> want = moe::bitcast<moe_bits_t<T>>(*expected);
  bool ok = false;
  const T old = moe_atomic_rmw(moe_atomic_ptr(a), [&](T cur) {
    ok = moe::bitcast<moe_bits_t<T>>(cur) == want;
    return ok ? desired : cur;
  });
  if (!ok) *expected = old;
  return ok;
}
template <typename T>
MOE_FN inline bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* a, moe::nd<T>* expected, moe::nd<T> desired,
                                                         memory_order = memory_order_relaxed, memory_order = memory_order_relaxed) {
  return moe_atomic_cas(a, expected, desired);
}
template <typename T>
MOE_FN inline bool atomic_compare_exchange_strong_explicit(volatile atomic<T>* a, moe::nd<T>* expected, moe::nd<T> desired,
                                                           memory_order = memory_order_relaxed, memory_order = memory_order_relaxed) {
  return moe_atomic_cas(a, expected, desired);
}

// CUDA's own functions where they exist for the type; the CAS loop otherwise.
enum { MOE_ADD = 1, MOE_SUB, MOE_AND, MOE_OR, MOE_XOR, MOE_MAX, MOE_MIN };
template <int Op, typename T> struct moe_native_atomic : mstd::false_type {};
#define MOE_NATIVE(op, T) template <> struct moe_native_atomic<op, T> : mstd::true_type {};
MOE_NATIVE(MOE_ADD, int) MOE_NATIVE(MOE_ADD, uint) MOE_NATIVE(MOE_ADD, float) MOE_NATIVE(MOE_ADD, ulong)
MOE_NATIVE(MOE_SUB, int) MOE_NATIVE(MOE_SUB, uint)
MOE_NATIVE(MOE_AND, int) MOE_NATIVE(MOE_AND, uint) MOE_NATIVE(MOE_AND, ulong)
MOE_NATIVE(MOE_OR, int) MOE_NATIVE(MOE_OR, uint) MOE_NATIVE(MOE_OR, ulong)
MOE_NATIVE(MOE_XOR, int) MOE_NATIVE(MOE_XOR, uint) MOE_NATIVE(MOE_XOR, ulong)
MOE_NATIVE(MOE_MAX, int) MOE_NATIVE(MOE_MAX, uint) MOE_NATIVE(MOE_MAX, ulong) MOE_NATIVE(MOE_MAX, long)
MOE_NATIVE(MOE_MIN, int) MOE_NATIVE(MOE_MIN, uint) MOE_NATIVE(MOE_MIN, ulong) MOE_NATIVE(MOE_MIN, long)
#undef MOE_NATIVE
// (ulong and long are 64-bit: CUDA's functions take unsigned long long / long long.)
template <typename T> struct moe_cuda_int { typedef T type; };
template <> struct moe_cuda_int<ulong> { typedef unsigned long long type; };
template <> struct moe_cuda_int<long> { typedef long long type; };
template <int Op, typename T> MOE_FN inline T moe_atomic_native(T* p, T v) {
  typedef typename moe_cuda_int<T>::type C;
  C* q = reinterpret_cast<C*>(p);
  const C w = C(v);
  if constexpr (Op == MOE_ADD) return T(atomicAdd(q, w));
  else if constexpr (Op == MOE_SUB) return T(atomicSub(q, w));
  else if constexpr (Op == MOE_AND) return T(atomicAnd(q, w));
  else if constexpr (Op == MOE_OR) return T(atomicOr(q, w));
  else if constexpr (Op == MOE_XOR) return T(atomicXor(q, w));
  else if constexpr (Op == MOE_MAX) return T(atomicMax(q, w));
  else return T(atomicMin(q, w));
}
#define MOE_ATOMIC_OP(name, op, expr)                                                                                 \
  template <typename T> MOE_FN inline T name(volatile atomic<T>* a, moe::nd<T> v, memory_order = memory_order_relaxed) { \
    if constexpr (moe_native_atomic<op, T>::value) {                                                                   \
      return moe_atomic_native<op>(moe_atomic_ptr(a), v);                                                              \
    } else {                                                                                                           \
      return moe_atomic_rmw(moe_atomic_ptr(a), [v](T o) { return T(expr); });                                          \
    }                                                                                                                  \
  }
MOE_ATOMIC_OP(atomic_fetch_add_explicit, MOE_ADD, o + v)
MOE_ATOMIC_OP(atomic_fetch_sub_explicit, MOE_SUB, o - v)
MOE_ATOMIC_OP(atomic_fetch_and_explicit, MOE_AND, o & v)
MOE_ATOMIC_OP(atomic_fetch_or_explicit, MOE_OR, o | v)
MOE_ATOMIC_OP(atomic_fetch_xor_explicit, MOE_XOR, o ^ v)
MOE_ATOMIC_OP(atomic_fetch_max_explicit, MOE_MAX, o < v ? v : o)
MOE_ATOMIC_OP(atomic_fetch_min_explicit, MOE_MIN, v < o ? v : o)
#undef MOE_ATOMIC_OP
}  // namespace metal

#endif  // MOE_CUDA_ATOMIC_H
