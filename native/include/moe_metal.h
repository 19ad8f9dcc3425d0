// Minimal MSL compat header (stand-in while the full one is written).
#pragma once
#include <stdint.h>
#include <string.h>
#include "moe_rt_abi.h"

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;
typedef long long llong;
typedef _Float16 half;

struct bfloat {
  uint16_t bits;
  bfloat() = default;
  static uint16_t from_float(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
  }
  bfloat(float f) : bits(from_float(f)) {}
  operator float() const { uint32_t u = (uint32_t)bits << 16; float f; memcpy(&f, &u, 4); return f; }
};

template <typename T, int N> struct vec;
template <typename T> struct vec<T, 2> { T x, y; vec() = default; vec(T a) : x(a), y(a) {} vec(T a, T b) : x(a), y(b) {} T& operator[](int i) { return (&x)[i]; } const T& operator[](int i) const { return (&x)[i]; } };
template <typename T> struct vec<T, 3> { T x, y, z; vec() = default; vec(T a) : x(a), y(a), z(a) {} vec(T a, T b, T c) : x(a), y(b), z(c) {} T& operator[](int i) { return (&x)[i]; } const T& operator[](int i) const { return (&x)[i]; } };
template <typename T> struct vec<T, 4> { T x, y, z, w; vec() = default; vec(T a) : x(a), y(a), z(a), w(a) {} vec(T a, T b, T c, T d) : x(a), y(b), z(c), w(d) {} T& operator[](int i) { return (&x)[i]; } const T& operator[](int i) const { return (&x)[i]; } };
#define MOE_VEC_OP(op) template <typename T, int N> vec<T,N> operator op(vec<T,N> a, vec<T,N> b) { vec<T,N> r; for (int i=0;i<N;i++) r[i]=a[i] op b[i]; return r; } \
  template <typename T, int N> vec<T,N> operator op(vec<T,N> a, T b) { vec<T,N> r; for (int i=0;i<N;i++) r[i]=a[i] op b; return r; } \
  template <typename T, int N> vec<T,N> operator op(T a, vec<T,N> b) { vec<T,N> r; for (int i=0;i<N;i++) r[i]=a op b[i]; return r; }
MOE_VEC_OP(+) MOE_VEC_OP(-) MOE_VEC_OP(*) MOE_VEC_OP(/)
typedef vec<float,2> float2; typedef vec<float,3> float3; typedef vec<float,4> float4;
typedef vec<uint,2> uint2; typedef vec<uint,3> uint3; typedef vec<uint,4> uint4;
typedef vec<int,2> int2; typedef vec<int,3> int3; typedef vec<int,4> int4;
typedef vec<ushort,2> ushort2; typedef vec<ushort,3> ushort3;

#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define FLT_MAX 3.40282347e+38F

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
inline mem_flags operator|(mem_flags a, mem_flags b) { return (mem_flags)((int)a | (int)b); }

static const MoeRuntimeApi* __moe_api = nullptr;
extern "C" __attribute__((visibility("default"))) int __moe_bind_runtime(const MoeRuntimeApi* api) {
  if (!api || api->abi_version != MOE_ABI_VERSION) return 1;
  __moe_api = api; return 0;
}

