// msl_common/prelude.h — what differs between the two targets of the compat
// headers, so that base.h, vec.h, math.h and intmath.h are one text for both:
//
//   CPU  (msl_cpu.h, compiled by the system C++ compiler): MOE_FN is empty,
//        mstd is the standard library's <type_traits>.
//   CUDA (msl_cuda.h, compiled by NVRTC or nvcc; MOE_CUDA is defined): MOE_FN
//        is __device__, and mstd is the subset of <type_traits> the headers
//        use, defined here, because NVRTC has no standard library.
//
// MOE_B(expf), MOE_MEMCPY, moe::ctz64, moe::f_isnan ... stand in for the
// compiler builtins (__builtin_expf, ...) that NVRTC does not have.
// Part of the compat headers; not included alone.
#ifndef MOE_METAL_PRELUDE_H
#define MOE_METAL_PRELUDE_H

#ifdef MOE_CUDA
#define MOE_FN __device__
#define MOE_HD __host__ __device__

typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long int64_t;
typedef unsigned long uint64_t;
typedef unsigned long uintptr_t;

namespace mstd {
template <typename T, T v> struct integral_constant {
  static constexpr T value = v;
  typedef T value_type;
  typedef integral_constant type;
  constexpr operator T() const { return v; }
};
typedef integral_constant<bool, true> true_type;
typedef integral_constant<bool, false> false_type;
template <bool B, typename T = void> struct enable_if {};
template <typename T> struct enable_if<true, T> { typedef T type; };
template <bool B, typename T, typename F> struct conditional { typedef T type; };
template <typename T, typename F> struct conditional<false, T, F> { typedef F type; };
template <typename A, typename B> struct is_same : false_type {};
template <typename A> struct is_same<A, A> : true_type {};
template <typename T> struct remove_const { typedef T type; };
template <typename T> struct remove_const<const T> { typedef T type; };
template <typename T> struct remove_volatile { typedef T type; };
template <typename T> struct remove_volatile<volatile T> { typedef T type; };
template <typename T> struct remove_cv { typedef typename remove_volatile<typename remove_const<T>::type>::type type; };
template <typename T> struct remove_reference { typedef T type; };
template <typename T> struct remove_reference<T&> { typedef T type; };
template <typename T> struct remove_reference<T&&> { typedef T type; };
template <typename T> struct decay { typedef typename remove_cv<typename remove_reference<T>::type>::type type; };
template <typename T> struct is_integral_ : false_type {};
#define MOE_INTEGRAL(T) template <> struct is_integral_<T> : true_type {};
MOE_INTEGRAL(bool) MOE_INTEGRAL(char) MOE_INTEGRAL(signed char) MOE_INTEGRAL(unsigned char)
MOE_INTEGRAL(short) MOE_INTEGRAL(unsigned short) MOE_INTEGRAL(int) MOE_INTEGRAL(unsigned int)
MOE_INTEGRAL(long) MOE_INTEGRAL(unsigned long) MOE_INTEGRAL(long long) MOE_INTEGRAL(unsigned long long)
MOE_INTEGRAL(wchar_t) MOE_INTEGRAL(char16_t) MOE_INTEGRAL(char32_t)
#undef MOE_INTEGRAL
template <typename T> struct is_integral : is_integral_<typename remove_cv<T>::type> {};
template <typename T> struct is_floating_point_ : false_type {};
template <> struct is_floating_point_<float> : true_type {};
template <> struct is_floating_point_<double> : true_type {};
template <> struct is_floating_point_<long double> : true_type {};
template <typename T> struct is_floating_point : is_floating_point_<typename remove_cv<T>::type> {};
template <typename T> struct is_arithmetic : integral_constant<bool, is_integral<T>::value || is_floating_point<T>::value> {};
template <typename T, bool = is_arithmetic<T>::value> struct is_signed_ : integral_constant<bool, (T(-1) < T(0))> {};
template <typename T> struct is_signed_<T, false> : false_type {};
template <typename T> struct is_signed : is_signed_<typename remove_cv<T>::type> {};
template <typename B, typename D> struct is_base_of : integral_constant<bool, __is_base_of(B, D)> {};
template <typename T> struct make_unsigned { typedef T type; };
template <> struct make_unsigned<char> { typedef unsigned char type; };
template <> struct make_unsigned<signed char> { typedef unsigned char type; };
template <> struct make_unsigned<short> { typedef unsigned short type; };
template <> struct make_unsigned<int> { typedef unsigned int type; };
template <> struct make_unsigned<long> { typedef unsigned long type; };
template <> struct make_unsigned<long long> { typedef unsigned long long type; };
template <> struct make_unsigned<bool> { typedef bool type; };
}  // namespace mstd


// The float math of the CUDA math API (expf, ...), which NVRTC declares
// itself: MOE_B(expf) names it; the CPU's is __builtin_expf.
#define MOE_B(f) f
#define MOE_INF __int_as_float(0x7f800000)
#define MOE_NAN __int_as_float(0x7fc00000)
#define MOE_MEMCPY(d, s, n) ::moe::bytes_copy(d, s, n)

namespace moe {
MOE_FN inline int ctz64(unsigned long long u) { return __ffsll((long long)u) - 1; }
MOE_FN inline int clz64(unsigned long long u) { return __clzll((long long)u); }
MOE_FN inline int popc64(unsigned long long u) { return __popcll(u); }
// (no library memcpy in NVRTC: a byte loop, unrolled for the fixed sizes it is given)
MOE_FN inline void bytes_copy(void* d, const void* s, unsigned long n) {
  unsigned char* dc = static_cast<unsigned char*>(d);
  const unsigned char* sc = static_cast<const unsigned char*>(s);
  for (unsigned long i = 0; i < n; ++i) dc[i] = sc[i];
}
MOE_FN inline bool f_isnan(float x) { return (__float_as_uint(x) & 0x7fffffffu) > 0x7f800000u; }
MOE_FN inline bool f_isinf(float x) { return (__float_as_uint(x) & 0x7fffffffu) == 0x7f800000u; }
MOE_FN inline bool f_isfinite(float x) { return (__float_as_uint(x) & 0x7fffffffu) < 0x7f800000u; }
MOE_FN inline bool f_isnormal(float x) {
  const unsigned e = (__float_as_uint(x) >> 23) & 0xffu;
  return e != 0u && e != 0xffu;
}
MOE_FN inline bool f_signbit(float x) { return (__float_as_uint(x) >> 31) != 0u; }
}  // namespace moe

#else  // the CPU
#define MOE_FN
#define MOE_HD

#include <stdint.h>
#include <type_traits>
namespace mstd = std;

#define MOE_B(f) __builtin_##f
#define MOE_INF (__builtin_inff())
#define MOE_NAN (__builtin_nanf(""))
#define MOE_MEMCPY(d, s, n) __builtin_memcpy(d, s, n)

namespace moe {
inline int ctz64(unsigned long long u) { return __builtin_ctzll(u); }
inline int clz64(unsigned long long u) { return __builtin_clzll(u); }
inline int popc64(unsigned long long u) { return __builtin_popcountll(u); }
inline bool f_isnan(float x) { return __builtin_isnan(x); }
inline bool f_isinf(float x) { return __builtin_isinf(x); }
inline bool f_isfinite(float x) { return __builtin_isfinite(x); }
inline bool f_isnormal(float x) { return __builtin_isnormal(x); }
inline bool f_signbit(float x) { return __builtin_signbit(x) != 0; }
}  // namespace moe
#endif

#endif  // MOE_METAL_PRELUDE_H
