// moe_metal.h — Metal Shading Language on the CPU: the compat header every
// kernel module emitted by src/msl includes (DESIGN.md, "The CPU backend").
//
// Scalar and vector types (float2..4, int/uint/short/ushort/char/uchar/bool
// vectors, half as _Float16, bfloat with round-to-nearest-even), swizzles as
// methods (the emitter rewrites v.xy to v.xy()), math in metal:: (precise::
// and fast:: alike on the CPU), barriers and SIMD-group collectives through
// the runtime ABI (moe_rt_abi.h), atomics, as_type, numeric_limits, builtins.
// Included exactly once per module, so it also defines __moe_bind_runtime.
#ifndef MOE_METAL_H
#define MOE_METAL_H

#include <stdint.h>
#include <string.h>
#include <type_traits>
#include "moe_rt_abi.h"

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;
typedef long long llong;
typedef _Float16 half;

// ---------------------------------------------------------------- bfloat
struct bfloat {
  uint16_t bits;
  bfloat() = default;
  static uint16_t from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return (uint16_t)(u >> 16);
  }
  bfloat(float f) : bits(from_float(f)) {}
  bfloat(double d) : bits(from_float((float)d)) {}
  bfloat(int i) : bits(from_float((float)i)) {}
  bfloat(uint i) : bits(from_float((float)i)) {}
  bfloat(half h) : bits(from_float((float)h)) {}
  operator float() const {
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  bfloat& operator+=(float o) { return *this = bfloat(float(*this) + o); }
  bfloat& operator-=(float o) { return *this = bfloat(float(*this) - o); }
  bfloat& operator*=(float o) { return *this = bfloat(float(*this) * o); }
  bfloat& operator/=(float o) { return *this = bfloat(float(*this) / o); }
};

// ---------------------------------------------------------------- vectors
template <typename T, int N> struct vec;
// Scalars that mix with vectors element-wise (v * 2.0f, 1u + v).
template <typename S> struct moe_is_scalar : std::integral_constant<bool, std::is_arithmetic<S>::value> {};
template <> struct moe_is_scalar<_Float16> : std::true_type {};
template <> struct moe_is_scalar<bfloat> : std::true_type {};
#define MOE_IF_SCALAR(S) typename std::enable_if<moe_is_scalar<S>::value, int>::type = 0
template <typename T, int M> struct vec_swz;

#define MOE_SWZ2(name, a, b) \
  vec_swz<T, 2> name() { return vec_swz<T, 2>(&(*this)[0], a, b, 0, 0); } \
  vec<T, 2> name() const { return vec<T, 2>((*this)[a], (*this)[b]); }
#define MOE_SWZ3(name, a, b, c) \
  vec_swz<T, 3> name() { return vec_swz<T, 3>(&(*this)[0], a, b, c, 0); } \
  vec<T, 3> name() const { return vec<T, 3>((*this)[a], (*this)[b], (*this)[c]); }
#define MOE_SWZ4(name, a, b, c, d) \
  vec_swz<T, 4> name() { return vec_swz<T, 4>(&(*this)[0], a, b, c, d); } \
  vec<T, 4> name() const { return vec<T, 4>((*this)[a], (*this)[b], (*this)[c], (*this)[d]); }
#include "moe_metal/swizzles.inc"

#define MOE_VEC_COMMON(N)                                                      \
  T& operator[](int i) { return (&x)[i]; }                                     \
  const T& operator[](int i) const { return (&x)[i]; }                         \
  template <typename U>                                                        \
  explicit vec(const vec<U, N>& o) {                                           \
    for (int i = 0; i < N; ++i) (*this)[i] = T(o[i]);                          \
  }

