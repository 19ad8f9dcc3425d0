// msl_common/vec.h — MSL vector types: moe::vec<T, N> (float2..4, int3, ...),
// laid out as in Metal (3-vectors padded to 4 elements, aligned to their size),
// moe::packed_vec<T, N> (packed_float3, ...: no padding, element alignment),
// constructors, conversions, element-wise operators and swizzles.
//
// Components: .x .y .z .w are data members; .r .g .b .a are members callable
// as v.r() (what the emitter writes) and usable as v.r; multi-letter swizzles
// are methods (v.xy(), v.zyx() = w). Part of msl_cpu.h; not included alone.
#ifndef MOE_METAL_VEC_H
#define MOE_METAL_VEC_H

namespace moe {
template <typename T, int N> struct vec;
template <typename T, int N> struct packed_vec;
template <typename T, int M> struct swz;

// .r .g .b .a: the same storage as .x .y .z .w.
template <typename T> struct comp {
  T v;
  MOE_FN T& operator()() { return v; }
  MOE_FN const T& operator()() const { return v; }
  MOE_FN operator T&() { return v; }
  MOE_FN operator const T&() const { return v; }
  MOE_FN comp& operator=(const T& x) { v = x; return *this; }
  MOE_FN T& operator++() { return ++v; }
  MOE_FN T& operator--() { return --v; }
  MOE_FN T operator++(int) { return v++; }
  MOE_FN T operator--(int) { return v--; }
#define MOE_COMP_OP(op) \
  template <typename S> MOE_FN comp& operator op(const S& s) { v op s; return *this; }
  MOE_COMP_OP(+=) MOE_COMP_OP(-=) MOE_COMP_OP(*=) MOE_COMP_OP(/=) MOE_COMP_OP(%=)
  MOE_COMP_OP(&=) MOE_COMP_OP(|=) MOE_COMP_OP(^=) MOE_COMP_OP(<<=) MOE_COMP_OP(>>=)
#undef MOE_COMP_OP
};
template <typename T> struct is_scalar<comp<T>> : is_scalar<T> {};
template <typename S> MOE_FN inline const S& val(const S& s) { return s; }
template <typename T> MOE_FN inline const T& val(const comp<T>& c) { return c.v; }

// How many components an argument of a vector constructor gives.
template <typename U, int M> mstd::integral_constant<int, M> width_of(const vec<U, M>*);
template <typename U, int M> mstd::integral_constant<int, M> width_of(const packed_vec<U, M>*);
mstd::integral_constant<int, 1> width_of(const void*);
template <typename A> using width = decltype(width_of(static_cast<const A*>(nullptr)));
template <typename S> struct is_vec : mstd::false_type {};
template <typename U, int M> struct is_vec<vec<U, M>> : mstd::true_type {};
template <typename S> struct is_packed : mstd::false_type {};
template <typename U, int M> struct is_packed<packed_vec<U, M>> : mstd::true_type {};

template <typename T, int M> MOE_FN inline vec<T, M> pick(const T* e, int a, int b, int c, int d) {
  const int ix[4] = {a, b, c, d};
  vec<T, M> r;
  for (int i = 0; i < M; ++i) r.__e[i] = e[ix[i]];
  return r;
}

#define MOE_SW(n, M, a, b, c, d)                                  \
  MOE_FN swz<T, M> n() { return swz<T, M>(__e, a, b, c, d); }     \
  MOE_FN vec<T, M> n() const { return pick<T, M>(__e, a, b, c, d); }
#define MOE_SR(n, M, a, b, c, d) \
  MOE_FN vec<T, M> n() const { return pick<T, M>(__e, a, b, c, d); }
#include "swizzles.inc"

// Storage and swizzles of each width; A is the alignment.
template <typename T, int N, int A> struct vbase;
template <typename T, int A> struct alignas(A) vbase<T, 2, A> {
  union {
    T __e[2];
    struct { T x, y; };
    struct { comp<T> r, g; };
  };
  MOE_SWIZZLES_2_XYZW
  MOE_SWIZZLES_2_RGBA
};
template <typename T, int A> struct alignas(A) vbase<T, 3, A> {
  union {
    T __e[3];
    struct { T x, y, z; };
    struct { comp<T> r, g, b; };
  };
  MOE_SWIZZLES_3_XYZW
  MOE_SWIZZLES_3_RGBA
};
template <typename T, int A> struct alignas(A) vbase<T, 4, A> {
  union {
    T __e[4];
    struct { T x, y, z, w; };
    struct { comp<T> r, g, b, a; };
  };
  MOE_SWIZZLES_4_XYZW
  MOE_SWIZZLES_4_RGBA
};
#undef MOE_SW
#undef MOE_SR

// Construction from scalars and smaller vectors, shared by vec and packed_vec.
template <typename T, int N, int A> struct vctor : vbase<T, N, A> {
  template <typename S> MOE_FN void put(int& i, const S& s, mstd::integral_constant<int, 1>) { this->__e[i++] = T(val(s)); }
  template <typename U, int M, int W> MOE_FN void put(int& i, const vec<U, M>& v, mstd::integral_constant<int, W>) {
    for (int j = 0; j < M; ++j) this->__e[i++] = T(v.__e[j]);
  }
  template <typename U, int M, int W> MOE_FN void put(int& i, const packed_vec<U, M>& v, mstd::integral_constant<int, W>) {
    for (int j = 0; j < M; ++j) this->__e[i++] = T(v.__e[j]);
  }
  template <typename... R> MOE_FN void fill(const R&... r) {
    int i = 0;
    (put(i, r, width<R>()), ...);
  }
  MOE_FN void splat(const T& s) {
    for (int i = 0; i < N; ++i) this->__e[i] = s;
  }
};
template <typename... R> MOE_HD constexpr int total_width() { return (0 + ... + width<R>::value); }

template <typename T, int N> struct vec : vctor<T, N, int(sizeof(T)) * (N == 3 ? 4 : N)> {
  typedef T value_type;
  typedef vec vec_type;
  vec() = default;
  // float4(0.0f); also the implicit scalar → vector conversion of MSL.
  template <typename S, en<is_scalar<S>::value> = 0>
  MOE_FN vec(const S& s) { this->splat(T(val(s))); }
  // float4(v2, 1.0f, 2.0f), float4(v3, w), float4(a, b, c, d), ...
  template <typename A0, typename A1, typename... R, en<total_width<A0, A1, R...>() == N> = 0>
  MOE_FN vec(const A0& a0, const A1& a1, const R&... r) { this->fill(a0, a1, r...); }
  // float4(int4), int3(float3): explicit, element by element.
  template <typename U, en<!mstd::is_same<U, T>::value> = 0>
  MOE_FN explicit vec(const vec<U, N>& o) {
    for (int i = 0; i < N; ++i) this->__e[i] = T(o.__e[i]);
  }
  template <typename U, en<!mstd::is_same<U, T>::value> = 0>
  MOE_FN explicit vec(const packed_vec<U, N>& o) {
    for (int i = 0; i < N; ++i) this->__e[i] = T(o.__e[i]);
  }
  MOE_FN T& operator[](int i) { return this->__e[i]; }
  MOE_FN const T& operator[](int i) const { return this->__e[i]; }
};

// packed_float3 and friends: storage without padding; converts to and from vec.
template <typename T, int N> struct packed_vec : vctor<T, N, int(sizeof(T))> {
  typedef T value_type;
  typedef vec<T, N> vec_type;
  packed_vec() = default;
  MOE_FN packed_vec(const vec<T, N>& v) {
    for (int i = 0; i < N; ++i) this->__e[i] = v.__e[i];
  }
  template <typename S, en<is_scalar<S>::value> = 0>
  MOE_FN packed_vec(const S& s) { this->splat(T(val(s))); }
  template <typename A0, typename A1, typename... R, en<total_width<A0, A1, R...>() == N> = 0>
  MOE_FN packed_vec(const A0& a0, const A1& a1, const R&... r) { this->fill(a0, a1, r...); }
  MOE_FN operator vec<T, N>() const {
    vec<T, N> v;
    for (int i = 0; i < N; ++i) v.__e[i] = this->__e[i];
    return v;
  }
  MOE_FN T& operator[](int i) { return this->__e[i]; }
  MOE_FN const T& operator[](int i) const { return this->__e[i]; }
};

// A writable swizzle (v.xy() = w, v.zyx() += 1): holds the selected values and
// writes them back when assigned as a temporary. A named copy
// (auto t = v.xy(); t = ...) is detached from v, as in MSL.
template <typename T, int M> struct swz : vec<T, M> {
  T* p_;
  unsigned char i_[4];
  MOE_FN swz(T* p, int a, int b, int c, int d)
      : vec<T, M>(pick<T, M>(p, a, b, c, d)), p_(p), i_{(unsigned char)a, (unsigned char)b, (unsigned char)c, (unsigned char)d} {}
  swz(const swz&) = default;
  MOE_FN swz& operator=(const vec<T, M>& o) & {
    vec<T, M>::operator=(o);
    return *this;
  }
  MOE_FN swz& operator=(const swz& o) & { return *this = static_cast<const vec<T, M>&>(o); }
  MOE_FN swz&& operator=(const vec<T, M>& o) && {
    const vec<T, M> t = o;
    for (int i = 0; i < M; ++i) p_[i_[i]] = t.__e[i];
    vec<T, M>::operator=(t);
    return static_cast<swz&&>(*this);
  }
  MOE_FN swz&& operator=(const swz& o) && { return static_cast<swz&&>(*this) = static_cast<const vec<T, M>&>(o); }
#define MOE_SWZ_OP(op)                                 \
  template <typename X> MOE_FN swz&& operator op##=(const X& x) && { \
    const vec<T, M> t = static_cast<const vec<T, M>&>(*this) op x; \
    return static_cast<swz&&>(*this) = t;              \
  }
  MOE_SWZ_OP(+) MOE_SWZ_OP(-) MOE_SWZ_OP(*) MOE_SWZ_OP(/) MOE_SWZ_OP(%)
  MOE_SWZ_OP(&) MOE_SWZ_OP(|) MOE_SWZ_OP(^) MOE_SWZ_OP(<<) MOE_SWZ_OP(>>)
#undef MOE_SWZ_OP
};

