// Header tests: scalar and vector types, layout, constructors, conversions,
// swizzles (read and write), operators, bfloat rounding, builtins, tg_static.
#include "msl_cpu.h"
#include "fake_rt.h"

using namespace metal;

// Metal's layout: 3-vectors take the room of 4; packed vectors do not.
static_assert(sizeof(float2) == 8 && alignof(float2) == 8, "float2");
static_assert(sizeof(float3) == 16 && alignof(float3) == 16, "float3");
static_assert(sizeof(float4) == 16 && alignof(float4) == 16, "float4");
static_assert(sizeof(half3) == 8 && sizeof(half4) == 8 && sizeof(bfloat4) == 8, "half/bfloat");
static_assert(sizeof(uchar3) == 4 && sizeof(bool2) == 2 && sizeof(short3) == 8, "small");
static_assert(sizeof(packed_float3) == 12 && alignof(packed_float3) == 4, "packed_float3");
static_assert(sizeof(packed_half4) == 8 && alignof(packed_half4) == 2, "packed_half4");
static_assert(sizeof(bfloat) == 2 && sizeof(half) == 2 && sizeof(uint) == 4 && sizeof(ulong) == 8, "scalars");
static_assert(std::is_trivial<float4>::value && std::is_trivial<bfloat>::value && std::is_trivial<packed_float3>::value, "trivial");
static_assert(std::is_same<metal::vec<float, 4>, float4>::value, "metal::vec");
// Result types of mixed expressions.
CHECK_TYPE(float4, float4() * 2.0f);
CHECK_TYPE(float4, 2.0f * float4());
CHECK_TYPE(float4, float4() + float4());
CHECK_TYPE(uint4, uint4() >> 2u);
CHECK_TYPE(bool3, float3() < 1.0f);
CHECK_TYPE(bool3, !bool3());
CHECK_TYPE(float2, static_cast<const float4&>(float4()).xy());
static_assert(std::is_base_of<float2, decltype(float4().xy())>::value, "a writable swizzle is a float2");
CHECK_TYPE(float, bfloat() * 2.0f);
CHECK_TYPE(float, 2.0 - bfloat());
CHECK_TYPE(float, bfloat() + half());
CHECK_TYPE(bfloat, bfloat() * bfloat());
CHECK_TYPE(bfloat, bfloat() / 2);
CHECK_TYPE(bfloat, 1u + bfloat());
CHECK_TYPE(bfloat, -bfloat());
CHECK_TYPE(bool, bfloat() < 1.0f);
CHECK_TYPE(half, half() * half());

struct Params {  // a struct as kernels bind them ([[buffer(n)]] constant Params&)
  float3 a;
  float b;
  packed_float3 c;
  float d;
};
static_assert(sizeof(Params) == 48 && __builtin_offsetof(Params, b) == 16 && __builtin_offsetof(Params, c) == 20 &&
                  __builtin_offsetof(Params, d) == 32, "Params layout");

static float bf(float x) { return float(bfloat(x)); }
static uint16_t bf_bits(float x) { return as_type<ushort>(bfloat(x)); }

static void test_bfloat() {
  CHECK_EQ(bf(1.00390625f), 1.0f);    // halfway, even below
  CHECK_EQ(bf(1.01171875f), 1.015625f);  // halfway, even above
  CHECK_EQ(bf(1.0f + 0x1p-8f + 0x1p-20f), 1.0078125f);  // above halfway
  CHECK(isnan(bf(NAN)));
  CHECK(isnan(bf(-NAN)));
  CHECK_EQ(bf(INFINITY), INFINITY);
  CHECK_EQ(bf(-INFINITY), -INFINITY);
  CHECK_EQ(bf(FLT_MAX), INFINITY);
  CHECK_EQ(bf_bits(1.0f), 0x3f80);
  CHECK_EQ(bf_bits(-2.0f), 0xc000);
  CHECK_EQ(bf(0x1.fep+127f), 0x1.fep+127f);
  // Implicit conversions as in MSL.
  bfloat b = 3.0f;
  float y = b;
  bfloat out[2];
  out[0] = y * 0.5f;
  out[1] = 7;
  CHECK_EQ(float(out[0]), 1.5f);
  CHECK_EQ(float(out[1]), 7.0f);
  CHECK_EQ(b * 2.0f, 6.0f);
  b += 1.0f;
  CHECK_EQ(float(b), 4.0f);
  const bfloat third = 1.0f / 3.0f;
  CHECK_EQ(float(third * third), float(bfloat(float(third) * float(third))));  // rounded to bfloat
  CHECK_EQ(float(-third), -float(third));
  CHECK(third < 0.5f && third > bfloat(0.25f) && third == third);
  half h = 0.1f;
  bfloat bh = h;
  CHECK_NEAR(float(bh), 0.1f, 0.001);
  bfloat4 v4 = bfloat4(float4(1.0f, 2.0f, 3.0f, 1.00390625f));
  CHECK_EQ(float(v4.w), 1.0f);
  float4 back = float4(v4);
  CHECK_EQ(back.z, 3.0f);
  bfloat4 sum = v4 + v4;
  CHECK_EQ(float(sum.y), 4.0f);
  // half: round to nearest even.
  CHECK_EQ(float(half(1.0f + 0x1p-11f)), 1.0f);
  CHECK_EQ(float(half(1.0f + 3 * 0x1p-11f)), 1.0f + 0x1p-9f);
  CHECK_EQ(float(half(70000.0f)), INFINITY);
  CHECK_EQ(float(HALF_MAX), 65504.0f);
}

