// msl_common/base.h — scalar types (uint, ushort, uchar, half, bfloat), the
// traits the rest of the header builds on, MSL's constant macros, and the
// runtime pointer (::moe_rt::api(), CPU only). Part of msl_cpu.h and
// msl_cuda.h; not included alone. Every function is MOE_FN (prelude.h).
#ifndef MOE_METAL_BASE_H
#define MOE_METAL_BASE_H

#include "prelude.h"
#ifndef MOE_CUDA
#include "../msl_cpu/abi.h"
#endif

// ---------------------------------------------------------------- scalars
typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;
#ifndef __CUDACC_RTC__  // (NVRTC declares both)
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;
#endif
#ifndef MOE_CUDA
typedef _Float16 half;
#endif

namespace moe {
MOE_FN inline float u32_as_f(uint32_t u) {
#ifdef MOE_CUDA
  return __uint_as_float(u);
#else
  float f;
  MOE_MEMCPY(&f, &u, 4);
  return f;
#endif
}
MOE_FN inline uint32_t f_as_u32(float f) {
#ifdef MOE_CUDA
  return __float_as_uint(f);
#else
  uint32_t u;
  MOE_MEMCPY(&u, &f, 4);
  return u;
#endif
}
MOE_FN inline float bf_to_f(uint16_t b) { return u32_as_f((uint32_t)b << 16); }
// float → bfloat bits, round to nearest even; NaN stays (quiet) NaN.
MOE_FN inline uint16_t f_to_bf(float f) {
  uint32_t u = f_as_u32(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
template <typename S> struct is_arith : mstd::is_arithmetic<S> {};
#ifndef MOE_CUDA
template <> struct is_arith<_Float16> : mstd::true_type {};
#endif
}  // namespace moe

#ifdef MOE_CUDA
// half on CUDA: 16 bits of IEEE binary16, converted by the hardware (PTX cvt,
// round to nearest even); arithmetic in float, rounded once, which is exact
// binary16 arithmetic for + - * / (float has more than 2·11+2 bits).
namespace moe {
MOE_FN inline float h_to_f(uint16_t h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
MOE_FN inline uint16_t f_to_h(float f) {
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
}  // namespace moe
struct half {
  uint16_t __bits;
  half() = default;
  template <typename S, typename mstd::enable_if<moe::is_arith<S>::value, int>::type = 0>
  MOE_FN half(S s) : __bits(moe::f_to_h((float)s)) {}
  MOE_FN operator float() const { return moe::h_to_f(__bits); }
  MOE_FN half& operator+=(float o) { return *this = half(float(*this) + o); }
  MOE_FN half& operator-=(float o) { return *this = half(float(*this) - o); }
  MOE_FN half& operator*=(float o) { return *this = half(float(*this) * o); }
  MOE_FN half& operator/=(float o) { return *this = half(float(*this) / o); }
  MOE_FN half& operator++() { return *this += 1.0f; }
  MOE_FN half& operator--() { return *this -= 1.0f; }
  MOE_FN half operator++(int) { half o = *this; *this += 1.0f; return o; }
  MOE_FN half operator--(int) { half o = *this; *this -= 1.0f; return o; }
};
#endif

// bfloat: 16 bits (the top half of a float), arithmetic in float.
// `bfloat b = x;`, `float y = b;`, `b * 2.0f` (a float) work as in MSL.
struct bfloat {
  uint16_t __bits;
  bfloat() = default;
  template <typename S, typename mstd::enable_if<moe::is_arith<S>::value, int>::type = 0>
  MOE_FN bfloat(S s) : __bits(moe::f_to_bf((float)s)) {}
#ifdef MOE_CUDA
  MOE_FN bfloat(half h) : __bits(moe::f_to_bf(float(h))) {}
#endif
  MOE_FN operator float() const { return moe::bf_to_f(__bits); }
  MOE_FN bfloat& operator+=(float o) { return *this = bfloat(float(*this) + o); }
  MOE_FN bfloat& operator-=(float o) { return *this = bfloat(float(*this) - o); }
  MOE_FN bfloat& operator*=(float o) { return *this = bfloat(float(*this) * o); }
  MOE_FN bfloat& operator/=(float o) { return *this = bfloat(float(*this) / o); }
  MOE_FN bfloat& operator++() { return *this += 1.0f; }
  MOE_FN bfloat& operator--() { return *this -= 1.0f; }
  MOE_FN bfloat operator++(int) { bfloat o = *this; *this += 1.0f; return o; }
  MOE_FN bfloat operator--(int) { bfloat o = *this; *this -= 1.0f; return o; }
};

// ---------------------------------------------------------------- traits
namespace moe {
template <bool B, typename T = int> using en = typename mstd::enable_if<B, T>::type;
template <typename T> using rm = typename mstd::remove_cv<typename mstd::remove_reference<T>::type>::type;

// A scalar of MSL: arithmetic, half or bfloat.
template <typename S> struct is_scalar : mstd::integral_constant<bool, is_arith<S>::value> {};
template <> struct is_scalar<bfloat> : mstd::true_type {};
template <typename S> struct is_fp : mstd::integral_constant<bool, mstd::is_floating_point<S>::value> {};
template <> struct is_fp<half> : mstd::true_type {};
template <> struct is_fp<bfloat> : mstd::true_type {};
template <typename S> struct is_int : mstd::integral_constant<bool, mstd::is_integral<S>::value> {};
#ifdef MOE_CUDA
template <> struct is_scalar<half> : mstd::true_type {};
#endif
// The 16-bit float types implemented as structs (bfloat; half on CUDA).
template <typename S> struct is_small : mstd::false_type {};
template <> struct is_small<bfloat> : mstd::true_type {};
#ifdef MOE_CUDA
template <> struct is_small<half> : mstd::true_type {};
#endif

// Type of a float function's result: half, bfloat and float keep their type;
// double (MSL's unsuffixed literals are float) and integers give float.
template <typename S> struct math { typedef float type; };
template <> struct math<half> { typedef half type; };
template <> struct math<bfloat> { typedef bfloat type; };
template <typename S> using math_t = typename math<S>::type;

// Type of a two-argument function of mixed scalars (max(x, 0), min(i, n - 1u)):
// a floating type wins over an integer; float over half or bfloat; two integers
// promote as in C (int and uint give uint); double counts as float.
template <typename A, typename B, typename = void> struct common {
  typedef decltype(A() + B()) type;
};
template <typename A> struct common<A, A, void> { typedef A type; };
template <typename A, typename B>
struct common<A, B, typename mstd::enable_if<!mstd::is_same<A, B>::value && (is_fp<A>::value || is_fp<B>::value)>::type> {
  typedef typename mstd::conditional<
      !is_fp<B>::value, math_t<A>,
      typename mstd::conditional<!is_fp<A>::value, math_t<B>,
                                 typename mstd::conditional<mstd::is_same<math_t<A>, math_t<B>>::value, math_t<A>, float>::type>::type>::type
      type;
};
template <typename A, typename B> using common_t = typename common<A, B>::type;

// Arithmetic of the struct float types (bfloat; half on CUDA): S op S (or an
// integer) → S; with float, double or the other 16-bit type → float; computed
// in float and rounded once (exact for + - * /).
template <typename A, typename B> struct small_op {
  static constexpr bool sa = is_small<A>::value, sb = is_small<B>::value;
  static constexpr bool ok = (sa || sb) && is_scalar<A>::value && is_scalar<B>::value && !mstd::is_same<A, bool>::value &&
                             !mstd::is_same<B, bool>::value;
  typedef typename mstd::conditional<
      sa && (mstd::is_same<A, B>::value || is_int<B>::value), A,
      typename mstd::conditional<sb && is_int<A>::value, B, float>::type>::type type;
};
}  // namespace moe

#define MOE_SMALL_OP(op)                                                                               \
  template <typename A, typename B, moe::en<moe::small_op<A, B>::ok> = 0>                              \
  MOE_FN inline typename moe::small_op<A, B>::type operator op(const A& a, const B& b) {               \
    return typename moe::small_op<A, B>::type(float(a) op float(b));                                   \
  }
MOE_SMALL_OP(+)
MOE_SMALL_OP(-)
MOE_SMALL_OP(*)
MOE_SMALL_OP(/)
#undef MOE_SMALL_OP
MOE_FN inline bfloat operator-(bfloat b) { bfloat r; r.__bits = uint16_t(b.__bits ^ 0x8000u); return r; }
MOE_FN inline bfloat operator+(bfloat b) { return b; }
#ifdef MOE_CUDA
MOE_FN inline half operator-(half h) { half r; r.__bits = uint16_t(h.__bits ^ 0x8000u); return r; }
MOE_FN inline half operator+(half h) { return h; }
#endif

namespace moe {
// Bit casts without <string.h>.
template <typename To, typename From> MOE_FN inline To bitcast(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "as_type: both types must have the same size");
#ifdef MOE_CUDA
  if constexpr (mstd::is_same<To, float>::value && (mstd::is_same<From, uint32_t>::value || mstd::is_same<From, int>::value)) {
    return __uint_as_float(uint32_t(f));
  } else if constexpr ((mstd::is_same<To, uint32_t>::value || mstd::is_same<To, int>::value) && mstd::is_same<From, float>::value) {
    return To(__float_as_uint(f));
  }
#endif
  To t;
  MOE_MEMCPY(&t, &f, sizeof(To));
  return t;
}
}  // namespace moe

// ---------------------------------------------------------------- constants
#undef INFINITY
#undef NAN
#undef HUGE_VALF
#undef MAXFLOAT
#undef FLT_MAX
#undef FLT_MIN
#undef FLT_EPSILON
#define INFINITY (MOE_INF)
#define NAN (MOE_NAN)
#define HUGE_VALF (MOE_INF)
#define MAXFLOAT 0x1.fffffep+127f
#define FLT_MAX 0x1.fffffep+127f
#define FLT_MIN 0x1p-126f
#define FLT_EPSILON 0x1p-23f
#undef FLT_MANT_DIG
#define FLT_MANT_DIG 24
#undef FLT_MAX_EXP
#define FLT_MAX_EXP 128
#undef FLT_MIN_EXP
#define FLT_MIN_EXP (-125)
#undef FLT_DIG
#define FLT_DIG 6
#undef FLT_RADIX
#define FLT_RADIX 2
#undef HUGE_VALH
#define HUGE_VALH ((half)MOE_INF)
#undef MAXHALF
#define MAXHALF ((half)65504.0f)
#undef HALF_MAX
#define HALF_MAX ((half)65504.0f)
#undef HALF_MIN
#define HALF_MIN ((half)0x1p-14f)
#undef HALF_EPSILON
#define HALF_EPSILON ((half)0x1p-10f)
#undef HALF_MANT_DIG
#define HALF_MANT_DIG 11
#undef HALF_DIG
#define HALF_DIG 3
#undef BFLOAT_MAX
#define BFLOAT_MAX 0x1.fep+127f
#undef BFLOAT_MIN
#define BFLOAT_MIN 0x1p-126f
#undef BFLOAT_EPSILON
#define BFLOAT_EPSILON 0x1p-7f
#undef CHAR_BIT
#define CHAR_BIT 8
#undef SCHAR_MAX
#define SCHAR_MAX 127
#undef SCHAR_MIN
#define SCHAR_MIN (-128)
#undef UCHAR_MAX
#define UCHAR_MAX 255
#undef CHAR_MAX
#define CHAR_MAX SCHAR_MAX
#undef CHAR_MIN
#define CHAR_MIN SCHAR_MIN
#undef SHRT_MAX
#define SHRT_MAX 32767
#undef SHRT_MIN
#define SHRT_MIN (-32768)
#undef USHRT_MAX
#define USHRT_MAX 65535
#undef INT_MAX
#define INT_MAX 2147483647
#undef INT_MIN
#define INT_MIN (-2147483647 - 1)
#undef UINT_MAX
#define UINT_MAX 4294967295u
#undef LONG_MAX
#define LONG_MAX 9223372036854775807L
#undef LONG_MIN
#define LONG_MIN (-9223372036854775807L - 1)
#undef ULONG_MAX
#define ULONG_MAX 18446744073709551615UL
#undef M_E_F
#define M_E_F 2.71828182845904523536f
#undef M_LOG2E_F
#define M_LOG2E_F 1.44269504088896340736f
#undef M_LOG10E_F
#define M_LOG10E_F 0.43429448190325182765f
#undef M_LN2_F
#define M_LN2_F 0.69314718055994530942f
#undef M_LN10_F
#define M_LN10_F 2.30258509299404568402f
#undef M_PI_F
#define M_PI_F 3.14159265358979323846f
#undef M_PI_2_F
#define M_PI_2_F 1.57079632679489661923f
#undef M_PI_4_F
#define M_PI_4_F 0.78539816339744830962f
#undef M_1_PI_F
#define M_1_PI_F 0.31830988618379067154f
#undef M_2_PI_F
#define M_2_PI_F 0.63661977236758134308f
#undef M_2_SQRTPI_F
#define M_2_SQRTPI_F 1.12837916709551257390f
#undef M_SQRT2_F
#define M_SQRT2_F 1.41421356237309504880f
#undef M_SQRT1_2_F
#define M_SQRT1_2_F 0.70710678118654752440f
#undef M_E_H
#define M_E_H ((half)M_E_F)
#undef M_LOG2E_H
#define M_LOG2E_H ((half)M_LOG2E_F)
#undef M_LOG10E_H
#define M_LOG10E_H ((half)M_LOG10E_F)
#undef M_LN2_H
#define M_LN2_H ((half)M_LN2_F)
#undef M_LN10_H
#define M_LN10_H ((half)M_LN10_F)
#undef M_PI_H
#define M_PI_H ((half)M_PI_F)
#undef M_PI_2_H
#define M_PI_2_H ((half)M_PI_2_F)
#undef M_PI_4_H
#define M_PI_4_H ((half)M_PI_4_F)
#undef M_1_PI_H
#define M_1_PI_H ((half)M_1_PI_F)
#undef M_2_PI_H
#define M_2_PI_H ((half)M_2_PI_F)
#undef M_2_SQRTPI_H
#define M_2_SQRTPI_H ((half)M_2_SQRTPI_F)
#undef M_SQRT2_H
#define M_SQRT2_H ((half)M_SQRT2_F)
#undef M_SQRT1_2_H
#define M_SQRT1_2_H ((half)M_SQRT1_2_F)

// ---------------------------------------------------------------- runtime
#ifndef MOE_CUDA
namespace moe_rt {
// Set by __moe_bind_runtime (rt.h) before any kernel runs.
static const MoeRuntimeApi* g_api = nullptr;
inline const MoeRuntimeApi* api() { return g_api; }
}  // namespace moe_rt
#endif

#endif  // MOE_METAL_BASE_H
