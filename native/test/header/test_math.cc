// Header tests: metal:: math with `using namespace metal;` — the overload cases
// kernels write (max(x, 0.0f), min(i, n - 1u), abs(int), fmax(m, x[e]), ...),
// float/half/bfloat results, integer and bit functions, as_type, numeric_limits.
#include "msl_cpu.h"
#include "fake_rt.h"

using namespace metal;

// Result types: no promotion to double, integers stay integers.
CHECK_TYPE(float, max(1.0f, 0.0f));
CHECK_TYPE(float, max(1.0f, 0));
CHECK_TYPE(float, max(1.0f, 0.5));  // unsuffixed literals are float in MSL
CHECK_TYPE(uint, max(1u, 2u));
CHECK_TYPE(uint, min(1u, 2));
CHECK_TYPE(int, abs(-3));
CHECK_TYPE(short, abs(short(-3)));
CHECK_TYPE(float, abs(-3.0f));
CHECK_TYPE(float, exp(1.0f));
CHECK_TYPE(float, exp(1.0));
CHECK_TYPE(half, exp(half(1.0f)));
CHECK_TYPE(bfloat, tanh(bfloat(1.0f)));
CHECK_TYPE(half, max(half(1.0f), half(2.0f)));
CHECK_TYPE(float, max(half(1.0f), 2.0f));
CHECK_TYPE(float, clamp(1.0f, -15.0f, 15.0f));
CHECK_TYPE(int, clamp(5, 0, 3));
CHECK_TYPE(float, pow(2.0f, 3));
CHECK_TYPE(float4, exp(float4(0.0f)));
CHECK_TYPE(half4, exp(half4(0.0f)));
CHECK_TYPE(float4, max(float4(0.0f), 1.0f));
CHECK_TYPE(float4, clamp(float4(0.0f), 0.0f, 1.0f));
CHECK_TYPE(float4, mix(float4(0.0f), float4(1.0f), 0.25f));
CHECK_TYPE(bool4, isnan(float4(0.0f)));
CHECK_TYPE(uint2, abs_diff(int2(0), int2(1)));
CHECK_TYPE(float, dot(float4(), float4()));
CHECK_TYPE(half, length(half2()));
CHECK_TYPE(float, metal::precise::exp(1.0f));
CHECK_TYPE(float, metal::fast::max(1.0f, 2.0f));

