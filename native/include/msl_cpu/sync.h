// msl_cpu/sync.h — mem_flags, threadgroup_barrier, simdgroup_barrier and the
// SIMD-group (32 lanes) and quad-group (4 lanes) collectives, all built on the
// runtime's simd_exchange (msl_cpu/abi.h). Reductions and prefixes visit only
// the active lanes, in lane order, so results are deterministic. Values:
// scalars and vectors up to MOE_SIMD_SLOT_BYTES. Part of msl_cpu.h.
#ifndef MOE_METAL_SYNC_H
#define MOE_METAL_SYNC_H

#include "../msl_common/collectives.h"

namespace metal {
inline void threadgroup_barrier(mem_flags = mem_flags::mem_none) { ::moe_rt::api()->tg_barrier(); }
inline void simdgroup_barrier(mem_flags = mem_flags::mem_none) { ::moe_rt::api()->simd_barrier(); }
}  // namespace metal

namespace moe {
// One exchange: every active lane's value, the active mask, the caller's lane.
struct exch {
  const char* p;
  uint64_t m;
  uint lane;
  bool on(uint i) const { return (m >> i) & 1u; }
  template <typename V> V at(uint i) const {
    V v;
    __builtin_memcpy(&v, p + i * MOE_SIMD_SLOT_BYTES, sizeof(V));
    return v;
  }
};
template <typename V> inline exch exchange(const V& v) {
  static_assert(sizeof(V) <= MOE_SIMD_SLOT_BYTES, "SIMD-group value larger than MOE_SIMD_SLOT_BYTES");
  const MoeRuntimeApi* a = ::moe_rt::api();
  exch e;
  e.m = 0;
  e.p = static_cast<const char*>(a->simd_exchange(&v, sizeof(V), &e.m));
  e.lane = a->current_thread()->index % MOE_SIMD_WIDTH;
  return e;
}
// Fold of the active lanes in [lo, hi) (the caller's own value if none).
template <typename V, typename F> inline V fold(const exch& e, uint lo, uint hi, const V& self, F f) {
  if (hi - lo == MOE_SIMD_WIDTH && e.m == (uint64_t(1) << MOE_SIMD_WIDTH) - 1) {
    // a full SIMD-group: no lane to skip
    V s = e.template at<V>(0);
    for (uint i = 1; i < MOE_SIMD_WIDTH; ++i) s = f(s, e.template at<V>(i));
    return s;
  }
  bool first = true;
  V s = self;
  for (uint i = lo; i < hi; ++i) {
    if (!e.on(i)) continue;
    const V x = e.template at<V>(i);
    s = first ? x : f(s, x);
    first = false;
  }
  return s;
}
// Prefix over the active lanes below (exclusive) or up to (inclusive) the caller.
template <typename V, typename F> inline V prefix(const V& v, bool inclusive, const V& identity, F f) {
  const exch e = exchange(v);
  V s = identity;
  const uint end = inclusive ? e.lane + 1 : e.lane;
  for (uint i = 0; i < end; ++i)
    if (e.on(i)) s = f(s, e.template at<V>(i));
  return s;
}
// Lane `src`'s value when that lane is active, else the caller's own.
template <typename V> inline V from_lane(const exch& e, uint src, const V& self) {
  return src < MOE_SIMD_WIDTH && e.on(src) ? e.template at<V>(src) : self;
}
}  // namespace moe

