// msl_cuda/sync.h — mem_flags, threadgroup_barrier (__syncthreads),
// simdgroup_barrier (__syncwarp) and the SIMD-group (32 lanes = a warp) and
// quad-group (4 lanes) collectives as warp shuffles over the active mask
// (__activemask(): the lanes that exist and are executing the call).
//
// Reductions over a full warp are butterflies (__shfl_xor_sync: every lane
// gets the same bits, since each step combines a pair commutatively); over a
// partial warp (an edge threadgroup, divergent code) a fold of the active
// lanes in lane order, as on the CPU backend. A shuffle from a lane that is
// not active returns the caller's own value, as on the CPU backend. Values:
// scalars and vectors, moved as 32-bit words. Part of msl_cuda.h.
#ifndef MOE_CUDA_SYNC_H
#define MOE_CUDA_SYNC_H

#include "../msl_common/collectives.h"

namespace metal {
// __syncthreads orders shared and global memory for the block's threads.
MOE_FN inline void threadgroup_barrier(mem_flags = mem_flags::mem_none) { __syncthreads(); }
MOE_FN inline void simdgroup_barrier(mem_flags = mem_flags::mem_none) { __syncwarp(__activemask()); }
}  // namespace metal

namespace moe {
MOE_FN inline uint lane_id() { return ::moe_rt::linear_tid() % 32u; }
MOE_FN inline bool lane_on(unsigned mask, uint i) { return i < 32u && ((mask >> i) & 1u) != 0u; }

// Lane `src`'s v (src in 0..31; undefined when that lane is not active):
// CUDA's own shuffle for 4- and 8-byte scalars, else word by word.
template <typename V> MOE_FN inline V shfl(unsigned mask, const V& v, uint src) {
  const int s = int(src & 31u);
  if constexpr (mstd::is_same<V, float>::value || mstd::is_same<V, int>::value || mstd::is_same<V, uint>::value ||
                mstd::is_same<V, long>::value || mstd::is_same<V, ulong>::value) {
    return __shfl_sync(mask, v, s);
  } else if constexpr (sizeof(V) % 4 == 0) {
    constexpr int W = int(sizeof(V) / 4);
    V r = v;
    unsigned* w = reinterpret_cast<unsigned*>(&r);
    for (int i = 0; i < W; ++i) w[i] = __shfl_sync(mask, w[i], s);
    return r;
  } else {
    constexpr int W = int((sizeof(V) + 3) / 4);
    unsigned w[W];
    for (int i = 0; i < W; ++i) w[i] = 0u;
    MOE_MEMCPY(w, &v, sizeof(V));
    for (int i = 0; i < W; ++i) w[i] = __shfl_sync(mask, w[i], s);
    V r;
    MOE_MEMCPY(&r, w, sizeof(V));
    return r;
  }
}
// Lane `src`'s value when that lane is active, else the caller's own.
template <typename V> MOE_FN inline V from_lane(unsigned mask, const V& v, uint src) {
  const V r = shfl(mask, v, src);  // every active lane takes part, whatever its source
  return lane_on(mask, src) ? r : v;
}

// Fold of the active lanes of [base, base + width) in lane order (the
// caller's own value when none is). Every active lane runs the same shuffles.
template <typename V, typename F> MOE_FN inline V fold(unsigned mask, const V& v, uint base, uint width, F f) {
  bool first = true;
  V s = v;
  for (uint j = 0; j < width; ++j) {
    const V x = shfl(mask, v, base + j);
    if (!lane_on(mask, base + j)) continue;
    s = first ? x : f(s, x);
    first = false;
  }
  return s;
}
template <typename V, typename F> MOE_FN inline V simd_reduce(const V& v, F f) {
  const unsigned mask = __activemask();
  if (mask == 0xffffffffu) {
    V s = v;
    for (uint off = 16; off > 0; off >>= 1) s = f(s, shfl(mask, s, lane_id() ^ off));
    return s;
  }
  return fold(mask, v, 0u, 32u, f);
}
template <typename V, typename F> MOE_FN inline V quad_reduce(const V& v, F f) {
  return fold(__activemask(), v, lane_id() & ~3u, 4u, f);
}
// Prefix over the active lanes below (exclusive) or up to (inclusive) the caller.
template <typename V, typename F> MOE_FN inline V prefix(const V& v, bool inclusive, const V& identity, F f) {
  const unsigned mask = __activemask();
  const uint me = lane_id();
  V s = identity;
  for (uint i = 0; i < 32u; ++i) {
    const V x = shfl(mask, v, i);
    if (lane_on(mask, i) && (i < me || (inclusive && i == me))) s = f(s, x);
  }
  return s;
}
}  // namespace moe