static void test_overloads() {
  float x = -2.5f, y = 3.0f;
  uint a = 7u, b = 9u, n = 4u;
  int i = -5;
  float xs[4] = {1.0f, 8.0f, -1.0f, 2.0f};
  CHECK_EQ(max(x, y), 3.0f);
  CHECK_EQ(max(a, b), 9u);
  CHECK_EQ(min(a, b), 7u);
  CHECK_EQ(abs(i), 5);
  CHECK_EQ(abs(x), 2.5f);
  CHECK_EQ(max(x, 0.0f), 0.0f);
  CHECK_EQ(min(a, n - 1u), 3u);
  CHECK_EQ(min(uint(2), n - 1u), 2u);
  float m = -INFINITY;
  for (int e = 0; e < 4; ++e) m = fmax(m, xs[e]);
  CHECK_EQ(m, 8.0f);
  CHECK_EQ(clamp(x * 10.0f, -15.0f, 15.0f), -15.0f);
  CHECK_EQ(clamp(i, 0, 3), 0);
  CHECK_EQ(clamp(a, 0u, 5u), 5u);
  CHECK_NEAR(exp(1.0f), 2.718281828, 1e-6);
  CHECK_NEAR(exp(x), 0.0820849986, 1e-7);
  CHECK_EQ(max(1, 2), 2);
  CHECK_EQ(max(x, 1), 1.0f);
  CHECK_EQ(fmax(NAN, 1.0f), 1.0f);  // NaN loses, as in Metal
  CHECK_EQ(max(NAN, 1.0f), 1.0f);
  CHECK_EQ(min(a, 3), 3u);
  CHECK_EQ(max(short(-3), short(2)), 2);
  half hx = half(1.5f);
  CHECK_EQ(float(max(hx, half(0.5f))), 1.5f);
  CHECK_EQ(float(exp(half(0.0f))), 1.0f);
  bfloat bx = 2.0f;
  CHECK_EQ(float(sqrt(bx)), float(bfloat(1.41421356f)));
  CHECK_EQ(float(max(bx, 3.0f)), 3.0f);
  CHECK_EQ(sign(-3.0f), -1.0f);
  CHECK_EQ(sign(0.0f), 0.0f);
  CHECK_EQ(sign(NAN), 0.0f);
  CHECK_EQ(step(1.0f, 0.5f), 0.0f);
  CHECK_EQ(step(1.0f, 1.0f), 1.0f);
  CHECK_EQ(smoothstep(0.0f, 1.0f, 0.5f), 0.5f);
  CHECK_EQ(saturate(1.5f), 1.0f);
  CHECK_EQ(mix(1.0f, 3.0f, 0.5f), 2.0f);
  CHECK_EQ(fma(2.0f, 3.0f, 1.0f), 7.0f);
  CHECK_EQ(mad(2.0f, 3.0f, 1.0f), 7.0f);
  CHECK_EQ(fract(-0.25f), 0.75f);
  CHECK_EQ(fmod(7.0f, 3.0f), 1.0f);
  CHECK_EQ(copysign(2.0f, -0.0f), -2.0f);
  CHECK_EQ(rsqrt(4.0f), 0.5f);
  CHECK_EQ(exp2(3.0f), 8.0f);
  CHECK_NEAR(exp10(2.0f), 100.0f, 1e-4);
  CHECK_EQ(log2(8.0f), 3.0f);
  CHECK_NEAR(log10(1000.0f), 3.0f, 1e-6);
  CHECK_EQ(pow(2.0f, 10.0f), 1024.0f);
  CHECK_EQ(powr(2.0f, 0.5f), pow(2.0f, 0.5f));
  CHECK_NEAR(tanh(0.5f), 0.46211715726, 1e-7);
  CHECK_NEAR(atan2(1.0f, 1.0f), M_PI_4_F, 1e-7);
  CHECK_NEAR(sinh(1.0f) + cosh(1.0f), M_E_F, 1e-6);
  CHECK_NEAR(asin(1.0f), M_PI_2_F, 1e-7);
  CHECK_NEAR(acos(0.0f) + atan(1.0f), M_PI_2_F + M_PI_4_F, 1e-6);
  CHECK_NEAR(sin(M_PI_F) + cos(M_PI_F) + tan(0.0f), -1.0f, 1e-6);
  CHECK_EQ(floor(-1.5f) + ceil(-1.5f) + round(2.5f) + rint(2.5f) + trunc(-1.7f), -2 - 1 + 3 + 2 - 1);
  CHECK_EQ(min3(3, 1, 2), 1);
  CHECK_EQ(max3(3.0f, 1.0f, 2.0f), 3.0f);
  CHECK_EQ(median3(3.0f, 1.0f, 2.0f), 2.0f);
  CHECK(isnan(NAN) && isinf(INFINITY) && isfinite(1.0f) && !isfinite(NAN) && signbit(-0.0f) && !signbit(0.0f));
  float c = 0.0f;
  CHECK_EQ(sincos(0.0f, c), 0.0f);
  CHECK_EQ(c, 1.0f);
  int ex = 0;
  CHECK_EQ(frexp(8.0f, ex), 0.5f);
  CHECK_EQ(ex, 4);
  CHECK_EQ(ldexp(0.5f, 4), 8.0f);
  float ip = 0.0f;
  CHECK_EQ(modf(2.25f, ip), 0.25f);
  CHECK_EQ(ip, 2.0f);
  CHECK(!(FLT_MAX < MAXFLOAT) && FLT_MIN > 0.0f && FLT_EPSILON == 0x1p-23f && HUGE_VALF == INFINITY);
  CHECK_NEAR(M_LN2_F * M_LOG2E_F + M_SQRT2_F * M_SQRT1_2_F + M_1_PI_F * M_PI_F, 3.0f, 1e-6);
}

