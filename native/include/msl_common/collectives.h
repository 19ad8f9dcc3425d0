// msl_common/collectives.h — what the two implementations of MSL's
// synchronisation share (msl_cpu/sync.h on the CPU runtime's exchange,
// msl_cuda/sync.h on warp shuffles): mem_flags, the value type of a
// collective, the folding operators, simd_vote, and the lists of the SIMD-
// and quad-group functions as X-macros, each entry with what defines it —
// its operator and scope (reductions), or its source lane as an expression of
// `lane` and the argument `k` (shuffles; MOE_SIMD_WIDTH or more: no such lane).
// Part of msl_cpu.h and msl_cuda.h; not included alone.
#ifndef MOE_METAL_COLLECTIVES_H
#define MOE_METAL_COLLECTIVES_H

#ifndef MOE_SIMD_WIDTH
#define MOE_SIMD_WIDTH 32u
#endif

namespace metal {
enum class mem_flags : uint {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
MOE_HD constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(uint(a) | uint(b)); }
MOE_HD constexpr mem_flags operator&(mem_flags a, mem_flags b) { return mem_flags(uint(a) & uint(b)); }
}  // namespace metal

namespace moe {
// The value type a collective works on: a scalar, or the vector (swizzles and
// packed vectors included) as vec<T, N>.
template <typename X, typename = void> struct value_of { typedef sc<X> type; };
template <typename X> struct value_of<X, decltype(void(sizeof(typename X::vec_type)))> { typedef typename X::vec_type type; };
template <typename X> using value_t = typename value_of<X>::type;
#define MOE_SIMD_ARG(X) moe::en<moe::is_scalar<X>::value || !mstd::is_same<moe::value_t<X>, X>::value || moe::is_vec<X>::value> = 0

struct add_ { template <typename V> MOE_FN V operator()(const V& a, const V& b) const { return V(a + b); } };
struct mul_ { template <typename V> MOE_FN V operator()(const V& a, const V& b) const { return V(a * b); } };
struct and_ { template <typename V> MOE_FN V operator()(const V& a, const V& b) const { return V(a & b); } };
struct or_ { template <typename V> MOE_FN V operator()(const V& a, const V& b) const { return V(a | b); } };
struct xor_ { template <typename V> MOE_FN V operator()(const V& a, const V& b) const { return V(a ^ b); } };
struct max__ { template <typename V> MOE_FN V operator()(const V& a, const V& b) const { return V(::metal::max(a, b)); } };
struct min__ { template <typename V> MOE_FN V operator()(const V& a, const V& b) const { return V(::metal::min(a, b)); } };
}  // namespace moe

// X(name, operator, simd | quad)
#define MOE_REDUCTIONS(X)                                                                                             \
  X(simd_sum, add_, simd) X(simd_product, mul_, simd) X(simd_max, max__, simd) X(simd_min, min__, simd)             \
  X(simd_and, and_, simd) X(simd_or, or_, simd) X(simd_xor, xor_, simd)                                             \
  X(quad_sum, add_, quad) X(quad_product, mul_, quad) X(quad_max, max__, quad) X(quad_min, min__, quad)             \
  X(quad_and, and_, quad) X(quad_or, or_, quad) X(quad_xor, xor_, quad)
// X(name, inclusive, identity, operator)
#define MOE_PREFIXES(X)                                                                        \
  X(simd_prefix_inclusive_sum, true, 0, add_) X(simd_prefix_exclusive_sum, false, 0, add_)     \
  X(simd_prefix_inclusive_product, true, 1, mul_) X(simd_prefix_exclusive_product, false, 1, mul_)
// X(name, source lane)
#define MOE_SHUFFLES(X)                                                                                  \
  X(simd_shuffle, uint(k))                                                                               \
  X(simd_broadcast, uint(k))                                                                             \
  X(simd_shuffle_up, k <= lane ? lane - k : MOE_SIMD_WIDTH)                                              \
  X(simd_shuffle_down, lane + k)                                                                         \
  X(simd_shuffle_xor, (lane ^ k) & (MOE_SIMD_WIDTH - 1))                                                 \
  X(simd_shuffle_rotate_down, (lane + k) % MOE_SIMD_WIDTH)                                               \
  X(simd_shuffle_rotate_up, (lane + MOE_SIMD_WIDTH - k % MOE_SIMD_WIDTH) % MOE_SIMD_WIDTH)               \
  X(quad_shuffle, (lane & ~3u) + (k & 3u))                                                               \
  X(quad_broadcast, (lane & ~3u) + (k & 3u))                                                             \
  X(quad_shuffle_up, k <= (lane & 3u) ? lane - k : MOE_SIMD_WIDTH)                                       \
  X(quad_shuffle_down, (lane & 3u) + k < 4u ? lane + k : MOE_SIMD_WIDTH)                                 \
  X(quad_shuffle_xor, (lane & ~3u) + ((lane ^ k) & 3u))                                                  \
  X(quad_shuffle_rotate_down, (lane & ~3u) + ((lane + k) & 3u))                                          \
  X(quad_shuffle_rotate_up, (lane & ~3u) + ((lane + 4u - (k & 3u)) & 3u))

namespace metal {
// simd_shuffle_and_fill_down/up move both values of a lane.
template <typename V> struct fill_pair {
  V data, fill;
};
// Votes: the lanes' bits (bit i = lane i).
struct simd_vote {
  typedef uint64_t vote_t;
  vote_t v;
  MOE_FN explicit constexpr simd_vote(vote_t bits = 0) : v(bits) {}
  MOE_FN explicit constexpr operator vote_t() const { return v; }
  MOE_FN constexpr bool all() const { return v == ((vote_t(1) << MOE_SIMD_WIDTH) - 1); }
  MOE_FN constexpr bool any() const { return v != 0; }
};
}  // namespace metal

#endif  // MOE_METAL_COLLECTIVES_H