static void test_vectors() {
  float4 z = float4(0.0f);
  CHECK(all(z == 0.0f));
  float4 v(1.0f, 2.0f, 3.0f, 4.0f);
  float2 v2(5.0f, 6.0f);
  float3 v3(7.0f, 8.0f, 9.0f);
  float4 a(v2, 1.0f, 2.0f), b(v3, 10.0f), c(v2, v2), d(1.0f, v2, 2.0f), e(0.5f, v3), f(1, 2, 3, 4u);
  CHECK(all(a == float4(5, 6, 1, 2)) && all(b == float4(7, 8, 9, 10)) && all(c == float4(5, 6, 5, 6)));
  CHECK(all(d == float4(1, 5, 6, 2)) && all(e == float4(0.5f, 7, 8, 9)) && all(f == v));
  float4 g = {1.0f, 2.0f, 3.0f, 4.0f};
  CHECK(all(g == v));
  float4 h = 2.0f;  // scalar → vector
  CHECK_EQ(h.w, 2.0f);
  float3 s3(v.xy(), 3.0f);
  CHECK(all(s3 == float3(1, 2, 3)));
  float4 p4(packed_float3(1.0f, 2.0f, 3.0f), 4.0f);
  CHECK(all(p4 == v));
  // Conversions.
  int4 k = int4(float4(1.9f, -1.9f, 2.5f, -0.5f));
  CHECK(all(k == int4(1, -1, 2, 0)));
  int3 k3 = int3(float3(3.7f));
  CHECK_EQ(k3.z, 3);
  float4 fk = float4(int4(1, 2, 3, 4));
  CHECK(all(fk == v));
  half4 hv = half4(v);
  CHECK_EQ(float(hv.w), 4.0f);
  uint2 u2 = uint2(int2(-1, 2));
  CHECK_EQ(u2.x, 0xffffffffu);
  // Indexing and components.
  CHECK_EQ(v[2], 3.0f);
  v[3] = 5.0f;
  CHECK_EQ(v.w, 5.0f);
  CHECK_EQ(v.r(), 1.0f);
  v.g() = 7.0f;  // .g as the emitter writes it
  CHECK_EQ(v.y, 7.0f);
  v.b = 8.0f;  // .b as a member
  CHECK_EQ(v.z, 8.0f);
  float ra = v.a;
  CHECK_EQ(ra, 5.0f);
  v.r += 1.0f;
  CHECK_EQ(v.x, 2.0f);
  CHECK_EQ(max(v.r, 1.0f), 2.0f);
  CHECK_EQ(v.r * 2.0f, 4.0f);
  // Operators.
  int4 i4(7, -8, 9, 10);
  CHECK(all(i4 % 3 == int4(1, -2, 0, 1)));
  CHECK(all((i4 & 6) == int4(6, 0, 0, 2)));
  CHECK(all((i4 | int4(1)) == int4(7, -7, 9, 11)));
  CHECK(all((i4 ^ 1) == int4(6, -7, 8, 11)));
  CHECK(all((uint4(1u) << uint4(0u, 1u, 2u, 3u)) == uint4(1u, 2u, 4u, 8u)));
  CHECK(all((uint4(16u) >> 2u) == uint4(4u)));
  CHECK(all(~uint2(0u) == uint2(0xffffffffu)));
  CHECK(all(-float2(1.0f, -2.0f) == float2(-1.0f, 2.0f)));
  CHECK(all((!bool2(true, false)) == bool2(false, true)));
  CHECK(all((10.0f - float2(1.0f, 2.0f)) == float2(9.0f, 8.0f)));
  CHECK(all((float2(8.0f) / float2(2.0f, 4.0f)) == float2(4.0f, 2.0f)));
  CHECK(all((1u + uint2(1u, 2u)) == uint2(2u, 3u)));
  float4 acc = 0.0f;
  acc += v;
  acc *= 2.0f;
  acc -= float4(1.0f);
  acc /= 2.0f;
  CHECK_EQ(acc.x, 1.5f);
  int2 inc(1, 2);
  ++inc;
  inc++;
  CHECK(all(inc == int2(3, 4)));
  bool4 cmp = float4(1, 2, 3, 4) >= float4(2.0f);
  CHECK(!cmp.x && cmp.y && cmp.w);
  CHECK(any(cmp) && !all(cmp));
  CHECK(all((float2(1, 2) != 1.0f) == bool2(false, true)));
  CHECK(all((bool2(true, false) && bool2(true, true)) == bool2(true, false)));
  ushort2 us(65535, 1);
  us += ushort2(1);
  CHECK(all(us == ushort2(0, 2)));
  // Packed vectors.
  packed_float3 pk = float3(1.0f, 2.0f, 3.0f);
  float3 un = pk;
  CHECK(all(un == float3(1, 2, 3)));
  float3 sc = pk * 2.0f + float3(pk);
  CHECK(all(sc == float3(3, 6, 9)));
  pk += 1.0f;
  CHECK_EQ(pk[2], 4.0f);
  CHECK_EQ(pk.x, 2.0f);
  CHECK(all(pk.xy() == float2(2, 3)));
}