// Single-letter components are data members; .r .g .b .a alias .x .y .z .w.
template <typename T> struct vec<T, 2> {
  union { T x; T r; };
  union { T y; T g; };
  vec() = default;
  vec(T s) : x(s), y(s) {}
  vec(T a, T b) : x(a), y(b) {}
  MOE_VEC_COMMON(2)
  MOE_SWIZZLES_2_XYZW
  MOE_SWIZZLES_2_RGBA
};
template <typename T> struct vec<T, 3> {
  union { T x; T r; };
  union { T y; T g; };
  union { T z; T b; };
  vec() = default;
  vec(T s) : x(s), y(s), z(s) {}
  vec(T a, T b, T c) : x(a), y(b), z(c) {}
  vec(vec<T, 2> ab, T c) : x(ab.x), y(ab.y), z(c) {}
  vec(T a, vec<T, 2> bc) : x(a), y(bc.x), z(bc.y) {}
  MOE_VEC_COMMON(3)
  MOE_SWIZZLES_3_XYZW
  MOE_SWIZZLES_3_RGBA
};
template <typename T> struct vec<T, 4> {
  union { T x; T r; };
  union { T y; T g; };
  union { T z; T b; };
  union { T w; T a; };
  vec() = default;
  vec(T s) : x(s), y(s), z(s), w(s) {}
  vec(T a, T b, T c, T d) : x(a), y(b), z(c), w(d) {}
  vec(vec<T, 2> ab, T c, T d) : x(ab.x), y(ab.y), z(c), w(d) {}
  vec(T a, vec<T, 2> bc, T d) : x(a), y(bc.x), z(bc.y), w(d) {}
  vec(T a, T b, vec<T, 2> cd) : x(a), y(b), z(cd.x), w(cd.y) {}
  vec(vec<T, 2> ab, vec<T, 2> cd) : x(ab.x), y(ab.y), z(cd.x), w(cd.y) {}
  vec(vec<T, 3> abc, T d) : x(abc.x), y(abc.y), z(abc.z), w(d) {}
  vec(T a, vec<T, 3> bcd) : x(a), y(bcd.x), z(bcd.y), w(bcd.z) {}
  MOE_VEC_COMMON(4)
  MOE_SWIZZLES_4_XYZW
  MOE_SWIZZLES_4_RGBA
};

// A writable swizzle: a vec holding the selected components, writing back on assignment.
template <typename T, int M> struct vec_swz : vec<T, M> {
  T* base;
  unsigned char idx[4];
  vec_swz(T* p, int a, int b, int c, int d) : base(p), idx{(unsigned char)a, (unsigned char)b, (unsigned char)c, (unsigned char)d} {
    for (int i = 0; i < M; ++i) (*this)[i] = p[idx[i]];
  }
  vec_swz& operator=(const vec<T, M>& v) {
    for (int i = 0; i < M; ++i) base[idx[i]] = v[i];
    for (int i = 0; i < M; ++i) (*this)[i] = v[i];
    return *this;
  }
  vec_swz& operator=(const vec_swz& v) { return *this = static_cast<const vec<T, M>&>(v); }
  vec_swz& operator+=(const vec<T, M>& v) { return *this = static_cast<const vec<T, M>&>(*this) + v; }
  vec_swz& operator-=(const vec<T, M>& v) { return *this = static_cast<const vec<T, M>&>(*this) - v; }
  vec_swz& operator*=(const vec<T, M>& v) { return *this = static_cast<const vec<T, M>&>(*this) * v; }
};

#define MOE_VEC_BINOP(op)                                                                                  \
  template <typename T, int N> inline vec<T, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {      \
    vec<T, N> r;                                                                                           \
    for (int i = 0; i < N; ++i) r[i] = T(a[i] op b[i]);                                                    \
    return r;                                                                                              \
  }                                                                                                        \
  template <typename T, int N, typename S, MOE_IF_SCALAR(S)> inline vec<T, N> operator op(const vec<T, N>& a, S b) {         \
    vec<T, N> r;                                                                                           \
    for (int i = 0; i < N; ++i) r[i] = T(a[i] op T(b));                                                    \
    return r;                                                                                              \
  }                                                                                                        \
  template <typename T, int N, typename S, MOE_IF_SCALAR(S)> inline vec<T, N> operator op(S a, const vec<T, N>& b) {         \
    vec<T, N> r;                                                                                           \
    for (int i = 0; i < N; ++i) r[i] = T(T(a) op b[i]);                                                    \
    return r;                                                                                              \
  }                                                                                                        \
  template <typename T, int N, typename S> inline vec<T, N>& operator op##=(vec<T, N>& a, const S& b) {    \
    a = a op b;                                                                                            \
    return a;                                                                                              \
  }
MOE_VEC_BINOP(+)
MOE_VEC_BINOP(-)
MOE_VEC_BINOP(*)
MOE_VEC_BINOP(/)
MOE_VEC_BINOP(%)
MOE_VEC_BINOP(&)
MOE_VEC_BINOP(|)
MOE_VEC_BINOP(^)
MOE_VEC_BINOP(<<)
MOE_VEC_BINOP(>>)

#define MOE_VEC_CMP(op)                                                                                      \
  template <typename T, int N> inline vec<bool, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {     \
    vec<bool, N> r;                                                                                          \
    for (int i = 0; i < N; ++i) r[i] = a[i] op b[i];                                                         \
    return r;                                                                                                \
  }                                                                                                          \
  template <typename T, int N, typename S, MOE_IF_SCALAR(S)> inline vec<bool, N> operator op(const vec<T, N>& a, S b) {        \
    vec<bool, N> r;                                                                                          \
    for (int i = 0; i < N; ++i) r[i] = a[i] op T(b);                                                         \
    return r;                                                                                                \
  }