// ---------------------------------------------------------------- operators
// vec<E, N> r with r[i] = the expression, for i < N.
#define MOE_VEC_LOOP(E, ...)                                 \
  vec<E, N> r;                                               \
  for (int i = 0; i < N; ++i) r.__e[i] = __VA_ARGS__;        \
  return r
#define MOE_VEC_BINOP(op)                                                                                       \
  template <typename T, int N> MOE_FN inline vec<T, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {           \
    MOE_VEC_LOOP(T, T(a.__e[i] op b.__e[i]));                                                           \
  }                                                                                                             \
  template <typename T, int N, typename S, en<is_scalar<S>::value> = 0>                                         \
  MOE_FN inline vec<T, N> operator op(const vec<T, N>& a, const S& s) {                                                \
    const T b = T(val(s));                                                                                      \
    MOE_VEC_LOOP(T, T(a.__e[i] op b));                                                                  \
  }                                                                                                             \
  template <typename T, int N, typename S, en<is_scalar<S>::value> = 0>                                         \
  MOE_FN inline vec<T, N> operator op(const S& s, const vec<T, N>& b) {                                                \
    const T a = T(val(s));                                                                                      \
    MOE_VEC_LOOP(T, T(a op b.__e[i]));                                                                  \
  }                                                                                                             \
  template <typename T, int N, typename X> MOE_FN inline vec<T, N>& operator op##=(vec<T, N>& a, const X& b) {         \
    return a = a op b;                                                                                          \
  }                                                                                                             \
  template <typename T, int N, typename X>                                                                      \
  MOE_FN inline auto operator op(const packed_vec<T, N>& a, const X& b) -> decltype(vec<T, N>(a) op b) {               \
    return vec<T, N>(a) op b;                                                                                   \
  }                                                                                                             \
  template <typename X, typename T, int N, en<!is_packed<X>::value> = 0>                                        \
  MOE_FN inline auto operator op(const X& a, const packed_vec<T, N>& b) -> decltype(a op vec<T, N>(b)) {               \
    return a op vec<T, N>(b);                                                                                   \
  }                                                                                                             \
  template <typename T, int N, typename X> MOE_FN inline packed_vec<T, N>& operator op##=(packed_vec<T, N>& a, const X& b) { \
    return a = vec<T, N>(a) op b;                                                                               \
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
#undef MOE_VEC_BINOP