static void test_swizzles() {
  float4 v(1.0f, 2.0f, 3.0f, 4.0f);
  CHECK(all(v.wzyx() == float4(4, 3, 2, 1)));
  CHECK(all(v.xxyy() == float4(1, 1, 2, 2)));
  CHECK(all(v.rgb() == float3(1, 2, 3)));
  CHECK(all(v.abgr() == float4(4, 3, 2, 1)));
  CHECK(all(v.zw() * 2.0f == float2(6, 8)));
  const float4 cv = v;
  CHECK(all(cv.yzx() == float3(2, 3, 1)));
  float4 w = v;
  w.xy() = v.zw() * 2.0f;  // write
  CHECK(all(w == float4(6, 8, 3, 4)));
  w.zyx() = float3(10, 20, 30);
  CHECK(all(w == float4(30, 20, 10, 4)));
  w.wx() = 0.0f;  // scalar to a swizzle
  CHECK(all(w == float4(0, 20, 10, 0)));
  w.yx() = w.xy();  // swap through the proxy
  CHECK(all(w == float4(20, 0, 10, 0)));
  w.xy() += float2(1.0f, 2.0f);
  CHECK(all(w == float4(21, 2, 10, 0)));
  w.ba() *= 2.0f;
  CHECK(all(w == float4(21, 2, 20, 0)));
  auto t = w.xy();  // a named copy is detached
  t = float2(-1.0f);
  t += 1.0f;
  CHECK(all(w.xy() == float2(21, 2)) && all(t == float2(0.0f)));
  float2 m = max(w.xy(), w.zw());  // swizzles in functions
  CHECK(all(m == float2(21, 2)));
  CHECK_EQ(dot(w.xy(), float2(1.0f)), 23.0f);
  float3 c3 = float3(1, 2, 3);
  c3.xz() = c3.zx();
  CHECK(all(c3 == float3(3, 2, 1)));
  int2 i2(4, 5);
  CHECK(all(i2.yx() == int2(5, 4)));
  CHECK(all(i2.yyy() == int3(5)));
  uint3 gid(1u, 2u, 3u);
  CHECK(all(gid.xy() == uint2(1u, 2u)));
}

