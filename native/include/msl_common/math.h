// msl_common/math.h — metal:: floating-point math for scalars and vectors.
//
// Scalar functions are templates over every MSL scalar (float, half, bfloat,
// the integers, double literals), so calls such as max(x, 0.0f), max(a, b)
// with uints, min(i, n - 1u), fmax(m, x[e]) or clamp(v, -15.0f, 15.0f)
// resolve without ambiguity; arguments of different types meet in
// moe::common_t. Float work calls float builtins (MOE_B(expf), ...), never
// double; half and bfloat compute in float and round once. <cmath> is not
// included, so nothing clashes in the global namespace. Part of msl_cpu.h.
#ifndef MOE_METAL_MATH_H
#define MOE_METAL_MATH_H

namespace moe {
template <typename T> struct math<comp<T>> : math<T> {};
// The scalar type of an argument (.r of a vector counts as its element type).
template <typename S> struct sc_ { typedef S type; };
template <typename T> struct sc_<comp<T>> { typedef T type; };
template <typename S> using sc = typename sc_<S>::type;
template <typename A, typename B> using common2 = common_t<sc<A>, sc<B>>;
template <typename A, typename B, typename C> using common3 = common_t<common_t<sc<A>, sc<B>>, sc<C>>;
template <typename A, typename B> using fcommon2 = math_t<common2<A, B>>;
template <typename A, typename B, typename C> using fcommon3 = math_t<common3<A, B, C>>;
template <typename S> MOE_FN inline float tof(const S& s) { return float(val(s)); }

// Argument i of an element-wise function: a vector's element, or the scalar.
template <typename T, int N> MOE_FN inline const T& at(const vec<T, N>& v, int i) { return v.__e[i]; }
template <typename S, en<is_scalar<S>::value> = 0> MOE_FN inline const sc<S>& at(const S& s, int) { return val(s); }
// A vector of type vec<T, N> (or a swizzle of one), or a scalar.
template <typename T, int N, typename X>
struct varg : mstd::integral_constant<bool, is_scalar<X>::value || mstd::is_base_of<vec<T, N>, X>::value> {};
#define MOE_IS_SC(S) moe::en<moe::is_scalar<S>::value> = 0
#define MOE_VARG(X) moe::en<moe::varg<T, N, X>::value> = 0

#ifdef MOE_CUDA
MOE_FN inline float fmax_(float a, float b) { return fmaxf(a, b); }  // one instruction
MOE_FN inline float fmin_(float a, float b) { return fminf(a, b); }
#else
// fmax/fmin inline: x86-64 has no instruction with their NaN rule, so GCC
// calls libm for __builtin_fmaxf (a PLT call per max: most of the time of a
// SIMD-group max, which folds 32 values in every lane).
inline float fmax_(float a, float b) { return (a >= b || b != b) ? a : b; }
inline float fmin_(float a, float b) { return (a <= b || b != b) ? a : b; }
#endif
template <typename R> MOE_FN inline R max_(R a, R b) {
  if constexpr (is_fp<R>::value) return R(fmax_(float(a), float(b)));
  else return a < b ? b : a;
}
template <typename R> MOE_FN inline R min_(R a, R b) {
  if constexpr (is_fp<R>::value) return R(fmin_(float(a), float(b)));
  else return b < a ? b : a;
}
MOE_FN inline float div_(float a, float b) { return a / b; }
MOE_FN inline float fract_(float x) { return MOE_B(fminf)(x - MOE_B(floorf)(x), 0x1.fffffep-1f); }
MOE_FN inline float sign_(float x) { return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x == x ? x : 0.0f; }
}  // namespace moe

