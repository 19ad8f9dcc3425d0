// msl_cuda/rt.h — the compute builtins the generated entries pass to kernels
// (bi_*, builtin_as), computed from CUDA's blockIdx/threadIdx/blockDim and the
// launch's MoeCudaArgs, and the dynamic threadgroup memory. Part of msl_cuda.h.
//
// Metal's threadgroup is a CUDA block, its threads in the same linear order
// (x fastest), so thread_index_in_threadgroup / 32 is both the SIMD-group and
// the warp, and thread_index_in_simdgroup is the lane.
#ifndef MOE_CUDA_RT_H
#define MOE_CUDA_RT_H

// [[threadgroup(n)]] buffers: slices of one dynamic shared allocation.
extern __shared__ __align__(16) unsigned char __moe_dyn_smem[];

namespace moe_rt {
// The watchdog's cooperative stop: the emitter puts MOE_LOOP_POLL(counter,
// line) in the condition of every loop of kernel code; every
// MOE_LOOP_POLL_EVERY iterations (a power of two: the flag sits in host
// memory, across the bus) it reads the abort flag, and a thread that sees it
// set records the loop's line and exits. The entry stores the launch's flag
// pointer here for the loops of the kernel's helpers.
__device__ unsigned int* g_abort_flag;
#ifndef MOE_LOOP_POLL_EVERY
#define MOE_LOOP_POLL_EVERY 16384u
#endif
__device__ __noinline__ bool loop_poll(unsigned int line) {
  volatile unsigned int* f = g_abort_flag;
  if (f != nullptr && f[0] != 0u) {
    if (f[1] == 0u) f[1] = line;
    __threadfence_system();
    asm volatile("exit;");
  }
  return true;
}
#define MOE_LOOP_POLL(c, line) ((((++(c)) & (MOE_LOOP_POLL_EVERY - 1u)) != 0u) || ::moe_rt::loop_poll(line))

typedef moe::vec<uint, 3> u3_t;
MOE_FN inline u3_t u3(MoeCudaU3 a) { return u3_t(a.x, a.y, a.z); }
MOE_FN inline uint linear_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
MOE_FN inline u3_t bi_threadgroup_position_in_grid(const MoeCudaArgs& a) {
  return u3_t(blockIdx.x + a.origin.x, blockIdx.y + a.origin.y, blockIdx.z + a.origin.z);
}
MOE_FN inline u3_t bi_thread_position_in_grid(const MoeCudaArgs& a) {
  const u3_t p = bi_threadgroup_position_in_grid(a);
  return u3_t(p.x * a.dispatch_tg_size.x + threadIdx.x, p.y * a.dispatch_tg_size.y + threadIdx.y,
              p.z * a.dispatch_tg_size.z + threadIdx.z);
}
MOE_FN inline u3_t bi_thread_position_in_threadgroup(const MoeCudaArgs&) { return u3_t(threadIdx.x, threadIdx.y, threadIdx.z); }
MOE_FN inline u3_t bi_threads_per_threadgroup(const MoeCudaArgs&) { return u3_t(blockDim.x, blockDim.y, blockDim.z); }
MOE_FN inline u3_t bi_threadgroups_per_grid(const MoeCudaArgs& a) { return u3(a.threadgroups_per_grid); }
MOE_FN inline u3_t bi_threads_per_grid(const MoeCudaArgs& a) { return u3(a.threads_per_grid); }
MOE_FN inline u3_t bi_grid_size(const MoeCudaArgs& a) { return u3(a.threads_per_grid); }
MOE_FN inline u3_t bi_grid_origin(const MoeCudaArgs&) { return u3_t(0u); }
MOE_FN inline u3_t bi_dispatch_threads_per_threadgroup(const MoeCudaArgs& a) { return u3(a.dispatch_tg_size); }
MOE_FN inline uint bi_thread_index_in_threadgroup(const MoeCudaArgs&) { return linear_tid(); }
MOE_FN inline uint bi_thread_index_in_simdgroup(const MoeCudaArgs&) { return linear_tid() % 32u; }
MOE_FN inline uint bi_simdgroup_index_in_threadgroup(const MoeCudaArgs&) { return linear_tid() / 32u; }
MOE_FN inline uint bi_threads_per_simdgroup(const MoeCudaArgs&) { return 32u; }
MOE_FN inline uint bi_thread_execution_width(const MoeCudaArgs&) { return 32u; }
MOE_FN inline uint bi_simdgroups_per_threadgroup(const MoeCudaArgs&) {
  return (blockDim.x * blockDim.y * blockDim.z + 31u) / 32u;
}
MOE_FN inline uint bi_dispatch_simdgroups_per_threadgroup(const MoeCudaArgs& a) {
  return (a.dispatch_tg_size.x * a.dispatch_tg_size.y * a.dispatch_tg_size.z + 31u) / 32u;
}
MOE_FN inline uint bi_thread_index_in_quadgroup(const MoeCudaArgs&) { return linear_tid() % 4u; }
MOE_FN inline uint bi_quadgroup_index_in_threadgroup(const MoeCudaArgs&) { return linear_tid() / 4u; }
MOE_FN inline uint bi_quadgroups_per_threadgroup(const MoeCudaArgs&) { return (blockDim.x * blockDim.y * blockDim.z + 3u) / 4u; }

// A builtin as the kernel declared it: scalars take .x, 2-vectors .xy,
// 3-vectors .xyz (uint, ushort, int, ushort2, uint3, ...).
template <typename T> struct builtin_conv {
  MOE_FN static T from(const u3_t& v) { return T(v.x); }
  MOE_FN static T from(uint v) { return T(v); }
};
template <typename E> struct builtin_conv<moe::vec<E, 2>> {
  MOE_FN static moe::vec<E, 2> from(const u3_t& v) { return moe::vec<E, 2>(E(v.x), E(v.y)); }
  MOE_FN static moe::vec<E, 2> from(uint v) { return moe::vec<E, 2>(E(v)); }
};
template <typename E> struct builtin_conv<moe::vec<E, 3>> {
  MOE_FN static moe::vec<E, 3> from(const u3_t& v) { return moe::vec<E, 3>(E(v.x), E(v.y), E(v.z)); }
  MOE_FN static moe::vec<E, 3> from(uint v) { return moe::vec<E, 3>(E(v)); }
};
template <typename T, typename V> MOE_FN inline typename mstd::decay<T>::type builtin_as(const V& v) {
  return builtin_conv<typename mstd::decay<T>::type>::from(v);
}
}  // namespace moe_rt

#endif  // MOE_CUDA_RT_H