static void test_builtins() {
  fake::dctx.threads_per_grid = {96, 4, 1};
  fake::dctx.threadgroups_per_grid = {3, 2, 1};
  fake::dctx.dispatch_tg_size = {32, 2, 1};
  fake::gctx.tg_pos = {2, 1, 0};
  fake::gctx.tg_size = {32, 2, 1};
  fake::gctx.n_threads = 64;
  fake::tctx.tid = {5, 1, 0};
  fake::tctx.index = 37;
  const MoeThreadCtx* t = &fake::tctx;
  CHECK(all(moe_rt::bi_thread_position_in_grid(t) == uint3(69u, 3u, 0u)));
  CHECK(all(moe_rt::bi_thread_position_in_threadgroup(t) == uint3(5u, 1u, 0u)));
  CHECK(all(moe_rt::bi_threadgroup_position_in_grid(t) == uint3(2u, 1u, 0u)));
  CHECK(all(moe_rt::bi_threads_per_threadgroup(t) == uint3(32u, 2u, 1u)));
  CHECK(all(moe_rt::bi_threadgroups_per_grid(t) == uint3(3u, 2u, 1u)));
  CHECK(all(moe_rt::bi_threads_per_grid(t) == uint3(96u, 4u, 1u)));
  CHECK(all(moe_rt::bi_grid_size(t) == uint3(96u, 4u, 1u)));
  CHECK(all(moe_rt::bi_grid_origin(t) == uint3(0u)));
  CHECK(all(moe_rt::bi_dispatch_threads_per_threadgroup(t) == uint3(32u, 2u, 1u)));
  CHECK_EQ(moe_rt::bi_thread_index_in_threadgroup(t), 37u);
  CHECK_EQ(moe_rt::bi_thread_index_in_simdgroup(t), 5u);
  CHECK_EQ(moe_rt::bi_simdgroup_index_in_threadgroup(t), 1u);
  CHECK_EQ(moe_rt::bi_threads_per_simdgroup(t), 32u);
  CHECK_EQ(moe_rt::bi_thread_execution_width(t), 32u);
  CHECK_EQ(moe_rt::bi_simdgroups_per_threadgroup(t), 2u);
  CHECK_EQ(moe_rt::bi_dispatch_simdgroups_per_threadgroup(t), 2u);
  CHECK_EQ(moe_rt::bi_thread_index_in_quadgroup(t), 1u);
  CHECK_EQ(moe_rt::bi_quadgroup_index_in_threadgroup(t), 9u);
  CHECK_EQ(moe_rt::bi_quadgroups_per_threadgroup(t), 16u);
  fake::gctx.n_threads = 33;  // a partial last SIMD-group
  CHECK_EQ(moe_rt::bi_simdgroups_per_threadgroup(t), 2u);
  // builtin_as: the declared type.
  const uint3 g = moe_rt::bi_thread_position_in_grid(t);
  CHECK_TYPE(uint, moe_rt::builtin_as<uint>(g));
  CHECK_EQ(moe_rt::builtin_as<uint>(g), 69u);
  CHECK_EQ(moe_rt::builtin_as<ushort>(g), 69);
  CHECK_EQ(moe_rt::builtin_as<int>(g), 69);
  CHECK(all(moe_rt::builtin_as<uint2>(g) == uint2(69u, 3u)));
  CHECK(all(moe_rt::builtin_as<ushort2>(g) == ushort2(69, 3)));
  CHECK(all(moe_rt::builtin_as<int3>(g) == int3(69, 3, 0)));
  CHECK(all(moe_rt::builtin_as<const uint3>(g) == g));
  CHECK_EQ(moe_rt::builtin_as<ushort>(moe_rt::bi_thread_index_in_simdgroup(t)), 5);
  CHECK_EQ(moe_rt::builtin_as<uint>(moe_rt::bi_thread_index_in_threadgroup(t)), 37u);
}

static void test_tg_static() {
  auto& buf = ::moe_rt::tg_static<float[256]>(7u);
  CHECK_EQ(fake::tg_size[7], 1024);
  buf[255] = 1.5f;
  auto& again = ::moe_rt::tg_static<float[256]>(7u);
  CHECK_EQ(again[255], 1.5f);
  auto& grid = ::moe_rt::tg_static<float[4][32]>(6u);
  grid[3][31] = 2.0f;
  CHECK_EQ(fake::tg_size[6], 512);
  auto& one = ::moe_rt::tg_static<float4>(5u);
  one = float4(1.0f);
  CHECK_EQ(one.w, 1.0f);
  CHECK_EQ((uintptr_t)&one % 16, 0);
  auto& at = ::moe_rt::tg_static<atomic_uint>(4u);
  atomic_store_explicit(&at, 3u, memory_order_relaxed);
  CHECK_EQ(atomic_load_explicit(&at, memory_order_relaxed), 3u);
}

static void test_bind() {
  MoeRuntimeApi bad = fake::api;
  bad.abi_version = MOE_ABI_VERSION + 1;
  CHECK(__moe_bind_runtime(nullptr) != 0);
  CHECK(__moe_bind_runtime(&bad) != 0);
  CHECK(__moe_bind_runtime(&fake::api) == 0);
  CHECK(::moe_rt::api() == &fake::api);
}

int main() {
  fake::bind();
  test_bind();
  test_bfloat();
  test_vectors();
  test_swizzles();
  test_builtins();
  test_tg_static();
  return report("test_types");
}
