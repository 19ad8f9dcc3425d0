// moe_metal/base.h — scalar types (uint, ushort, uchar, half, bfloat), the
// traits the rest of the header builds on, MSL's constant macros, and the
// runtime pointer (::moe_rt::api()). Part of moe_metal.h; not included alone.
#ifndef MOE_METAL_BASE_H
#define MOE_METAL_BASE_H

#include <stdint.h>
#include <type_traits>
#include "../moe_rt_abi.h"

// ---------------------------------------------------------------- scalars
typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;
typedef _Float16 half;
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;

namespace moe {
inline float bf_to_f(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// float → bfloat bits, round to nearest even; NaN stays (quiet) NaN.
inline uint16_t f_to_bf(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
template <typename S> struct is_arith : std::is_arithmetic<S> {};
template <> struct is_arith<_Float16> : std::true_type {};
}  // namespace moe

// bfloat: 16 bits (the top half of a float), arithmetic in float.
// `bfloat b = x;`, `float y = b;`, `b * 2.0f` (a float) work as in MSL.
struct bfloat {
  uint16_t __bits;
  bfloat() = default;
  template <typename S, typename std::enable_if<moe::is_arith<S>::value, int>::type = 0>
  bfloat(S s) : __bits(moe::f_to_bf((float)s)) {}
  operator float() const { return moe::bf_to_f(__bits); }
  bfloat& operator+=(float o) { return *this = bfloat(float(*this) + o); }
  bfloat& operator-=(float o) { return *this = bfloat(float(*this) - o); }
  bfloat& operator*=(float o) { return *this = bfloat(float(*this) * o); }
  bfloat& operator/=(float o) { return *this = bfloat(float(*this) / o); }
  bfloat& operator++() { return *this += 1.0f; }
  bfloat& operator--() { return *this -= 1.0f; }
  bfloat operator++(int) { bfloat o = *this; *this += 1.0f; return o; }
  bfloat operator--(int) { bfloat o = *this; *this -= 1.0f; return o; }
};

// ---------------------------------------------------------------- traits
namespace moe {
template <bool B, typename T = int> using en = typename std::enable_if<B, T>::type;
template <typename T> using rm = typename std::remove_cv<typename std::remove_reference<T>::type>::type;

// A scalar of MSL: arithmetic, half or bfloat.
template <typename S> struct is_scalar : std::integral_constant<bool, is_arith<S>::value> {};
template <> struct is_scalar<bfloat> : std::true_type {};
template <typename S> struct is_fp : std::integral_constant<bool, std::is_floating_point<S>::value> {};
template <> struct is_fp<_Float16> : std::true_type {};
template <> struct is_fp<bfloat> : std::true_type {};
template <typename S> struct is_int : std::integral_constant<bool, std::is_integral<S>::value> {};

// Type of a float function's result: half, bfloat and float keep their type;
// double (MSL's unsuffixed literals are float) and integers give float.
template <typename S> struct math { typedef float type; };
template <> struct math<_Float16> { typedef _Float16 type; };
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
struct common<A, B, typename std::enable_if<!std::is_same<A, B>::value && (is_fp<A>::value || is_fp<B>::value)>::type> {
  typedef typename std::conditional<
      !is_fp<B>::value, math_t<A>,
      typename std::conditional<!is_fp<A>::value, math_t<B>,
                                typename std::conditional<std::is_same<math_t<A>, math_t<B>>::value, math_t<A>, float>::type>::type>::type
      type;
};
template <typename A, typename B> using common_t = typename common<A, B>::type;

// bfloat arithmetic: bfloat op bfloat (or an integer) → bfloat, with float,
// double or half → float; computed in float, rounded once (exact for + - * /).
template <typename A, typename B> struct bf_op {
  static constexpr bool bf_a = std::is_same<A, bfloat>::value, bf_b = std::is_same<B, bfloat>::value;
  static constexpr bool ok = (bf_a || bf_b) && is_scalar<A>::value && is_scalar<B>::value && !std::is_same<A, bool>::value &&
                             !std::is_same<B, bool>::value;
  typedef typename std::conditional<(bf_a || is_int<A>::value) && (bf_b || is_int<B>::value), bfloat, float>::type type;
};
}  // namespace moe

#define MOE_BF_OP(op)                                                                                  \
  template <typename A, typename B, moe::en<moe::bf_op<A, B>::ok> = 0>                                 \
  inline typename moe::bf_op<A, B>::type operator op(const A& a, const B& b) {                         \
    return typename moe::bf_op<A, B>::type(float(a) op float(b));                                      \
  }
MOE_BF_OP(+)
MOE_BF_OP(-)
MOE_BF_OP(*)
MOE_BF_OP(/)
#undef MOE_BF_OP
inline bfloat operator-(bfloat b) { bfloat r; r.__bits = uint16_t(b.__bits ^ 0x8000u); return r; }
inline bfloat operator+(bfloat b) { return b; }

namespace moe {
// Bit casts without <string.h>.
template <typename To, typename From> inline To bitcast(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "as_type: both types must have the same size");
  To t;
  __builtin_memcpy(&t, &f, sizeof(To));
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
#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))
#define HUGE_VALF (__builtin_huge_valf())
#define MAXFLOAT 0x1.fffffep+127f
#define FLT_MAX 0x1.fffffep+127f
#define FLT_MIN 0x1p-126f
#define FLT_EPSILON 0x1p-23f
#define FLT_MANT_DIG 24
#define FLT_MAX_EXP 128
#define FLT_MIN_EXP (-125)
#define FLT_DIG 6
#define FLT_RADIX 2
#define HUGE_VALH ((half)__builtin_inff())
#define MAXHALF ((half)65504.0f)
#define HALF_MAX ((half)65504.0f)
#define HALF_MIN ((half)0x1p-14f)
#define HALF_EPSILON ((half)0x1p-10f)
#define HALF_MANT_DIG 11
#define HALF_DIG 3
#define BFLOAT_MAX 0x1.fep+127f
#define BFLOAT_MIN 0x1p-126f
#define BFLOAT_EPSILON 0x1p-7f
#define CHAR_BIT 8
#define SCHAR_MAX 127
#define SCHAR_MIN (-128)
#define UCHAR_MAX 255
#define CHAR_MAX SCHAR_MAX
#define CHAR_MIN SCHAR_MIN
#define SHRT_MAX 32767
#define SHRT_MIN (-32768)
#define USHRT_MAX 65535
#define INT_MAX 2147483647
#define INT_MIN (-2147483647 - 1)
#define UINT_MAX 4294967295u
#define LONG_MAX 9223372036854775807L
#define LONG_MIN (-9223372036854775807L - 1)
#define ULONG_MAX 18446744073709551615UL
#define M_E_F 2.71828182845904523536f
#define M_LOG2E_F 1.44269504088896340736f
#define M_LOG10E_F 0.43429448190325182765f
#define M_LN2_F 0.69314718055994530942f
#define M_LN10_F 2.30258509299404568402f
#define M_PI_F 3.14159265358979323846f
#define M_PI_2_F 1.57079632679489661923f
#define M_PI_4_F 0.78539816339744830962f
#define M_1_PI_F 0.31830988618379067154f
#define M_2_PI_F 0.63661977236758134308f
#define M_2_SQRTPI_F 1.12837916709551257390f
#define M_SQRT2_F 1.41421356237309504880f
#define M_SQRT1_2_F 0.70710678118654752440f
#define M_E_H ((half)M_E_F)
#define M_LOG2E_H ((half)M_LOG2E_F)
#define M_LOG10E_H ((half)M_LOG10E_F)
#define M_LN2_H ((half)M_LN2_F)
#define M_LN10_H ((half)M_LN10_F)
#define M_PI_H ((half)M_PI_F)
#define M_PI_2_H ((half)M_PI_2_F)
#define M_PI_4_H ((half)M_PI_4_F)
#define M_1_PI_H ((half)M_1_PI_F)
#define M_2_PI_H ((half)M_2_PI_F)
#define M_2_SQRTPI_H ((half)M_2_SQRTPI_F)
#define M_SQRT2_H ((half)M_SQRT2_F)
#define M_SQRT1_2_H ((half)M_SQRT1_2_F)

// ---------------------------------------------------------------- runtime
namespace moe_rt {
// Set by __moe_bind_runtime (rt.h) before any kernel runs.
static const MoeRuntimeApi* g_api = nullptr;
inline const MoeRuntimeApi* api() { return g_api; }
}  // namespace moe_rt

#endif  // MOE_METAL_BASE_H