MOE_VEC_CMP(==)
MOE_VEC_CMP(!=)
MOE_VEC_CMP(<)
MOE_VEC_CMP(>)
MOE_VEC_CMP(<=)
MOE_VEC_CMP(>=)

template <typename T, int N> inline vec<T, N> operator-(const vec<T, N>& a) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = T(-a[i]);
  return r;
}
template <typename T, int N> inline vec<T, N> operator~(const vec<T, N>& a) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = T(~a[i]);
  return r;
}
template <int N> inline vec<bool, N> operator!(const vec<bool, N>& a) {
  vec<bool, N> r;
  for (int i = 0; i < N; ++i) r[i] = !a[i];
  return r;
}

#define MOE_VEC_TYPES(T, name)        \
  typedef vec<T, 2> name##2;          \
  typedef vec<T, 3> name##3;          \
  typedef vec<T, 4> name##4;          \
  typedef vec<T, 2> packed_##name##2; \
  typedef vec<T, 3> packed_##name##3; \
  typedef vec<T, 4> packed_##name##4;
MOE_VEC_TYPES(float, float)
MOE_VEC_TYPES(half, half)
MOE_VEC_TYPES(bfloat, bfloat)
MOE_VEC_TYPES(int, int)
MOE_VEC_TYPES(uint, uint)
MOE_VEC_TYPES(short, short)
MOE_VEC_TYPES(ushort, ushort)
MOE_VEC_TYPES(char, char)
MOE_VEC_TYPES(uchar, uchar)
MOE_VEC_TYPES(bool, bool)

// ---------------------------------------------------------------- constants
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define HUGE_VALF __builtin_huge_valf()
#define MAXFLOAT 3.40282347e+38F
#define FLT_MAX 3.40282347e+38F
#define FLT_MIN 1.17549435e-38F
#define FLT_EPSILON 1.1920929e-07F
#define HALF_MAX 65504.0f
#define M_PI_F 3.14159265358979323846f
#define M_PI_2_F 1.57079632679489661923f
#define M_PI_4_F 0.78539816339744830962f
#define M_1_PI_F 0.31830988618379067154f
#define M_2_PI_F 0.63661977236758134308f
#define M_E_F 2.71828182845904523536f
#define M_LN2_F 0.69314718055994530942f
#define M_LN10_F 2.30258509299404568402f
#define M_LOG2E_F 1.44269504088896340736f
#define M_LOG10E_F 0.43429448190325182765f
#define M_SQRT2_F 1.41421356237309504880f
#define M_SQRT1_2_F 0.70710678118654752440f

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4, mem_threadgroup_imageblock = 8, mem_object_data = 16 };
inline mem_flags operator|(mem_flags a, mem_flags b) { return (mem_flags)((int)a | (int)b); }

static const MoeRuntimeApi* __moe_api = nullptr;
extern "C" __attribute__((visibility("default"))) int __moe_bind_runtime(const MoeRuntimeApi* api) {
  if (!api || api->abi_version != MOE_ABI_VERSION) return 1;
  __moe_api = api;
  return 0;
}

namespace metal {
// ---------------------------------------------------------------- scalar math
#define MOE_F1(name, builtin) \
  inline float name(float x) { return builtin(x); } \
  inline half name(half x) { return (half)builtin((float)x); } \
  inline bfloat name(bfloat x) { return bfloat(builtin((float)x)); } \
  template <typename T, int N> inline vec<T, N> name(const vec<T, N>& v) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = name(v[i]); return r; }