static void test_vector_math() {
  float4 v(-1.0f, 0.5f, 2.0f, -3.0f);
  CHECK(all(abs(v) == float4(1.0f, 0.5f, 2.0f, 3.0f)));
  CHECK(all(max(v, 0.0f) == float4(0.0f, 0.5f, 2.0f, 0.0f)));
  CHECK(all(min(1.0f, v) == float4(-1.0f, 0.5f, 1.0f, -3.0f)));
  CHECK(all(max(v, float4(1.0f)) == float4(1.0f, 1.0f, 2.0f, 1.0f)));
  CHECK(all(clamp(v, -1.0f, 1.0f) == float4(-1.0f, 0.5f, 1.0f, -1.0f)));
  CHECK(all(clamp(v, float4(0.0f), float4(1.0f)) == float4(0.0f, 0.5f, 1.0f, 0.0f)));
  CHECK(all(saturate(v) == float4(0.0f, 0.5f, 1.0f, 0.0f)));
  CHECK(all(mix(float2(0.0f), float2(2.0f, 4.0f), 0.5f) == float2(1.0f, 2.0f)));
  CHECK(all(mix(float2(0.0f), float2(2.0f, 4.0f), float2(0.5f, 0.25f)) == float2(1.0f)));
  CHECK(all(step(0.0f, v) == float4(0.0f, 1.0f, 1.0f, 0.0f)));
  CHECK(all(smoothstep(0.0f, 1.0f, float2(0.5f, 2.0f)) == float2(0.5f, 1.0f)));
  CHECK(all(floor(v) == float4(-1.0f, 0.0f, 2.0f, -3.0f)));
  CHECK(all(exp(float2(0.0f)) == float2(1.0f)));
  CHECK(all(fma(float2(2.0f), float2(3.0f), float2(1.0f)) == float2(7.0f)));
  CHECK(all(pow(float2(2.0f), 2.0f) == float2(4.0f)));
  CHECK(all(sign(v) == float4(-1.0f, 1.0f, 1.0f, -1.0f)));
  CHECK(all(isnan(float2(NAN, 1.0f)) == bool2(true, false)));
  CHECK(all(select(float2(1.0f), float2(2.0f), bool2(false, true)) == float2(1.0f, 2.0f)));
  CHECK(all(select(float2(1.0f), 2.0f, true) == float2(2.0f)));
  CHECK_EQ(select(1, 2, false), 1);
  CHECK_EQ(dot(float3(1.0f, 2.0f, 3.0f), float3(4.0f, 5.0f, 6.0f)), 32.0f);
  CHECK(all(cross(float3(1, 0, 0), float3(0, 1, 0)) == float3(0, 0, 1)));
  CHECK_EQ(length(float2(3.0f, 4.0f)), 5.0f);
  CHECK_EQ(length_squared(float2(3.0f, 4.0f)), 25.0f);
  CHECK_EQ(distance(float2(0.0f), float2(3.0f, 4.0f)), 5.0f);
  CHECK(all(normalize(float2(3.0f, 4.0f)) == float2(0.6f, 0.8f)));
  half4 h = half4(1.0f, 4.0f, 9.0f, 16.0f);
  CHECK(all(sqrt(h) == half4(1.0f, 2.0f, 3.0f, 4.0f)));
  CHECK_EQ(float(dot(h, half4(1.0f))), 30.0f);
  int3 i3(-4, 5, -6);
  CHECK(all(abs(i3) == int3(4, 5, 6)));
  CHECK(all(max(i3, 0) == int3(0, 5, 0)));
  CHECK(all(clamp(i3, -5, 5) == int3(-4, 5, -5)));
  uint4 u(1u, 2u, 3u, 4u);
  CHECK(all(min(u, 2u) == uint4(1u, 2u, 2u, 2u)));
  CHECK(all(abs_diff(int2(-3, 5), int2(4, 1)) == uint2(7u, 4u)));
}