namespace metal {
#define MOE_SIMD_REDUCE(name, F, scope)                                                  \
  template <typename X, MOE_SIMD_ARG(X)> MOE_FN inline moe::value_t<X> name(const X& x) { \
    typedef moe::value_t<X> V;                                                            \
    return moe::scope##_reduce(V(moe::val(x)), moe::F());                                \
  }
MOE_REDUCTIONS(MOE_SIMD_REDUCE)
#undef MOE_SIMD_REDUCE

#define MOE_SIMD_PREFIX(name, inclusive, identity, F)                                    \
  template <typename X, MOE_SIMD_ARG(X)> MOE_FN inline moe::value_t<X> name(const X& x) { \
    typedef moe::value_t<X> V;                                                            \
    return moe::prefix(V(moe::val(x)), inclusive, V(identity), moe::F());                 \
  }
MOE_PREFIXES(MOE_SIMD_PREFIX)
#undef MOE_SIMD_PREFIX

#define MOE_SIMD_SHUFFLE(name, src)                                                                 \
  template <typename X, MOE_SIMD_ARG(X)> MOE_FN inline moe::value_t<X> name(const X& x, ushort k) {  \
    typedef moe::value_t<X> V;                                                                      \
    const uint lane = moe::lane_id();                                                               \
    (void)lane;                                                                                     \
    return moe::from_lane(__activemask(), V(moe::val(x)), uint(src));                               \
  }
MOE_SHUFFLES(MOE_SIMD_SHUFFLE)
#undef MOE_SIMD_SHUFFLE

// simd_shuffle_and_fill_down/up: the SIMD-group is cut into groups of `modulo`
// lanes; a lane whose source falls outside its group takes `fill` from the
// lane of the group that source wraps to.
// Lane src's (data, fill) pair: its data when the source stays in the group,
// its fill when it wrapped; the lane's own data when src is not active.
template <typename V> MOE_FN inline V shfl_fill_(unsigned mask, const fill_pair<V>& own, uint src, bool in_group) {
  const fill_pair<V> got = moe::shfl(mask, own, src);
  if (!moe::lane_on(mask, src)) return own.data;
  return in_group ? got.data : got.fill;
}
template <typename X, typename Y, MOE_SIMD_ARG(X)>
MOE_FN inline moe::value_t<X> simd_shuffle_and_fill_down(const X& data, const Y& fill, ushort delta, ushort modulo = 32) {
  typedef moe::value_t<X> V;
  const fill_pair<V> own = {V(moe::val(data)), V(moe::val(fill))};
  const uint lane = moe::lane_id();
  const uint m = modulo ? modulo : 32u, base = lane - lane % m, p = lane % m + delta;
  return shfl_fill_(__activemask(), own, base + p % m, p < m);
}
template <typename X, typename Y, MOE_SIMD_ARG(X)>
MOE_FN inline moe::value_t<X> simd_shuffle_and_fill_up(const X& data, const Y& fill, ushort delta, ushort modulo = 32) {
  typedef moe::value_t<X> V;
  const fill_pair<V> own = {V(moe::val(data)), V(moe::val(fill))};
  const uint lane = moe::lane_id();
  const uint m = modulo ? modulo : 32u, base = lane - lane % m, p = lane % m;
  return shfl_fill_(__activemask(), own, base + (p + m - delta % m) % m, p >= delta);
}

// The value of the lowest active lane.
template <typename X, MOE_SIMD_ARG(X)> MOE_FN inline moe::value_t<X> simd_broadcast_first(const X& x) {
  typedef moe::value_t<X> V;
  const unsigned mask = __activemask();
  return moe::shfl(mask, V(moe::val(x)), uint(__ffs(int(mask)) - 1));
}

MOE_FN inline simd_vote simd_ballot(bool b) { return simd_vote(__ballot_sync(__activemask(), b)); }
MOE_FN inline simd_vote simd_active_threads_mask() { return simd_vote(__activemask()); }
MOE_FN inline bool simd_all(bool b) { return __all_sync(__activemask(), b) != 0; }
MOE_FN inline bool simd_any(bool b) { return __any_sync(__activemask(), b) != 0; }
MOE_FN inline bool quad_all(bool b) {
  const unsigned quad = 0xfu << (moe::lane_id() & ~3u);
  const unsigned votes = __ballot_sync(__activemask(), b) | ~__activemask();
  return (votes & quad) == quad;
}
MOE_FN inline bool quad_any(bool b) {
  const unsigned quad = 0xfu << (moe::lane_id() & ~3u);
  return (__ballot_sync(__activemask(), b) & quad) != 0u;
}
MOE_FN inline bool simd_is_first() { return moe::lane_id() == uint(__ffs(int(__activemask())) - 1); }
MOE_FN inline bool simd_is_helper_thread() { return false; }
MOE_FN inline bool quad_is_helper_thread() { return false; }
}  // namespace metal

#endif  // MOE_CUDA_SYNC_H
