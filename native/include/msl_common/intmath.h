// msl_common/intmath.h — metal:: integer and bit functions (popcount, clz, ctz,
// reverse_bits, rotate, mulhi, abs_diff, extract_bits, insert_bits), relational
// functions (select, all, any), as_type and numeric_limits. Part of msl_cpu.h.
#ifndef MOE_METAL_INTMATH_H
#define MOE_METAL_INTMATH_H

namespace moe {
template <typename S> struct is_intarg : mstd::integral_constant<bool, is_int<sc<S>>::value && !mstd::is_same<sc<S>, bool>::value> {};
template <typename R> using uns = typename mstd::make_unsigned<R>::type;
template <typename R> MOE_HD constexpr int bits_of() { return int(8 * sizeof(R)); }
template <typename U> MOE_FN inline U reverse_(U u) {
  U r = 0;
  for (int i = 0; i < bits_of<U>(); ++i) {
    r = U((r << 1) | (u & 1u));
    u = U(u >> 1);
  }
  return r;
}
template <typename R> MOE_FN inline R mulhi_(R a, R b) {
  if constexpr (sizeof(R) < 8) {
    return R((long long)a * (long long)b >> bits_of<R>());
  } else if constexpr (mstd::is_signed<R>::value) {
#ifdef MOE_CUDA
    return R(__mul64hi((long long)a, (long long)b));
#else
    return R((__int128)a * (__int128)b >> 64);
#endif
  } else {
#ifdef MOE_CUDA
    return R(__umul64hi((unsigned long long)a, (unsigned long long)b));
#else
    return R((unsigned __int128)a * (unsigned __int128)b >> 64);
#endif
  }
}
template <typename R> MOE_FN inline R extract_(R x, uint off, uint bits) {
  typedef uns<R> U;
  const int w = bits_of<R>();
  if (bits == 0 || int(off) >= w) return R(0);
  const U m = int(bits) >= w ? U(~U(0)) : U((U(1) << bits) - 1u);
  U r = U(U(x) >> off) & m;
  if (mstd::is_signed<R>::value && int(bits) < w && ((r >> (bits - 1)) & 1u)) r = U(r | U(~m));
  return R(r);
}
template <typename R> MOE_FN inline R insert_(R base, R ins, uint off, uint bits) {
  typedef uns<R> U;
  const int w = bits_of<R>();
  if (bits == 0 || int(off) >= w) return base;
  const U m = U((int(bits) >= w ? U(~U(0)) : U((U(1) << bits) - 1u)) << off);
  return R((U(base) & U(~m)) | (U(U(ins) << off) & m));
}
}  // namespace moe