static void test_integer() {
  CHECK_EQ(popcount(0xf0f0u), 8u);
  CHECK_EQ(popcount(ushort(0xffff)), 16);
  CHECK_EQ(clz(1u), 31u);
  CHECK_EQ(clz(0u), 32u);
  CHECK_EQ(clz(ushort(1)), 15);
  CHECK_EQ(clz(ulong(1)), 63u);
  CHECK_EQ(ctz(8u), 3u);
  CHECK_EQ(ctz(0u), 32u);
  CHECK_EQ(reverse_bits(1u), 0x80000000u);
  CHECK_EQ(reverse_bits(uchar(1)), 0x80);
  CHECK_EQ(rotate(0x80000001u, 1u), 3u);
  CHECK_EQ(rotate(1u, 33u), 2u);
  CHECK_EQ(mulhi(0x80000000u, 4u), 2u);
  CHECK_EQ(mulhi(-2, 0x40000000), -1);
  CHECK_EQ(abs_diff(-2, 3), 5u);
  CHECK_EQ(abs_diff(0x7fffffff, -0x7fffffff), 0xfffffffeu);
  CHECK_EQ(extract_bits(0xabcdu, 4u, 8u), 0xbcu);
  CHECK_EQ(extract_bits(int(0xf0), 4u, 4u), -1);  // signed: sign-extended
  CHECK_EQ(extract_bits(0xffffffffu, 0u, 32u), 0xffffffffu);
  CHECK_EQ(insert_bits(0xffffu, 0u, 4u, 8u), 0xf00fu);
  CHECK_EQ(insert_bits(0u, 0xffu, 28u, 8u), 0xf0000000u);
  CHECK(all(popcount(uint2(3u, 7u)) == uint2(2u, 3u)));
  CHECK(all(clz(uint2(1u, 0u)) == uint2(31u, 32u)));
  CHECK(all(extract_bits(uint2(0xabu, 0xcdu), 4u, 4u) == uint2(0xau, 0xcu)));
}

static void test_as_type_limits() {
  CHECK_EQ(as_type<uint>(1.0f), 0x3f800000u);
  CHECK_EQ(as_type<float>(0x40000000u), 2.0f);
  CHECK_EQ(as_type<ushort>(half(1.0f)), 0x3c00);
  CHECK_EQ(as_type<ushort>(bfloat(1.0f)), 0x3f80);
  CHECK_EQ(float(as_type<bfloat>(ushort(0x4000))), 2.0f);
  const half2 h2 = as_type<half2>(0x3c003c00u);
  CHECK(all(h2 == half2(1.0f)));
  CHECK_EQ(as_type<uint>(half2(1.0f)), 0x3c003c00u);
  CHECK(all(as_type<uint4>(float4(1.0f)) == uint4(0x3f800000u)));
  float4 v(1.0f, 2.0f, 3.0f, 4.0f);
  CHECK_EQ(as_type<ulong>(v.xy()), 0x400000003f800000ul);
  CHECK_EQ(as_type<uint>(v.r), 0x3f800000u);
  CHECK_EQ(numeric_limits<float>::infinity(), INFINITY);
  CHECK(isnan(numeric_limits<float>::quiet_NaN()));
  CHECK_EQ(numeric_limits<float>::max(), FLT_MAX);
  CHECK_EQ(numeric_limits<float>::lowest(), -FLT_MAX);
  CHECK_EQ(numeric_limits<float>::min(), FLT_MIN);
  CHECK_EQ(numeric_limits<float>::epsilon(), FLT_EPSILON);
  CHECK_EQ(float(numeric_limits<half>::max()), 65504.0f);
  CHECK_EQ(float(numeric_limits<half>::infinity()), INFINITY);
  CHECK_EQ(float(numeric_limits<bfloat>::max()), 0x1.fep+127f);
  CHECK_EQ(numeric_limits<int>::max(), 2147483647);
  CHECK_EQ(numeric_limits<int>::min(), -2147483647.0 - 1.0);
  CHECK_EQ(numeric_limits<uint>::max(), 4294967295u);
  CHECK_EQ(numeric_limits<short>::min(), -32768);
  CHECK_EQ(numeric_limits<ushort>::max(), 65535);
  CHECK_EQ(numeric_limits<uchar>::max(), 255);
  CHECK(numeric_limits<int>::is_signed && !numeric_limits<uint>::is_signed && numeric_limits<float>::is_specialized);
  static_assert(numeric_limits<uint>::max() == 0xffffffffu, "constexpr");
}

int main() {
  fake::bind();
  test_overloads();
  test_vector_math();
  test_integer();
  test_as_type_limits();
  return report("test_math");
}