namespace metal {
inline float exp(float x) { return __builtin_expf(x); }
inline float tanh(float x) { return __builtin_tanhf(x); }
inline float sqrt(float x) { return __builtin_sqrtf(x); }
inline float rsqrt(float x) { return 1.0f / __builtin_sqrtf(x); }
inline float fabs(float x) { return __builtin_fabsf(x); }
inline float abs(float x) { return __builtin_fabsf(x); }
inline float fmax(float a, float b) { return __builtin_fmaxf(a, b); }
inline float fmin(float a, float b) { return __builtin_fminf(a, b); }
inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
template <typename T> inline T max(T a, T b) { return a > b ? a : b; }
template <typename T> inline T min(T a, T b) { return a < b ? a : b; }
inline float clamp(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }
inline void threadgroup_barrier(mem_flags) { __moe_api->tg_barrier(); }
inline void simdgroup_barrier(mem_flags) { __moe_api->simd_barrier(); }
template <typename T> inline const T* __ex(T v, uint64_t* m) { return (const T*)__moe_api->simd_exchange(&v, sizeof(T), m); }
#define MOE_SLOT(p, i, T) (*(const T*)((const char*)(p) + (i) * MOE_SIMD_SLOT_BYTES))
template <typename T> inline T simd_sum(T v) { uint64_t m; const void* p = __ex(v, &m); T s = T(0); for (uint i = 0; i < 32; i++) if (m >> i & 1) s = s + MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_max(T v) { uint64_t m; const void* p = __ex(v, &m); bool f = true; T s = v; for (uint i = 0; i < 32; i++) if (m >> i & 1) { T x = MOE_SLOT(p, i, T); if (f || x > s) s = x; f = false; } return s; }
template <typename T> inline T simd_min(T v) { uint64_t m; const void* p = __ex(v, &m); bool f = true; T s = v; for (uint i = 0; i < 32; i++) if (m >> i & 1) { T x = MOE_SLOT(p, i, T); if (f || x < s) s = x; f = false; } return s; }
template <typename T> inline T simd_broadcast_first(T v) { uint64_t m; const void* p = __ex(v, &m); for (uint i = 0; i < 32; i++) if (m >> i & 1) return MOE_SLOT(p, i, T); return v; }
template <typename T> inline T simd_shuffle_down(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_api->current_thread()->index % 32; return (l + d < 32 && (m >> (l + d) & 1)) ? MOE_SLOT(p, l + d, T) : v; }
template <typename T> inline T simd_shuffle_xor(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_api->current_thread()->index % 32; uint s = (l ^ d) & 31; return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }

template <typename T> inline T __moe_lane_val(const void* p, uint i) { return MOE_SLOT(p, i, T); }
inline uint __moe_lane() { return __moe_api->current_thread()->index % 32; }
template <typename T> inline T simd_product(T v) { uint64_t m; const void* p = __ex(v, &m); T s = T(1); for (uint i = 0; i < 32; i++) if (m >> i & 1) s = s * MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_and(T v) { uint64_t m; const void* p = __ex(v, &m); T s = T(~T(0)); for (uint i = 0; i < 32; i++) if (m >> i & 1) s = s & MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_or(T v) { uint64_t m; const void* p = __ex(v, &m); T s = T(0); for (uint i = 0; i < 32; i++) if (m >> i & 1) s = s | MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_xor(T v) { uint64_t m; const void* p = __ex(v, &m); T s = T(0); for (uint i = 0; i < 32; i++) if (m >> i & 1) s = s ^ MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_prefix_inclusive_sum(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(0); for (uint i = 0; i <= l; i++) if (m >> i & 1) s = s + MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_prefix_exclusive_sum(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(0); for (uint i = 0; i < l; i++) if (m >> i & 1) s = s + MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_prefix_inclusive_product(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(1); for (uint i = 0; i <= l; i++) if (m >> i & 1) s = s * MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_prefix_exclusive_product(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(1); for (uint i = 0; i < l; i++) if (m >> i & 1) s = s * MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_shuffle(T v, ushort lane) { uint64_t m; const void* p = __ex(v, &m); uint s = lane & 31u; return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }
template <typename T> inline T simd_broadcast(T v, ushort lane) { return simd_shuffle(v, lane); }
template <typename T> inline T simd_shuffle_up(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); return (l >= d && (m >> (l - d) & 1)) ? MOE_SLOT(p, l - d, T) : v; }
template <typename T> inline T simd_shuffle_rotate_down(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = (__moe_lane() + d) & 31u; return (m >> l & 1) ? MOE_SLOT(p, l, T) : v; }
template <typename T> inline T simd_shuffle_rotate_up(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = (__moe_lane() + 32u - (d & 31u)) & 31u; return (m >> l & 1) ? MOE_SLOT(p, l, T) : v; }
inline bool simd_all(bool b) { uint64_t m; const void* p = __ex(b, &m); for (uint i = 0; i < 32; i++) if ((m >> i & 1) && !MOE_SLOT(p, i, bool)) return false; return true; }
inline bool simd_any(bool b) { uint64_t m; const void* p = __ex(b, &m); for (uint i = 0; i < 32; i++) if ((m >> i & 1) && MOE_SLOT(p, i, bool)) return true; return false; }
struct simd_vote { uint64_t v; explicit operator uint64_t() const { return v; } explicit operator unsigned long long() const { return v; } bool all() const { return false; } };
inline simd_vote simd_ballot(bool b) { uint64_t m; const void* p = __ex(b, &m); uint64_t r = 0; for (uint i = 0; i < 32; i++) if ((m >> i & 1) && MOE_SLOT(p, i, bool)) r |= (uint64_t)1 << i; return simd_vote{r}; }
inline simd_vote simd_active_threads_mask() { uint64_t m; __ex(0, &m); return simd_vote{m}; }
inline bool simd_is_first() { uint64_t m; __ex(0, &m); uint l = __moe_lane(); for (uint i = 0; i < 32; i++) if (m >> i & 1) return i == l; return false; }
inline bool simd_is_helper_thread() { return false; }
template <typename To, typename From> inline To as_type(From f) { static_assert(sizeof(To) == sizeof(From), "as_type sizes"); To t; memcpy(&t, &f, sizeof(To)); return t; }
namespace precise { using metal::exp; using metal::tanh; using metal::sqrt; }
namespace fast { using metal::exp; using metal::tanh; using metal::sqrt; }
}

namespace moe_rt {
template <typename T> inline T& tg_static(uint32_t slot) { return *reinterpret_cast<T*>(__moe_api->tg_static(slot, sizeof(T), alignof(T))); }
inline uint3 U3(MoeU3 a) { return uint3(a.x, a.y, a.z); }
inline uint3 bi_thread_position_in_grid(const MoeThreadCtx* t) { return uint3(t->g->tg_pos.x * t->d->dispatch_tg_size.x + t->tid.x, t->g->tg_pos.y * t->d->dispatch_tg_size.y + t->tid.y, t->g->tg_pos.z * t->d->dispatch_tg_size.z + t->tid.z); }
inline uint3 bi_thread_position_in_threadgroup(const MoeThreadCtx* t) { return U3(t->tid); }
inline uint3 bi_threadgroup_position_in_grid(const MoeThreadCtx* t) { return U3(t->g->tg_pos); }
inline uint3 bi_threads_per_threadgroup(const MoeThreadCtx* t) { return U3(t->g->tg_size); }
inline uint3 bi_threadgroups_per_grid(const MoeThreadCtx* t) { return U3(t->d->threadgroups_per_grid); }
inline uint3 bi_threads_per_grid(const MoeThreadCtx* t) { return U3(t->d->threads_per_grid); }
inline uint bi_thread_index_in_threadgroup(const MoeThreadCtx* t) { return t->index; }
inline uint bi_thread_index_in_simdgroup(const MoeThreadCtx* t) { return t->index % 32; }
inline uint bi_simdgroup_index_in_threadgroup(const MoeThreadCtx* t) { return t->index / 32; }
inline uint bi_simdgroups_per_threadgroup(const MoeThreadCtx* t) { return (t->g->n_threads + 31) / 32; }
inline uint bi_threads_per_simdgroup(const MoeThreadCtx*) { return 32; }
inline uint bi_thread_execution_width(const MoeThreadCtx*) { return 32; }
inline uint3 bi_grid_size(const MoeThreadCtx* t) { return U3(t->d->threads_per_grid); }
inline uint3 bi_grid_origin(const MoeThreadCtx*) { return uint3(0u, 0u, 0u); }
inline uint3 bi_dispatch_threads_per_threadgroup(const MoeThreadCtx* t) { return U3(t->d->dispatch_tg_size); }
inline uint bi_dispatch_simdgroups_per_threadgroup(const MoeThreadCtx* t) { return (t->d->dispatch_tg_size.x * t->d->dispatch_tg_size.y * t->d->dispatch_tg_size.z + 31) / 32; }
inline uint bi_thread_index_in_quadgroup(const MoeThreadCtx* t) { return t->index % 4; }
inline uint bi_quadgroup_index_in_threadgroup(const MoeThreadCtx* t) { return t->index / 4; }
inline uint bi_quadgroups_per_threadgroup(const MoeThreadCtx* t) { return (t->g->n_threads + 3) / 4; }
template <typename T> struct BA { static T conv(uint3 v) { return T(v.x); } static T conv(uint v) { return T(v); } };
template <typename E> struct BA<vec<E,2>> { static vec<E,2> conv(uint3 v) { return vec<E,2>(E(v.x), E(v.y)); } };
template <typename E> struct BA<vec<E,3>> { static vec<E,3> conv(uint3 v) { return vec<E,3>(E(v.x), E(v.y), E(v.z)); } };
template <typename T, typename V> inline T builtin_as(V v) { return BA<T>::conv(v); }
}