MOE_F1(exp, __builtin_expf)
MOE_F1(exp2, __builtin_exp2f)
MOE_F1(log, __builtin_logf)
MOE_F1(log2, __builtin_log2f)
MOE_F1(log10, __builtin_log10f)
MOE_F1(sqrt, __builtin_sqrtf)
MOE_F1(sin, __builtin_sinf)
MOE_F1(cos, __builtin_cosf)
MOE_F1(tan, __builtin_tanf)
MOE_F1(sinh, __builtin_sinhf)
MOE_F1(cosh, __builtin_coshf)
MOE_F1(tanh, __builtin_tanhf)
MOE_F1(asin, __builtin_asinf)
MOE_F1(acos, __builtin_acosf)
MOE_F1(atan, __builtin_atanf)
MOE_F1(floor, __builtin_floorf)
MOE_F1(ceil, __builtin_ceilf)
MOE_F1(round, __builtin_roundf)
MOE_F1(rint, __builtin_rintf)
MOE_F1(trunc, __builtin_truncf)
MOE_F1(fabs, __builtin_fabsf)
MOE_F1(erf, __builtin_erff)
inline float __moe_rsqrt(float x) { return 1.0f / __builtin_sqrtf(x); }
inline float __moe_exp10(float x) { return __builtin_powf(10.0f, x); }
inline float __moe_fract(float x) { return x - __builtin_floorf(x); }
MOE_F1(rsqrt, __moe_rsqrt)
MOE_F1(exp10, __moe_exp10)
MOE_F1(fract, __moe_fract)
inline float abs(float x) { return __builtin_fabsf(x); }
inline half abs(half x) { return (half)__builtin_fabsf((float)x); }
inline int abs(int x) { return x < 0 ? -x : x; }
inline short abs(short x) { return (short)(x < 0 ? -x : x); }
inline uint abs(uint x) { return x; }
template <typename T, int N> inline vec<T, N> abs(const vec<T, N>& v) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = abs(v[i]); return r; }

inline float pow(float a, float b) { return __builtin_powf(a, b); }
inline float powr(float a, float b) { return __builtin_powf(a, b); }
inline float atan2(float a, float b) { return __builtin_atan2f(a, b); }
inline float fmod(float a, float b) { return __builtin_fmodf(a, b); }
inline float copysign(float a, float b) { return __builtin_copysignf(a, b); }
inline float ldexp(float a, int e) { return __builtin_ldexpf(a, e); }
inline float frexp(float a, int& e) { return __builtin_frexpf(a, &e); }
inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
inline float mad(float a, float b, float c) { return a * b + c; }
inline float fmax(float a, float b) { return __builtin_fmaxf(a, b); }
inline float fmin(float a, float b) { return __builtin_fminf(a, b); }
inline float sincos(float x, float& c) { c = __builtin_cosf(x); return __builtin_sinf(x); }
template <typename T, int N> inline vec<T, N> fma(const vec<T, N>& a, const vec<T, N>& b, const vec<T, N>& c) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = fma(a[i], b[i], c[i]); return r; }
template <typename T, int N> inline vec<T, N> pow(const vec<T, N>& a, const vec<T, N>& b) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = pow(a[i], b[i]); return r; }
template <typename T, int N> inline vec<T, N> fmax(const vec<T, N>& a, const vec<T, N>& b) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = fmax(a[i], b[i]); return r; }
template <typename T, int N> inline vec<T, N> fmin(const vec<T, N>& a, const vec<T, N>& b) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = fmin(a[i], b[i]); return r; }

// min / max / clamp: one type for both arguments, like MSL (max(x, 0.0f), min(i, n - 1u)).
template <typename T> inline T max(T a, T b) { return a > b ? a : b; }
template <typename T> inline T min(T a, T b) { return a < b ? a : b; }
inline float max(float a, float b) { return __builtin_fmaxf(a, b); }
inline float min(float a, float b) { return __builtin_fminf(a, b); }
template <typename T, int N> inline vec<T, N> max(const vec<T, N>& a, const vec<T, N>& b) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = max(a[i], b[i]); return r; }
template <typename T, int N> inline vec<T, N> min(const vec<T, N>& a, const vec<T, N>& b) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = min(a[i], b[i]); return r; }
template <typename T, int N> inline vec<T, N> max(const vec<T, N>& a, T b) { return max(a, vec<T, N>(b)); }
template <typename T, int N> inline vec<T, N> min(const vec<T, N>& a, T b) { return min(a, vec<T, N>(b)); }
template <typename T> inline T min3(T a, T b, T c) { return min(min(a, b), c); }
template <typename T> inline T max3(T a, T b, T c) { return max(max(a, b), c); }
template <typename T> inline T median3(T a, T b, T c) { return max(min(a, b), min(max(a, b), c)); }
template <typename T> inline T clamp(T x, T lo, T hi) { return min(max(x, lo), hi); }
template <typename T, int N> inline vec<T, N> clamp(const vec<T, N>& x, T lo, T hi) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = clamp(x[i], lo, hi); return r; }
template <typename T, int N> inline vec<T, N> clamp(const vec<T, N>& x, const vec<T, N>& lo, const vec<T, N>& hi) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = clamp(x[i], lo[i], hi[i]); return r; }
inline float saturate(float x) { return clamp(x, 0.0f, 1.0f); }
template <typename T, int N> inline vec<T, N> saturate(const vec<T, N>& x) { return clamp(x, T(0), T(1)); }
inline float mix(float a, float b, float t) { return a + (b - a) * t; }
template <typename T, int N> inline vec<T, N> mix(const vec<T, N>& a, const vec<T, N>& b, T t) { return a + (b - a) * t; }
inline float step(float edge, float x) { return x < edge ? 0.0f : 1.0f; }
inline float smoothstep(float e0, float e1, float x) { float t = clamp((x - e0) / (e1 - e0), 0.0f, 1.0f); return t * t * (3.0f - 2.0f * t); }
inline float sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x == 0.0f ? 0.0f : x)); }
inline bool isnan(float x) { return __builtin_isnan(x); }
inline bool isinf(float x) { return __builtin_isinf(x); }
inline bool isfinite(float x) { return __builtin_isfinite(x); }
inline bool signbit(float x) { return __builtin_signbit(x); }