namespace metal {
// Reductions fold the active lanes of the SIMD-group or of the caller's quad.
#define MOE_LO_simd 0u
#define MOE_HI_simd MOE_SIMD_WIDTH
#define MOE_LO_quad (e.lane & ~3u)
#define MOE_HI_quad ((e.lane & ~3u) + 4u)
#define MOE_SIMD_REDUCE(name, F, scope)                                          \
  template <typename X, MOE_SIMD_ARG(X)> inline moe::value_t<X> name(const X& x) { \
    typedef moe::value_t<X> V;                                                   \
    const V v = V(moe::val(x));                                                  \
    const moe::exch e = moe::exchange(v);                                        \
    return moe::fold(e, MOE_LO_##scope, MOE_HI_##scope, v, moe::F());           \
  }
MOE_REDUCTIONS(MOE_SIMD_REDUCE)
#undef MOE_SIMD_REDUCE
#undef MOE_LO_simd
#undef MOE_HI_simd
#undef MOE_LO_quad
#undef MOE_HI_quad

#define MOE_SIMD_PREFIX(name, inclusive, identity, F)                            \
  template <typename X, MOE_SIMD_ARG(X)> inline moe::value_t<X> name(const X& x) { \
    typedef moe::value_t<X> V;                                                   \
    return moe::prefix(V(moe::val(x)), inclusive, V(identity), moe::F());        \
  }
MOE_PREFIXES(MOE_SIMD_PREFIX)
#undef MOE_SIMD_PREFIX

#define MOE_SIMD_SHUFFLE(name, src)                                                            \
  template <typename X, MOE_SIMD_ARG(X)> inline moe::value_t<X> name(const X& x, ushort k) {     \
    typedef moe::value_t<X> V;                                                                 \
    const V v = V(moe::val(x));                                                                \
    const moe::exch e = moe::exchange(v);                                                      \
    const uint lane = e.lane;                                                                  \
    (void)lane;                                                                                \
    return moe::from_lane(e, src, v);                                                          \
  }
MOE_SHUFFLES(MOE_SIMD_SHUFFLE)
#undef MOE_SIMD_SHUFFLE

// simd_shuffle_and_fill_down/up: the SIMD-group is cut into groups of `modulo`
// lanes; a lane whose source falls outside its group takes `fill` from the
// lane of the group that source wraps to.
template <typename X, typename Y, MOE_SIMD_ARG(X)>
inline moe::value_t<X> simd_shuffle_and_fill_down(const X& data, const Y& fill, ushort delta, ushort modulo = MOE_SIMD_WIDTH) {
  typedef moe::value_t<X> V;
  const fill_pair<V> own = {V(moe::val(data)), V(moe::val(fill))};
  const moe::exch e = moe::exchange(own);
  const uint m = modulo ? modulo : MOE_SIMD_WIDTH, base = e.lane - e.lane % m, p = e.lane % m + delta;
  const uint src = base + p % m;
  if (src >= MOE_SIMD_WIDTH || !e.on(src)) return own.data;
  const fill_pair<V> got = e.template at<fill_pair<V>>(src);
  return p < m ? got.data : got.fill;
}
template <typename X, typename Y, MOE_SIMD_ARG(X)>
inline moe::value_t<X> simd_shuffle_and_fill_up(const X& data, const Y& fill, ushort delta, ushort modulo = MOE_SIMD_WIDTH) {
  typedef moe::value_t<X> V;
  const fill_pair<V> own = {V(moe::val(data)), V(moe::val(fill))};
  const moe::exch e = moe::exchange(own);
  const uint m = modulo ? modulo : MOE_SIMD_WIDTH, base = e.lane - e.lane % m, p = e.lane % m;
  const uint src = base + (p + m - delta % m) % m;
  if (src >= MOE_SIMD_WIDTH || !e.on(src)) return own.data;
  const fill_pair<V> got = e.template at<fill_pair<V>>(src);
  return p >= delta ? got.data : got.fill;
}

// The value of the lowest active lane.
template <typename X, MOE_SIMD_ARG(X)> inline moe::value_t<X> simd_broadcast_first(const X& x) {
  typedef moe::value_t<X> V;
  const V v = V(moe::val(x));
  const moe::exch e = moe::exchange(v);
  return e.m ? e.template at<V>(uint(__builtin_ctzll(e.m))) : v;
}

inline simd_vote simd_ballot(bool b) {
  const moe::exch e = moe::exchange(b);
  uint64_t r = 0;
  for (uint i = 0; i < MOE_SIMD_WIDTH; ++i)
    if (e.on(i) && e.at<bool>(i)) r |= uint64_t(1) << i;
  return simd_vote(r);
}
inline simd_vote simd_active_threads_mask() { return simd_vote(moe::exchange(true).m); }
inline bool simd_all(bool b) {
  const moe::exch e = moe::exchange(b);
  for (uint i = 0; i < MOE_SIMD_WIDTH; ++i)
    if (e.on(i) && !e.at<bool>(i)) return false;
  return true;
}
inline bool simd_any(bool b) {
  const moe::exch e = moe::exchange(b);
  for (uint i = 0; i < MOE_SIMD_WIDTH; ++i)
    if (e.on(i) && e.at<bool>(i)) return true;
  return false;
}
inline bool quad_all(bool b) {
  const moe::exch e = moe::exchange(b);
  for (uint i = e.lane & ~3u; i < (e.lane & ~3u) + 4u; ++i)
    if (e.on(i) && !e.at<bool>(i)) return false;
  return true;
}
inline bool quad_any(bool b) {
  const moe::exch e = moe::exchange(b);
  for (uint i = e.lane & ~3u; i < (e.lane & ~3u) + 4u; ++i)
    if (e.on(i) && e.at<bool>(i)) return true;
  return false;
}
inline bool simd_is_first() {
  const moe::exch e = moe::exchange(true);
  return e.m && uint(__builtin_ctzll(e.m)) == e.lane;
}
inline bool simd_is_helper_thread() { return false; }
inline bool quad_is_helper_thread() { return false; }
}  // namespace metal

#endif  // MOE_METAL_SYNC_H