#define MOE_VEC_CMP(op)                                                                                         \
  template <typename T, int N> MOE_FN inline vec<bool, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {        \
    MOE_VEC_LOOP(bool, bool(a.__e[i] op b.__e[i]));                                                     \
  }                                                                                                             \
  template <typename T, int N, typename S, en<is_scalar<S>::value> = 0>                                         \
  MOE_FN inline vec<bool, N> operator op(const vec<T, N>& a, const S& s) {                                             \
    const T b = T(val(s));                                                                                      \
    MOE_VEC_LOOP(bool, bool(a.__e[i] op b));                                                            \
  }                                                                                                             \
  template <typename T, int N, typename S, en<is_scalar<S>::value> = 0>                                         \
  MOE_FN inline vec<bool, N> operator op(const S& s, const vec<T, N>& b) {                                             \
    const T a = T(val(s));                                                                                      \
    MOE_VEC_LOOP(bool, bool(a op b.__e[i]));                                                            \
  }
MOE_VEC_CMP(==)
MOE_VEC_CMP(!=)
MOE_VEC_CMP(<)
MOE_VEC_CMP(>)
MOE_VEC_CMP(<=)
MOE_VEC_CMP(>=)
#undef MOE_VEC_CMP

template <int N> MOE_FN inline vec<bool, N> operator&&(const vec<bool, N>& a, const vec<bool, N>& b) { MOE_VEC_LOOP(bool, a.__e[i] && b.__e[i]); }
template <int N> MOE_FN inline vec<bool, N> operator||(const vec<bool, N>& a, const vec<bool, N>& b) { MOE_VEC_LOOP(bool, a.__e[i] || b.__e[i]); }
template <typename T, int N> MOE_FN inline vec<bool, N> operator!(const vec<T, N>& a) { MOE_VEC_LOOP(bool, !a.__e[i]); }
template <typename T, int N> MOE_FN inline vec<T, N> operator-(const vec<T, N>& a) { MOE_VEC_LOOP(T, T(-a.__e[i])); }
template <typename T, int N> MOE_FN inline vec<T, N> operator+(const vec<T, N>& a) { return a; }
template <typename T, int N> MOE_FN inline vec<T, N> operator~(const vec<T, N>& a) { MOE_VEC_LOOP(T, T(~a.__e[i])); }
template <typename T, int N> MOE_FN inline vec<T, N> operator-(const packed_vec<T, N>& a) { return -vec<T, N>(a); }
template <typename T, int N> MOE_FN inline vec<T, N>& operator++(vec<T, N>& a) { return a += T(1); }
template <typename T, int N> MOE_FN inline vec<T, N>& operator--(vec<T, N>& a) { return a -= T(1); }
template <typename T, int N> MOE_FN inline vec<T, N> operator++(vec<T, N>& a, int) { vec<T, N> o = a; a += T(1); return o; }
template <typename T, int N> MOE_FN inline vec<T, N> operator--(vec<T, N>& a, int) { vec<T, N> o = a; a -= T(1); return o; }
}  // namespace moe

