// Header tests without `using namespace metal;`: the MSL types are global,
// functions are reached as metal::f, and the user's own global functions with
// metal's names (max, sign, exp, clamp, dot, ...) do not clash with the header.
#include "msl_cpu.h"

// User helpers with metal's names, as a shader without the using-directive may have.
inline float max(float a, float b) { return a > b ? a : b; }
inline int sign(int x) { return x < 0 ? -1 : x > 0; }
inline float exp(float x) { return x + 1000.0f; }  // deliberately not e^x
inline float dot(float4 a, float4 b) { return a.x * b.x; }
inline uint clamp(uint x) { return x > 7u ? 7u : x; }

namespace user {
inline float4 scale(float4 v, float s) { return v * s; }  // operators reach moe:: by ADL
inline float relu(float x) { return metal::max(x, 0.0f); }
}  // namespace user

#include "fake_rt.h"

static void test_qualified() {
  float x = -2.5f, y = 3.0f;
  uint a = 7u, b = 9u, n = 4u;
  int i = -5;
  float xs[3] = {1.0f, 8.0f, -1.0f};
  CHECK_EQ(metal::max(x, y), 3.0f);
  CHECK_EQ(metal::max(a, b), 9u);
  CHECK_EQ(metal::abs(i), 5);
  CHECK_EQ(metal::max(x, 0.0f), 0.0f);
  CHECK_EQ(metal::min(a, n - 1u), 3u);
  float m = -INFINITY;
  for (int e = 0; e < 3; ++e) m = metal::fmax(m, xs[e]);
  CHECK_EQ(m, 8.0f);
  CHECK_EQ(metal::clamp(x * 10.0f, -15.0f, 15.0f), -15.0f);
  CHECK_NEAR(metal::exp(1.0f), 2.718281828, 1e-6);
  CHECK_NEAR(metal::precise::tanh(1.0f), 0.761594156, 1e-7);
  CHECK_NEAR(metal::fast::exp(0.0f), 1.0f, 0);
  float4 v = float4(1.0f, 2.0f, 3.0f, 4.0f);
  CHECK_EQ(metal::dot(v, v), 30.0f);
  CHECK(metal::all(metal::max(v, 2.5f) == float4(2.5f, 2.5f, 3.0f, 4.0f)));
  CHECK_EQ(metal::as_type<uint>(1.0f), 0x3f800000u);
  CHECK_EQ(metal::numeric_limits<float>::infinity(), INFINITY);
  metal::vec<int, 2> iv(1, 2);
  CHECK(metal::all(iv.yx() == int2(2, 1)));
  bfloat bf = 1.0f;
  half h = 2.0f;
  packed_float3 p = float3(1.0f);
  CHECK_EQ(float(bf) + float(h) + p.x, 4.0f);
  metal::mem_flags f = metal::mem_flags::mem_threadgroup | metal::mem_flags::mem_device;
  metal::threadgroup_barrier(f);
  CHECK_EQ(fake::tg_barriers, 1u);
}

static void test_user_functions() {
  // Unqualified calls find the user's functions, not metal's.
  CHECK_EQ(max(1.0f, 2.0f), 2.0f);
  CHECK_EQ(sign(-4), -1);
  CHECK_EQ(exp(1.0f), 1001.0f);
  CHECK_EQ(dot(float4(2.0f), float4(3.0f)), 6.0f);
  CHECK_EQ(clamp(9u), 7u);
  CHECK(metal::all(user::scale(float4(1.0f), 2.0f) == float4(2.0f)));
  CHECK_EQ(user::relu(-1.0f), 0.0f);
}

int main() {
  fake::bind();
  test_qualified();
  test_user_functions();
  return report("test_nons");
}