template <typename T, int N> inline T dot(const vec<T, N>& a, const vec<T, N>& b) { T s = T(0); for (int i = 0; i < N; ++i) s += a[i] * b[i]; return s; }
template <typename T> inline vec<T, 3> cross(const vec<T, 3>& a, const vec<T, 3>& b) { return vec<T, 3>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x); }
template <typename T, int N> inline T length_squared(const vec<T, N>& a) { return dot(a, a); }
template <int N> inline float length(const vec<float, N>& a) { return __builtin_sqrtf(dot(a, a)); }
template <int N> inline float distance(const vec<float, N>& a, const vec<float, N>& b) { return length(a - b); }
template <int N> inline vec<float, N> normalize(const vec<float, N>& a) { return a * (1.0f / length(a)); }
template <int N> inline bool all(const vec<bool, N>& v) { for (int i = 0; i < N; ++i) if (!v[i]) return false; return true; }
template <int N> inline bool any(const vec<bool, N>& v) { for (int i = 0; i < N; ++i) if (v[i]) return true; return false; }
inline bool all(bool b) { return b; }
inline bool any(bool b) { return b; }
template <typename T> inline T select(T a, T b, bool c) { return c ? b : a; }
template <typename T, int N> inline vec<T, N> select(const vec<T, N>& a, const vec<T, N>& b, const vec<bool, N>& c) { vec<T, N> r; for (int i = 0; i < N; ++i) r[i] = c[i] ? b[i] : a[i]; return r; }

inline uint popcount(uint x) { return (uint)__builtin_popcount(x); }
inline uint clz(uint x) { return x == 0 ? 32u : (uint)__builtin_clz(x); }
inline uint ctz(uint x) { return x == 0 ? 32u : (uint)__builtin_ctz(x); }
inline uint mulhi(uint a, uint b) { return (uint)(((uint64_t)a * b) >> 32); }
inline int mulhi(int a, int b) { return (int)(((int64_t)a * b) >> 32); }
inline uint abs_diff(uint a, uint b) { return a > b ? a - b : b - a; }
inline uint abs_diff(int a, int b) { return a > b ? (uint)(a - b) : (uint)(b - a); }
inline uint rotate(uint v, uint s) { s &= 31u; return s == 0 ? v : (v << s) | (v >> (32 - s)); }
inline uint extract_bits(uint x, uint off, uint bits) { return bits == 0 ? 0u : (bits >= 32 ? x >> off : (x >> off) & ((1u << bits) - 1u)); }
inline uint insert_bits(uint base, uint ins, uint off, uint bits) { uint m = bits >= 32 ? ~0u : ((1u << bits) - 1u) << off; return (base & ~m) | ((ins << off) & m); }
inline uint reverse_bits(uint x) { uint r = 0; for (int i = 0; i < 32; ++i) { r = (r << 1) | (x & 1u); x >>= 1; } return r; }

template <typename To, typename From> inline To as_type(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "as_type: the two types must have the same size");
  To t;
  memcpy(&t, &f, sizeof(To));
  return t;
}

template <typename T> struct numeric_limits;
template <> struct numeric_limits<float> {
  static float infinity() { return __builtin_inff(); }
  static float quiet_NaN() { return __builtin_nanf(""); }
  static float max() { return 3.40282347e+38F; }
  static float min() { return 1.17549435e-38F; }
  static float lowest() { return -3.40282347e+38F; }
  static float epsilon() { return 1.1920929e-07F; }
};
template <> struct numeric_limits<int> { static int max() { return 2147483647; } static int min() { return -2147483647 - 1; } static int lowest() { return -2147483647 - 1; } };
template <> struct numeric_limits<uint> { static uint max() { return 4294967295u; } static uint min() { return 0u; } static uint lowest() { return 0u; } };