namespace metal {
// One-argument float functions: f(float x) → expr.
#define MOE_F1(name, expr)                                                                          \
  template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::math_t<moe::sc<S>> name(const S& s) {              \
    const float x = moe::tof(s);                                                                    \
    return moe::math_t<moe::sc<S>>(expr);                                                           \
  }                                                                                                 \
  template <typename T, int N> MOE_FN inline vec<T, N> name(const vec<T, N>& v) { MOE_VEC_LOOP(T, T(name(v.__e[i]))); }
MOE_F1(exp, MOE_B(expf)(x))
MOE_F1(exp2, MOE_B(exp2f)(x))
MOE_F1(exp10, MOE_B(powf)(10.0f, x))
MOE_F1(log, MOE_B(logf)(x))
MOE_F1(log2, MOE_B(log2f)(x))
MOE_F1(log10, MOE_B(log10f)(x))
MOE_F1(sqrt, MOE_B(sqrtf)(x))
MOE_F1(rsqrt, 1.0f / MOE_B(sqrtf)(x))
MOE_F1(cbrt, MOE_B(cbrtf)(x))
MOE_F1(sin, MOE_B(sinf)(x))
MOE_F1(cos, MOE_B(cosf)(x))
MOE_F1(tan, MOE_B(tanf)(x))
MOE_F1(sinpi, MOE_B(sinf)(x * 3.14159265358979323846f))
MOE_F1(cospi, MOE_B(cosf)(x * 3.14159265358979323846f))
MOE_F1(tanpi, MOE_B(tanf)(x * 3.14159265358979323846f))
MOE_F1(asin, MOE_B(asinf)(x))
MOE_F1(acos, MOE_B(acosf)(x))
MOE_F1(atan, MOE_B(atanf)(x))
MOE_F1(asinpi, MOE_B(asinf)(x) * 0.31830988618379067154f)
MOE_F1(acospi, MOE_B(acosf)(x) * 0.31830988618379067154f)
MOE_F1(atanpi, MOE_B(atanf)(x) * 0.31830988618379067154f)
MOE_F1(sinh, MOE_B(sinhf)(x))
MOE_F1(cosh, MOE_B(coshf)(x))
MOE_F1(tanh, MOE_B(tanhf)(x))
MOE_F1(asinh, MOE_B(asinhf)(x))
MOE_F1(acosh, MOE_B(acoshf)(x))
MOE_F1(atanh, MOE_B(atanhf)(x))
MOE_F1(erf, MOE_B(erff)(x))
MOE_F1(erfc, MOE_B(erfcf)(x))
MOE_F1(floor, MOE_B(floorf)(x))
MOE_F1(ceil, MOE_B(ceilf)(x))
MOE_F1(round, MOE_B(roundf)(x))
MOE_F1(rint, MOE_B(rintf)(x))
MOE_F1(trunc, MOE_B(truncf)(x))
MOE_F1(fabs, MOE_B(fabsf)(x))
MOE_F1(fract, moe::fract_(x))
MOE_F1(sign, moe::sign_(x))
MOE_F1(saturate, MOE_B(fminf)(MOE_B(fmaxf)(x, 0.0f), 1.0f))
// (MOE_F1 serves fast:: below too)

// abs: integers stay integers (abs(int) → int), floats → fabs.
template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::sc<S> abs(const S& s) {
  typedef moe::sc<S> R;
  if constexpr (moe::is_fp<R>::value) {
    return R(MOE_B(fabsf)(moe::tof(s)));
  } else if constexpr (mstd::is_signed<R>::value) {
    const R v = moe::val(s);
    return v < R(0) ? R(-v) : v;
  } else {
    return moe::val(s);
  }
}
template <typename T, int N> MOE_FN inline vec<T, N> abs(const vec<T, N>& v) { MOE_VEC_LOOP(T, abs(v.__e[i])); }

// Predicates: bool for scalars, boolN for vectors.
#define MOE_PRED(name, expr)                                                                            \
  template <typename S, MOE_IS_SC(S)> MOE_FN inline bool name(const S& s) {                                    \
    const float x = moe::tof(s);                                                                        \
    return expr;                                                                                        \
  }                                                                                                     \
  template <typename T, int N> MOE_FN inline vec<bool, N> name(const vec<T, N>& v) { MOE_VEC_LOOP(bool, name(v.__e[i])); }
MOE_PRED(isnan, moe::f_isnan(x))
MOE_PRED(isinf, moe::f_isinf(x))
MOE_PRED(isfinite, moe::f_isfinite(x))
MOE_PRED(isnormal, moe::f_isnormal(x))
MOE_PRED(signbit, moe::f_signbit(x))
#undef MOE_PRED

// Two-argument functions. R: the result type from the two scalar types;
// body in terms of a and b of type R (float functions: float x, y).
#define MOE_F2(name, R, body)                                                                           \
  template <typename A, typename B, MOE_IS_SC(A), MOE_IS_SC(B)>                                         \
  MOE_FN inline moe::R<A, B> name(const A& sa, const B& sb) {                                                  \
    typedef moe::R<A, B> R_;                                                                            \
    const R_ a = R_(moe::val(sa)), b = R_(moe::val(sb));                                                \
    return body;                                                                                        \
  }                                                                                                     \
  template <typename T, int N, typename X, MOE_VARG(X)> MOE_FN inline vec<T, N> name(const vec<T, N>& a, const X& b) { \
    MOE_VEC_LOOP(T, T(name(a.__e[i], T(moe::at(b, i)))));                                               \
  }                                                                                                     \
  template <typename S, typename T, int N, MOE_IS_SC(S)> MOE_FN inline vec<T, N> name(const S& a, const vec<T, N>& b) { \
    const T s = T(moe::val(a));                                                                         \
    MOE_VEC_LOOP(T, T(name(s, b.__e[i])));                                                              \
  }
#define MOE_FF(expr) R_((expr)(float(a), float(b)))
MOE_F2(max, common2, moe::max_(a, b))
MOE_F2(min, common2, moe::min_(a, b))
MOE_F2(fmax, fcommon2, moe::max_(a, b))
MOE_F2(fmin, fcommon2, moe::min_(a, b))
MOE_F2(pow, fcommon2, MOE_FF(MOE_B(powf)))
MOE_F2(powr, fcommon2, MOE_FF(MOE_B(powf)))
MOE_F2(atan2, fcommon2, MOE_FF(MOE_B(atan2f)))
MOE_F2(fmod, fcommon2, MOE_FF(MOE_B(fmodf)))
MOE_F2(remainder, fcommon2, MOE_FF(MOE_B(remainderf)))
MOE_F2(copysign, fcommon2, MOE_FF(MOE_B(copysignf)))
MOE_F2(fdim, fcommon2, MOE_FF(MOE_B(fdimf)))
MOE_F2(hypot, fcommon2, MOE_FF(MOE_B(hypotf)))
MOE_F2(nextafter, fcommon2, MOE_FF(MOE_B(nextafterf)))
MOE_F2(step, fcommon2, float(b) < float(a) ? R_(0) : R_(1))
MOE_F2(divide, fcommon2, MOE_FF(moe::div_))
#undef MOE_FF
#undef MOE_F2
template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::math_t<moe::sc<S>> pown(const S& x, int n) {
  return moe::math_t<moe::sc<S>>(MOE_B(powf)(moe::tof(x), float(n)));
}
template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::math_t<moe::sc<S>> rootn(const S& x, int n) {
  return moe::math_t<moe::sc<S>>(MOE_B(powf)(moe::tof(x), 1.0f / float(n)));
}

// Three-argument functions: scalars of any mix, or a vector first argument
// with vector or scalar companions (clamp(v, 0.0f, 1.0f), mix(a, b, 0.5f)).
#define MOE_F3(name, R, body)                                                                           \
  template <typename A, typename B, typename C, MOE_IS_SC(A), MOE_IS_SC(B), MOE_IS_SC(C)>               \
  MOE_FN inline moe::R<A, B, C> name(const A& sa, const B& sb, const C& sc) {                                  \
    typedef moe::R<A, B, C> R_;                                                                         \
    const R_ a = R_(moe::val(sa)), b = R_(moe::val(sb)), c = R_(moe::val(sc));                          \
    return body;                                                                                        \
  }                                                                                                     \
  template <typename T, int N, typename X, typename Y, MOE_VARG(X), MOE_VARG(Y)>                        \
  MOE_FN inline vec<T, N> name(const vec<T, N>& a, const X& b, const Y& c) {                                   \
    MOE_VEC_LOOP(T, T(name(a.__e[i], T(moe::at(b, i)), T(moe::at(c, i)))));                             \
  }
MOE_F3(clamp, common3, moe::min_(moe::max_(a, b), c))
MOE_F3(mix, fcommon3, R_(a + (b - a) * c))
MOE_F3(fma, fcommon3, R_(MOE_B(fmaf)(float(a), float(b), float(c))))
MOE_F3(mad, fcommon3, R_(a * b + c))
MOE_F3(min3, common3, moe::min_(moe::min_(a, b), c))
MOE_F3(max3, common3, moe::max_(moe::max_(a, b), c))
MOE_F3(median3, common3, moe::max_(moe::min_(a, b), moe::min_(moe::max_(a, b), c)))
#undef MOE_F3
// smoothstep(e0, e1, x) and step(edge, x) take their vector last.
template <typename A, typename B, typename C, MOE_IS_SC(A), MOE_IS_SC(B), MOE_IS_SC(C)>
MOE_FN inline moe::fcommon3<A, B, C> smoothstep(const A& e0, const B& e1, const C& x) {
  const float t = MOE_B(fminf)(MOE_B(fmaxf)((moe::tof(x) - moe::tof(e0)) / (moe::tof(e1) - moe::tof(e0)), 0.0f), 1.0f);
  return moe::fcommon3<A, B, C>(t * t * (3.0f - 2.0f * t));
}
template <typename T, int N, typename X, typename Y, MOE_VARG(X), MOE_VARG(Y)>
MOE_FN inline vec<T, N> smoothstep(const X& e0, const Y& e1, const vec<T, N>& x) {
  MOE_VEC_LOOP(T, T(smoothstep(T(moe::at(e0, i)), T(moe::at(e1, i)), x.__e[i])));
}

// Functions with an output argument.
template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::math_t<moe::sc<S>> sincos(const S& s, moe::math_t<moe::sc<S>>& c) {
  const float x = moe::tof(s);
  c = moe::math_t<moe::sc<S>>(MOE_B(cosf)(x));
  return moe::math_t<moe::sc<S>>(MOE_B(sinf)(x));
}
template <typename T, int N> MOE_FN inline vec<T, N> sincos(const vec<T, N>& v, vec<T, N>& c) { MOE_VEC_LOOP(T, sincos(v.__e[i], c.__e[i])); }
template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::math_t<moe::sc<S>> frexp(const S& s, int& e) {
  return moe::math_t<moe::sc<S>>(MOE_B(frexpf)(moe::tof(s), &e));
}
template <typename T, int N> MOE_FN inline vec<T, N> frexp(const vec<T, N>& v, vec<int, N>& e) { MOE_VEC_LOOP(T, frexp(v.__e[i], e.__e[i])); }
template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::math_t<moe::sc<S>> ldexp(const S& s, int e) {
  return moe::math_t<moe::sc<S>>(MOE_B(ldexpf)(moe::tof(s), e));
}
template <typename T, int N> MOE_FN inline vec<T, N> ldexp(const vec<T, N>& v, const vec<int, N>& e) { MOE_VEC_LOOP(T, ldexp(v.__e[i], e.__e[i])); }
template <typename T, int N> MOE_FN inline vec<T, N> ldexp(const vec<T, N>& v, int e) { MOE_VEC_LOOP(T, ldexp(v.__e[i], e)); }
template <typename S, MOE_IS_SC(S)> MOE_FN inline moe::math_t<moe::sc<S>> modf(const S& s, moe::math_t<moe::sc<S>>& ip) {
  float i;
  const float f = MOE_B(modff)(moe::tof(s), &i);
  ip = moe::math_t<moe::sc<S>>(i);
  return moe::math_t<moe::sc<S>>(f);
}
template <typename T, int N> MOE_FN inline vec<T, N> modf(const vec<T, N>& v, vec<T, N>& ip) { MOE_VEC_LOOP(T, modf(v.__e[i], ip.__e[i])); }

// ---------------------------------------------------------------- geometric
template <typename T, int N> MOE_FN inline T dot(const vec<T, N>& a, const vec<T, N>& b) {
  T s = a.__e[0] * b.__e[0];
  for (int i = 1; i < N; ++i) s = T(s + a.__e[i] * b.__e[i]);
  return s;
}
template <typename T> MOE_FN inline vec<T, 3> cross(const vec<T, 3>& a, const vec<T, 3>& b) {
  return vec<T, 3>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
template <typename T, int N> MOE_FN inline T length_squared(const vec<T, N>& a) { return dot(a, a); }
template <typename T, int N> MOE_FN inline T length(const vec<T, N>& a) { return T(MOE_B(sqrtf)(float(dot(a, a)))); }
template <typename T, int N> MOE_FN inline T distance(const vec<T, N>& a, const vec<T, N>& b) { return length(vec<T, N>(a - b)); }
template <typename T, int N> MOE_FN inline T distance_squared(const vec<T, N>& a, const vec<T, N>& b) { return length_squared(vec<T, N>(a - b)); }
template <typename T, int N> MOE_FN inline vec<T, N> normalize(const vec<T, N>& a) {
  return a * T(1.0f / MOE_B(sqrtf)(float(dot(a, a))));
}
template <typename T, int N> MOE_FN inline vec<T, N> reflect(const vec<T, N>& i, const vec<T, N>& n) { return i - n * T(2 * float(dot(n, i))); }
template <typename T, int N> MOE_FN inline vec<T, N> faceforward(const vec<T, N>& n, const vec<T, N>& i, const vec<T, N>& nref) {
  return float(dot(nref, i)) < 0.0f ? n : vec<T, N>(-n);
}

// precise:: and fast:: are the same functions on the CPU. On CUDA, metal::
// and precise:: are the accurate library functions (expf, ...), and fast::
// the hardware approximations (__expf, ...), as Metal's fast math allows.
namespace precise { using namespace ::metal; }
namespace fast {
using namespace ::metal;
#ifdef MOE_CUDA
MOE_F1(exp, __expf(x))
MOE_F1(exp2, __expf(x * 0.69314718055994530942f))
MOE_F1(exp10, __exp10f(x))
MOE_F1(log, __logf(x))
MOE_F1(log2, __log2f(x))
MOE_F1(log10, __log10f(x))
MOE_F1(sin, __sinf(x))
MOE_F1(cos, __cosf(x))
MOE_F1(tan, __tanf(x))
MOE_F1(rsqrt, rsqrtf(x))
template <typename A, typename B, MOE_IS_SC(A), MOE_IS_SC(B)> MOE_FN inline moe::fcommon2<A, B> pow(const A& a, const B& b) {
  return moe::fcommon2<A, B>(__powf(moe::tof(a), moe::tof(b)));
}
template <typename A, typename B, MOE_IS_SC(A), MOE_IS_SC(B)> MOE_FN inline moe::fcommon2<A, B> powr(const A& a, const B& b) {
  return moe::fcommon2<A, B>(__powf(moe::tof(a), moe::tof(b)));
}
template <typename A, typename B, MOE_IS_SC(A), MOE_IS_SC(B)> MOE_FN inline moe::fcommon2<A, B> divide(const A& a, const B& b) {
  return moe::fcommon2<A, B>(__fdividef(moe::tof(a), moe::tof(b)));
}
#endif
}  // namespace fast
#undef MOE_F1
}  // namespace metal

#endif  // MOE_METAL_MATH_H