// ---------------------------------------------------------------- type names
// On CUDA, which has float4 and friends of its own, the names are moe_float4
// (the emitter renames them in the user's code), also inside namespace metal.
#ifdef MOE_CUDA
#define MOE_VEC_NAME(n) moe_##n
#else
#define MOE_VEC_NAME(n) n
#endif
#define MOE_VEC_TYPES(T, name)                                 \
  typedef moe::vec<T, 2> MOE_VEC_NAME(name##2);               \
  typedef moe::vec<T, 3> MOE_VEC_NAME(name##3);               \
  typedef moe::vec<T, 4> MOE_VEC_NAME(name##4);               \
  typedef moe::packed_vec<T, 2> MOE_VEC_NAME(packed_##name##2); \
  typedef moe::packed_vec<T, 3> MOE_VEC_NAME(packed_##name##3); \
  typedef moe::packed_vec<T, 4> MOE_VEC_NAME(packed_##name##4);
#define MOE_ALL_VEC_TYPES   \
  MOE_VEC_TYPES(float, float) \
  MOE_VEC_TYPES(half, half)   \
  MOE_VEC_TYPES(bfloat, bfloat) \
  MOE_VEC_TYPES(int, int)     \
  MOE_VEC_TYPES(uint, uint)   \
  MOE_VEC_TYPES(short, short) \
  MOE_VEC_TYPES(ushort, ushort) \
  MOE_VEC_TYPES(char, char)   \
  MOE_VEC_TYPES(uchar, uchar) \
  MOE_VEC_TYPES(bool, bool)   \
  MOE_VEC_TYPES(long, long)   \
  MOE_VEC_TYPES(ulong, ulong)
MOE_ALL_VEC_TYPES
#ifdef MOE_CUDA
namespace metal {
MOE_ALL_VEC_TYPES
}  // namespace metal
#endif
#undef MOE_ALL_VEC_TYPES
#undef MOE_VEC_TYPES
#undef MOE_VEC_NAME

namespace metal {
using moe::packed_vec;
using moe::vec;
}  // namespace metal

#endif  // MOE_METAL_VEC_H