// ---------------------------------------------------------------- synchronisation
inline void threadgroup_barrier(mem_flags) { __moe_api->tg_barrier(); }
inline void simdgroup_barrier(mem_flags) { __moe_api->simd_barrier(); }
inline void atomic_thread_fence(mem_flags, int = 0) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <typename T> inline const void* __ex(const T& v, uint64_t* m) {
  static_assert(sizeof(T) <= MOE_SIMD_SLOT_BYTES, "SIMD-group value too large");
  return __moe_api->simd_exchange(&v, sizeof(T), m);
}
#define MOE_SLOT(p, i, T) (*(const T*)((const char*)(p) + (i) * MOE_SIMD_SLOT_BYTES))
inline uint __moe_lane() { return __moe_api->current_thread()->index % 32; }
#define MOE_REDUCE(name, init, op)                                                  \
  template <typename T> inline T name(T v) {                                        \
    uint64_t m;                                                                     \
    const void* p = __ex(v, &m);                                                    \
    bool first = true;                                                              \
    T s = init;                                                                     \
    for (uint i = 0; i < 32; i++)                                                   \
      if (m >> i & 1) {                                                             \
        const T x = MOE_SLOT(p, i, T);                                              \
        s = first ? x : T(op);                                                      \
        first = false;                                                              \
      }                                                                             \
    return s;                                                                       \
  }
MOE_REDUCE(simd_sum, v, s + x)
MOE_REDUCE(simd_product, v, s * x)
MOE_REDUCE(simd_max, v, max(s, x))
MOE_REDUCE(simd_min, v, min(s, x))
MOE_REDUCE(simd_and, v, s & x)
MOE_REDUCE(simd_or, v, s | x)
MOE_REDUCE(simd_xor, v, s ^ x)
template <typename T> inline T simd_prefix_inclusive_sum(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(0); for (uint i = 0; i <= l; i++) if (m >> i & 1) s = s + MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_prefix_exclusive_sum(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(0); for (uint i = 0; i < l; i++) if (m >> i & 1) s = s + MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_prefix_inclusive_product(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(1); for (uint i = 0; i <= l; i++) if (m >> i & 1) s = s * MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_prefix_exclusive_product(T v) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); T s = T(1); for (uint i = 0; i < l; i++) if (m >> i & 1) s = s * MOE_SLOT(p, i, T); return s; }
template <typename T> inline T simd_shuffle(T v, ushort lane) { uint64_t m; const void* p = __ex(v, &m); uint s = lane & 31u; return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }
template <typename T> inline T simd_broadcast(T v, ushort lane) { return simd_shuffle(v, lane); }
template <typename T> inline T simd_broadcast_first(T v) { uint64_t m; const void* p = __ex(v, &m); for (uint i = 0; i < 32; i++) if (m >> i & 1) return MOE_SLOT(p, i, T); return v; }
template <typename T> inline T simd_shuffle_down(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); return (l + d < 32 && (m >> (l + d) & 1)) ? MOE_SLOT(p, l + d, T) : v; }
template <typename T> inline T simd_shuffle_up(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); return (l >= d && (m >> (l - d) & 1)) ? MOE_SLOT(p, l - d, T) : v; }
template <typename T> inline T simd_shuffle_xor(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint s = (__moe_lane() ^ d) & 31u; return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }
template <typename T> inline T simd_shuffle_rotate_down(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint s = (__moe_lane() + d) & 31u; return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }
template <typename T> inline T simd_shuffle_rotate_up(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint s = (__moe_lane() + 32u - (d & 31u)) & 31u; return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }
inline bool simd_all(bool b) { uint64_t m; const void* p = __ex(b, &m); for (uint i = 0; i < 32; i++) if ((m >> i & 1) && !MOE_SLOT(p, i, bool)) return false; return true; }
inline bool simd_any(bool b) { uint64_t m; const void* p = __ex(b, &m); for (uint i = 0; i < 32; i++) if ((m >> i & 1) && MOE_SLOT(p, i, bool)) return true; return false; }
struct simd_vote {
  uint64_t v;
  explicit operator uint64_t() const { return v; }
  explicit operator unsigned long long() const { return v; }
  bool all() const { return v == 0xffffffffull; }
  bool any() const { return v != 0; }
};
inline simd_vote simd_ballot(bool b) { uint64_t m; const void* p = __ex(b, &m); uint64_t r = 0; for (uint i = 0; i < 32; i++) if ((m >> i & 1) && MOE_SLOT(p, i, bool)) r |= (uint64_t)1 << i; return simd_vote{r}; }
inline simd_vote simd_active_threads_mask() { uint64_t m; __ex(0, &m); return simd_vote{m}; }
inline bool simd_is_first() { uint64_t m; __ex(0, &m); uint l = __moe_lane(); for (uint i = 0; i < 32; i++) if (m >> i & 1) return i == l; return false; }
inline bool simd_is_helper_thread() { return false; }
// quad-groups: 4 consecutive lanes of a SIMD-group
template <typename T> inline T quad_sum(T v) { uint64_t m; const void* p = __ex(v, &m); uint b = __moe_lane() & ~3u; T s = T(0); for (uint i = b; i < b + 4; i++) if (m >> i & 1) s = s + MOE_SLOT(p, i, T); return s; }
template <typename T> inline T quad_shuffle(T v, ushort q) { uint64_t m; const void* p = __ex(v, &m); uint s = (__moe_lane() & ~3u) + (q & 3u); return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }
template <typename T> inline T quad_broadcast(T v, ushort q) { return quad_shuffle(v, q); }
template <typename T> inline T quad_shuffle_xor(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); uint s = (l & ~3u) + ((l ^ d) & 3u); return (m >> s & 1) ? MOE_SLOT(p, s, T) : v; }
template <typename T> inline T quad_shuffle_down(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); uint q = (l & 3u) + d; return (q < 4 && (m >> ((l & ~3u) + q) & 1)) ? MOE_SLOT(p, (l & ~3u) + q, T) : v; }
template <typename T> inline T quad_shuffle_up(T v, ushort d) { uint64_t m; const void* p = __ex(v, &m); uint l = __moe_lane(); return ((l & 3u) >= d && (m >> (l - d) & 1)) ? MOE_SLOT(p, l - d, T) : v; }

