// msl_common/atomic_types.h — the types of MSL's atomics that both
// implementations share (msl_cpu/atomic.h on GCC's __atomic builtins,
// msl_cuda/atomic.h on CUDA's atomic functions): atomic<T> and its typedefs,
// memory_order (numbered as GCC's __ATOMIC_* orders), thread_scope.
// Part of msl_cpu.h and msl_cuda.h; not included alone.
#ifndef MOE_METAL_ATOMIC_TYPES_H
#define MOE_METAL_ATOMIC_TYPES_H

namespace moe {
template <typename T> struct same_ { typedef T type; };
template <typename T> using nd = typename same_<T>::type;  // a parameter that does not take part in deduction
}  // namespace moe

namespace metal {
enum memory_order {
  memory_order_relaxed,
  memory_order_consume,
  memory_order_acquire,
  memory_order_release,
  memory_order_acq_rel,
  memory_order_seq_cst,
};
enum thread_scope { thread_scope_thread, thread_scope_simdgroup, thread_scope_threadgroup, thread_scope_device };

template <typename T> struct atomic {
  T __v;
};
typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<bool> atomic_bool;
typedef atomic<float> atomic_float;
typedef atomic<long> atomic_long;
typedef atomic<ulong> atomic_ulong;

template <typename T> MOE_FN inline T* moe_atomic_ptr(const volatile atomic<T>* a) { return const_cast<T*>(&a->__v); }
}  // namespace metal

#endif  // MOE_METAL_ATOMIC_TYPES_H