namespace metal {
#define MOE_IS_INT(S) moe::en<moe::is_intarg<S>::value> = 0
// One-argument bit functions on any integer type: u is the value as unsigned, w its width.
#define MOE_I1(name, body)                                                                   \
  template <typename S, MOE_IS_INT(S)> MOE_FN inline moe::sc<S> name(const S& s) {                  \
    typedef moe::sc<S> R;                                                                    \
    const moe::uns<R> u = moe::uns<R>(moe::val(s));                                          \
    constexpr int w = moe::bits_of<R>();                                                     \
    (void)w;                                                                                 \
    return body;                                                                             \
  }                                                                                          \
  template <typename T, int N> MOE_FN inline vec<T, N> name(const vec<T, N>& v) { MOE_VEC_LOOP(T, name(v.__e[i])); }
MOE_I1(popcount, R(moe::popc64(u)))
MOE_I1(clz, u == 0 ? R(w) : R(moe::clz64(u) - (64 - w)))
MOE_I1(ctz, u == 0 ? R(w) : R(moe::ctz64(u)))
MOE_I1(reverse_bits, R(moe::reverse_(u)))
#undef MOE_I1

template <typename S, typename I, MOE_IS_INT(S), MOE_IS_INT(I)> MOE_FN inline moe::sc<S> rotate(const S& s, const I& by) {
  typedef moe::sc<S> R;
  typedef moe::uns<R> U;
  constexpr int w = moe::bits_of<R>();
  const U u = U(moe::val(s));
  const int k = int((unsigned long long)moe::val(by) % (unsigned long long)w);
  return k == 0 ? R(u) : R(U(u << k) | U(u >> (w - k)));
}
template <typename T, int N, typename X, MOE_VARG(X)> MOE_FN inline vec<T, N> rotate(const vec<T, N>& v, const X& by) {
  MOE_VEC_LOOP(T, rotate(v.__e[i], moe::at(by, i)));
}
template <typename A, typename B, MOE_IS_INT(A), MOE_IS_INT(B)> MOE_FN inline moe::common2<A, B> mulhi(const A& a, const B& b) {
  typedef moe::common2<A, B> R;
  return moe::mulhi_(R(moe::val(a)), R(moe::val(b)));
}
template <typename T, int N> MOE_FN inline vec<T, N> mulhi(const vec<T, N>& a, const vec<T, N>& b) { MOE_VEC_LOOP(T, mulhi(a.__e[i], b.__e[i])); }
// abs_diff(a, b) = |a - b| as the unsigned type (no overflow).
template <typename A, typename B, MOE_IS_INT(A), MOE_IS_INT(B)>
MOE_FN inline moe::uns<moe::common2<A, B>> abs_diff(const A& sa, const B& sb) {
  typedef moe::common2<A, B> R;
  typedef moe::uns<R> U;
  const R a = R(moe::val(sa)), b = R(moe::val(sb));
  return a > b ? U(U(a) - U(b)) : U(U(b) - U(a));
}
template <typename T, int N> MOE_FN inline vec<moe::uns<T>, N> abs_diff(const vec<T, N>& a, const vec<T, N>& b) {
  MOE_VEC_LOOP(moe::uns<T>, abs_diff(a.__e[i], b.__e[i]));
}
template <typename S, MOE_IS_INT(S)> MOE_FN inline moe::sc<S> extract_bits(const S& x, uint offset, uint bits) {
  return moe::extract_(moe::sc<S>(moe::val(x)), offset, bits);
}
template <typename T, int N> MOE_FN inline vec<T, N> extract_bits(const vec<T, N>& x, uint offset, uint bits) {
  MOE_VEC_LOOP(T, moe::extract_(x.__e[i], offset, bits));
}
template <typename S, typename I, MOE_IS_INT(S), MOE_IS_INT(I)>
MOE_FN inline moe::sc<S> insert_bits(const S& base, const I& ins, uint offset, uint bits) {
  typedef moe::sc<S> R;
  return moe::insert_(R(moe::val(base)), R(moe::val(ins)), offset, bits);
}
template <typename T, int N> MOE_FN inline vec<T, N> insert_bits(const vec<T, N>& base, const vec<T, N>& ins, uint offset, uint bits) {
  MOE_VEC_LOOP(T, moe::insert_(base.__e[i], ins.__e[i], offset, bits));
}
#undef MOE_IS_INT

// ---------------------------------------------------------------- relational
template <int N> MOE_FN inline bool all(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (!v.__e[i]) return false;
  return true;
}
template <int N> MOE_FN inline bool any(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (v.__e[i]) return true;
  return false;
}
MOE_FN inline bool all(bool b) { return b; }
MOE_FN inline bool any(bool b) { return b; }
// select(a, b, c) = c ? b : a, element-wise for vectors.
template <typename A, typename B, MOE_IS_SC(A), MOE_IS_SC(B)> MOE_FN inline moe::common2<A, B> select(const A& a, const B& b, bool c) {
  typedef moe::common2<A, B> R;
  return c ? R(moe::val(b)) : R(moe::val(a));
}
template <typename T, int N, typename X, MOE_VARG(X)> MOE_FN inline vec<T, N> select(const vec<T, N>& a, const X& b, const vec<bool, N>& c) {
  MOE_VEC_LOOP(T, c.__e[i] ? T(moe::at(b, i)) : a.__e[i]);
}
template <typename T, int N, typename X, MOE_VARG(X)> MOE_FN inline vec<T, N> select(const vec<T, N>& a, const X& b, bool c) {
  MOE_VEC_LOOP(T, c ? T(moe::at(b, i)) : a.__e[i]);
}

// ---------------------------------------------------------------- as_type
template <typename To, typename From> MOE_FN inline To as_type(const From& f) { return moe::bitcast<To>(f); }
template <typename To, typename T, int M> MOE_FN inline To as_type(const moe::swz<T, M>& s) {
  return moe::bitcast<To>(static_cast<const vec<T, M>&>(s));
}

// ---------------------------------------------------------------- numeric_limits
template <typename T> struct numeric_limits {
  static constexpr bool is_specialized = false;
};
template <typename T> struct int_limits {
  static constexpr bool is_specialized = true;
  static constexpr bool is_integer = true;
  static constexpr bool is_signed = T(-1) < T(0);
  static constexpr bool has_infinity = false;
  static constexpr bool has_quiet_NaN = false;
  static constexpr int digits = int(8 * sizeof(T)) - (is_signed ? 1 : 0);
  MOE_HD static constexpr T max() { return is_signed ? T(~0ull >> (65 - 8 * sizeof(T))) : T(~0ull); }
  MOE_HD static constexpr T min() { return is_signed ? T(-max() - 1) : T(0); }
  MOE_HD static constexpr T lowest() { return min(); }
  MOE_HD static constexpr T epsilon() { return T(0); }
};
template <> struct numeric_limits<bool> : int_limits<bool> {};
template <> struct numeric_limits<char> : int_limits<char> {};
template <> struct numeric_limits<signed char> : int_limits<signed char> {};
template <> struct numeric_limits<uchar> : int_limits<uchar> {};
template <> struct numeric_limits<short> : int_limits<short> {};
template <> struct numeric_limits<ushort> : int_limits<ushort> {};
template <> struct numeric_limits<int> : int_limits<int> {};
template <> struct numeric_limits<uint> : int_limits<uint> {};
template <> struct numeric_limits<long> : int_limits<long> {};
template <> struct numeric_limits<ulong> : int_limits<ulong> {};
template <typename T, int Digits> struct fp_limits {
  static constexpr bool is_specialized = true;
  static constexpr bool is_integer = false;
  static constexpr bool is_signed = true;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = Digits;
  MOE_FN static T infinity() { return T(MOE_INF); }
  MOE_FN static T quiet_NaN() { return T(MOE_NAN); }
};
template <> struct numeric_limits<float> : fp_limits<float, 24> {
  MOE_HD static constexpr float max() { return 0x1.fffffep+127f; }
  MOE_HD static constexpr float min() { return 0x1p-126f; }
  MOE_HD static constexpr float lowest() { return -0x1.fffffep+127f; }
  MOE_HD static constexpr float epsilon() { return 0x1p-23f; }
  MOE_HD static constexpr float denorm_min() { return 0x1p-149f; }
};
template <> struct numeric_limits<half> : fp_limits<half, 11> {
  MOE_FN static half max() { return half(65504.0f); }
  MOE_FN static half min() { return half(0x1p-14f); }
  MOE_FN static half lowest() { return half(-65504.0f); }
  MOE_FN static half epsilon() { return half(0x1p-10f); }
  MOE_FN static half denorm_min() { return half(0x1p-24f); }
};
template <> struct numeric_limits<bfloat> : fp_limits<bfloat, 8> {
  MOE_FN static bfloat max() { return bfloat(0x1.fep+127f); }
  MOE_FN static bfloat min() { return bfloat(0x1p-126f); }
  MOE_FN static bfloat lowest() { return bfloat(-0x1.fep+127f); }
  MOE_FN static bfloat epsilon() { return bfloat(0x1p-7f); }
  MOE_FN static bfloat denorm_min() { return bfloat(0x1p-133f); }
};
}  // namespace metal

#endif  // MOE_METAL_INTMATH_H