// ---------------------------------------------------------------- atomics
// Device atomics are hit by several OS threads at once: __atomic builtins.
enum memory_order { memory_order_relaxed = __ATOMIC_RELAXED, memory_order_acquire = __ATOMIC_ACQUIRE, memory_order_release = __ATOMIC_RELEASE, memory_order_acq_rel = __ATOMIC_ACQ_REL, memory_order_seq_cst = __ATOMIC_SEQ_CST };
template <typename T> struct atomic { T __v; };
typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<float> atomic_float;
typedef atomic<bool> atomic_bool;
template <typename T> inline T atomic_load_explicit(const volatile atomic<T>* a, memory_order) { T r; __atomic_load(const_cast<T*>(&a->__v), &r, __ATOMIC_SEQ_CST); return r; }
template <typename T> inline void atomic_store_explicit(volatile atomic<T>* a, T v, memory_order) { __atomic_store(const_cast<T*>(&a->__v), &v, __ATOMIC_SEQ_CST); }
template <typename T> inline T atomic_exchange_explicit(volatile atomic<T>* a, T v, memory_order) { T r; __atomic_exchange(const_cast<T*>(&a->__v), &v, &r, __ATOMIC_SEQ_CST); return r; }
template <typename T> inline bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* a, T* expected, T desired, memory_order, memory_order) {
  return __atomic_compare_exchange(const_cast<T*>(&a->__v), expected, &desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
template <typename T, typename F> inline T __moe_atomic_rmw(volatile atomic<T>* a, F f) {
  T* p = const_cast<T*>(&a->__v);
  T old;
  __atomic_load(p, &old, __ATOMIC_SEQ_CST);
  T nv = f(old);
  while (!__atomic_compare_exchange(p, &old, &nv, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) nv = f(old);
  return old;
}
template <typename T> inline T atomic_fetch_add_explicit(volatile atomic<T>* a, T v, memory_order) { return __moe_atomic_rmw(a, [v](T o) { return T(o + v); }); }
template <typename T> inline T atomic_fetch_sub_explicit(volatile atomic<T>* a, T v, memory_order) { return __moe_atomic_rmw(a, [v](T o) { return T(o - v); }); }
template <typename T> inline T atomic_fetch_and_explicit(volatile atomic<T>* a, T v, memory_order) { return __moe_atomic_rmw(a, [v](T o) { return T(o & v); }); }
template <typename T> inline T atomic_fetch_or_explicit(volatile atomic<T>* a, T v, memory_order) { return __moe_atomic_rmw(a, [v](T o) { return T(o | v); }); }
template <typename T> inline T atomic_fetch_xor_explicit(volatile atomic<T>* a, T v, memory_order) { return __moe_atomic_rmw(a, [v](T o) { return T(o ^ v); }); }
template <typename T> inline T atomic_fetch_max_explicit(volatile atomic<T>* a, T v, memory_order) { return __moe_atomic_rmw(a, [v](T o) { return o > v ? o : v; }); }
template <typename T> inline T atomic_fetch_min_explicit(volatile atomic<T>* a, T v, memory_order) { return __moe_atomic_rmw(a, [v](T o) { return o < v ? o : v; }); }

// precise:: and fast:: are the same functions on the CPU.
#define MOE_MATH_ALIASES using metal::exp; using metal::exp2; using metal::exp10; using metal::log; using metal::log2; using metal::log10; \
  using metal::tanh; using metal::sinh; using metal::cosh; using metal::sqrt; using metal::rsqrt; using metal::pow; using metal::powr; \
  using metal::sin; using metal::cos; using metal::tan; using metal::atan; using metal::atan2; using metal::fmax; using metal::fmin; \
  using metal::clamp; using metal::max; using metal::min; using metal::fabs; using metal::abs; using metal::floor; using metal::ceil; using metal::fma;
namespace precise { MOE_MATH_ALIASES }
namespace fast { MOE_MATH_ALIASES }
}  // namespace metal

namespace moe_rt {
template <typename T> inline T& tg_static(uint32_t slot) { return *reinterpret_cast<T*>(__moe_api->tg_static(slot, sizeof(T), alignof(T))); }
inline uint3 U3(MoeU3 a) { return uint3(a.x, a.y, a.z); }
inline uint3 bi_thread_position_in_grid(const MoeThreadCtx* t) {
  return uint3(t->g->tg_pos.x * t->d->dispatch_tg_size.x + t->tid.x, t->g->tg_pos.y * t->d->dispatch_tg_size.y + t->tid.y, t->g->tg_pos.z * t->d->dispatch_tg_size.z + t->tid.z);
}
inline uint3 bi_thread_position_in_threadgroup(const MoeThreadCtx* t) { return U3(t->tid); }
inline uint3 bi_threadgroup_position_in_grid(const MoeThreadCtx* t) { return U3(t->g->tg_pos); }
inline uint3 bi_threads_per_threadgroup(const MoeThreadCtx* t) { return U3(t->g->tg_size); }
inline uint3 bi_threadgroups_per_grid(const MoeThreadCtx* t) { return U3(t->d->threadgroups_per_grid); }
inline uint3 bi_threads_per_grid(const MoeThreadCtx* t) { return U3(t->d->threads_per_grid); }
inline uint3 bi_grid_size(const MoeThreadCtx* t) { return U3(t->d->threads_per_grid); }
inline uint3 bi_grid_origin(const MoeThreadCtx*) { return uint3(0u, 0u, 0u); }
inline uint3 bi_dispatch_threads_per_threadgroup(const MoeThreadCtx* t) { return U3(t->d->dispatch_tg_size); }
inline uint bi_thread_index_in_threadgroup(const MoeThreadCtx* t) { return t->index; }
inline uint bi_thread_index_in_simdgroup(const MoeThreadCtx* t) { return t->index % 32; }
inline uint bi_simdgroup_index_in_threadgroup(const MoeThreadCtx* t) { return t->index / 32; }
inline uint bi_simdgroups_per_threadgroup(const MoeThreadCtx* t) { return (t->g->n_threads + 31) / 32; }
inline uint bi_dispatch_simdgroups_per_threadgroup(const MoeThreadCtx* t) { return (t->d->dispatch_tg_size.x * t->d->dispatch_tg_size.y * t->d->dispatch_tg_size.z + 31) / 32; }
inline uint bi_threads_per_simdgroup(const MoeThreadCtx*) { return 32; }
inline uint bi_thread_execution_width(const MoeThreadCtx*) { return 32; }
inline uint bi_thread_index_in_quadgroup(const MoeThreadCtx* t) { return t->index % 4; }
inline uint bi_quadgroup_index_in_threadgroup(const MoeThreadCtx* t) { return t->index / 4; }
inline uint bi_quadgroups_per_threadgroup(const MoeThreadCtx* t) { return (t->g->n_threads + 3) / 4; }
template <typename T> struct BA {
  static T conv(uint3 v) { return T(v.x); }
  static T conv(uint v) { return T(v); }
};
template <typename E> struct BA<vec<E, 2>> { static vec<E, 2> conv(uint3 v) { return vec<E, 2>(E(v.x), E(v.y)); } };
template <typename E> struct BA<vec<E, 3>> { static vec<E, 3> conv(uint3 v) { return vec<E, 3>(E(v.x), E(v.y), E(v.z)); } };
template <typename T, typename V> inline T builtin_as(V v) { return BA<T>::conv(v); }
}  // namespace moe_rt

#endif  // MOE_METAL_H
