// Header tests: barriers, SIMD-group and quad-group collectives through a
// driven fake simd_exchange (fake_rt.h), and atomics, device ones hit from
// several OS threads at once.
#include <pthread.h>

#include "msl_cpu.h"
#include "fake_rt.h"

using namespace metal;

static const uint64_t ALL = 0xffffffffull;

// Lane i holds f(i); returns what lane `lane` gets from op(its value).
template <typename V, typename Gen, typename Op> static auto at_lane(unsigned lane, uint64_t mask, Gen gen, Op op) {
  for (unsigned i = 0; i < MOE_SIMD_WIDTH; ++i) fake::set_lane(i, V(gen(i)));
  fake::mask = mask;
  fake::as_lane(lane);
  return op(V(gen(lane)));
}
static uint lane1(unsigned i) { return i + 1; }  // lane i holds i + 1

static void test_reductions() {
  CHECK_EQ(at_lane<uint>(5, ALL, lane1, [](uint v) { return simd_sum(v); }), 528u);
  CHECK_EQ(at_lane<uint>(5, 0xfffffull, lane1, [](uint v) { return simd_sum(v); }), 210u);  // lanes 0..19
  CHECK_EQ(at_lane<uint>(0, 0x1ull, lane1, [](uint v) { return simd_sum(v); }), 1u);
  CHECK_EQ(at_lane<float>(3, 0xfull, lane1, [](float v) { return simd_product(v); }), 24.0f);
  auto signed_vals = [](unsigned i) { return int(i) * (i % 2 ? -1 : 1); };
  CHECK_EQ(at_lane<int>(3, ALL, signed_vals, [](int v) { return simd_max(v); }), 30);
  CHECK_EQ(at_lane<int>(3, ALL, signed_vals, [](int v) { return simd_min(v); }), -31);
  CHECK_EQ(at_lane<float>(3, ALL, lane1, [](float v) { return simd_max(v); }), 32.0f);
  CHECK_EQ(at_lane<uint>(3, ALL, [](unsigned i) { return 1u << i; }, [](uint v) { return simd_or(v); }), 0xffffffffu);
  CHECK_EQ(at_lane<uint>(3, ALL, [](unsigned i) { return ~(1u << i); }, [](uint v) { return simd_and(v); }), 0u);
  CHECK_EQ(at_lane<uint>(3, 0x7ull, lane1, [](uint v) { return simd_xor(v); }), 0u);  // 1 ^ 2 ^ 3
  // Order: a float sum over the lanes in lane order, the same from every lane.
  auto tiny = [](unsigned i) { return i == 0 ? 1e8f : 1.0f; };
  const float s0 = at_lane<float>(0, ALL, tiny, [](float v) { return simd_sum(v); });
  const float s9 = at_lane<float>(9, ALL, tiny, [](float v) { return simd_sum(v); });
  CHECK_EQ(s0, 1e8f);  // 1e8 + 1 rounds back to 1e8 at every step
  CHECK_EQ(s0, s9);
  // Vectors, swizzles, half, bfloat, short.
  const float4 v4 = at_lane<float4>(0, ALL, [](unsigned i) { return float4(float(i), 1.0f, 2.0f, 3.0f); },
                                    [](float4 v) { return simd_sum(v); });
  CHECK(all(v4 == float4(496.0f, 32.0f, 64.0f, 96.0f)));
  const float2 v2 = at_lane<float4>(1, 0x3ull, [](unsigned i) { return float4(float(i), 1.0f, 2.0f, 3.0f); },
                                    [](float4 v) { return simd_sum(v.xy()); });
  CHECK(all(v2 == float2(1.0f, 2.0f)));
  CHECK_TYPE(float2, simd_sum(float4().xy()));
  CHECK_TYPE(float, simd_sum(float4().r));
  CHECK_TYPE(half, simd_sum(half(1.0f)));
  CHECK_TYPE(float3, simd_sum(packed_float3()));
  CHECK_EQ(float(at_lane<half>(0, 0xffull, lane1, [](half v) { return simd_sum(v); })), 36.0f);
  CHECK_EQ(float(at_lane<bfloat>(0, 0xffull, lane1, [](bfloat v) { return simd_sum(v); })), 36.0f);
  CHECK_EQ(at_lane<short>(0, 0xffull, lane1, [](short v) { return simd_sum(v); }), 36);
  CHECK(all(at_lane<uint2>(0, 0xfull, [](unsigned i) { return uint2(i, 1u); }, [](uint2 v) { return simd_max(v); }) == uint2(3u, 1u)));
}

static void test_prefix() {
  CHECK_EQ(at_lane<uint>(5, ALL, lane1, [](uint v) { return simd_prefix_inclusive_sum(v); }), 21u);
  CHECK_EQ(at_lane<uint>(5, ALL, lane1, [](uint v) { return simd_prefix_exclusive_sum(v); }), 15u);
  CHECK_EQ(at_lane<uint>(0, ALL, lane1, [](uint v) { return simd_prefix_exclusive_sum(v); }), 0u);
  CHECK_EQ(at_lane<uint>(5, ALL & ~0x4ull, lane1, [](uint v) { return simd_prefix_exclusive_sum(v); }), 12u);  // lane 2 inactive
  CHECK_EQ(at_lane<float>(3, ALL, lane1, [](float v) { return simd_prefix_inclusive_product(v); }), 24.0f);
  CHECK_EQ(at_lane<float>(3, ALL, lane1, [](float v) { return simd_prefix_exclusive_product(v); }), 6.0f);
  CHECK_EQ(at_lane<float>(0, ALL, lane1, [](float v) { return simd_prefix_exclusive_product(v); }), 1.0f);
  CHECK(all(at_lane<float2>(2, ALL, [](unsigned i) { return float2(float(i), 1.0f); },
                            [](float2 v) { return simd_prefix_exclusive_sum(v); }) == float2(1.0f, 2.0f)));
}

static void test_shuffles() {
  auto sh = [](unsigned lane, uint64_t mask, auto op) { return at_lane<uint>(lane, mask, lane1, op); };
  CHECK_EQ(sh(0, ALL, [](uint v) { return simd_shuffle(v, 7); }), 8u);
  CHECK_EQ(sh(0, 0xffull, [](uint v) { return simd_shuffle(v, 9); }), 1u);  // inactive source: own value
  CHECK_EQ(sh(9, ALL, [](uint v) { return simd_broadcast(v, 3); }), 4u);
  CHECK_EQ(sh(9, ALL & ~0xfull, [](uint v) { return simd_broadcast_first(v); }), 5u);
  CHECK_EQ(sh(2, ALL, [](uint v) { return simd_shuffle_up(v, 3); }), 3u);  // lane < delta: own
  CHECK_EQ(sh(10, ALL, [](uint v) { return simd_shuffle_up(v, 3); }), 8u);
  CHECK_EQ(sh(30, ALL, [](uint v) { return simd_shuffle_down(v, 3); }), 31u);  // lane + delta >= 32: own
  CHECK_EQ(sh(10, ALL, [](uint v) { return simd_shuffle_down(v, 3); }), 14u);
  CHECK_EQ(sh(10, ALL, [](uint v) { return simd_shuffle_xor(v, 1); }), 12u);
  CHECK_EQ(sh(10, ALL, [](uint v) { return simd_shuffle_xor(v, 16); }), 27u);
  CHECK_EQ(sh(30, ALL, [](uint v) { return simd_shuffle_rotate_down(v, 3); }), 2u);
  CHECK_EQ(sh(1, ALL, [](uint v) { return simd_shuffle_rotate_up(v, 3); }), 31u);
  CHECK(all(at_lane<half4>(1, ALL, [](unsigned i) { return half4(float(i)); },
                           [](half4 v) { return simd_shuffle_down(v, 1); }) == half4(2.0f)));
  CHECK_EQ(float(at_lane<bfloat>(4, ALL, lane1, [](bfloat v) { return simd_shuffle_xor(v, 4); })), 1.0f);
  // and_fill: lane i holds data i + 1 and fill 100 + i.
  auto fill_at = [](unsigned lane, auto op) {
    for (unsigned i = 0; i < MOE_SIMD_WIDTH; ++i) fake::set_lane(i, metal::fill_pair<uint>{i + 1, 100 + i});
    fake::mask = ALL;
    fake::as_lane(lane);
    return op(lane + 1, 100 + lane);
  };
  CHECK_EQ(fill_at(10, [](uint d, uint f) { return simd_shuffle_and_fill_down(d, f, 3); }), 14u);
  CHECK_EQ(fill_at(30, [](uint d, uint f) { return simd_shuffle_and_fill_down(d, f, 3); }), 101u);  // fill of lane 1
  CHECK_EQ(fill_at(6, [](uint d, uint f) { return simd_shuffle_and_fill_down(d, f, 3, 8); }), 101u);  // group 0..7: 6 + 3 wraps to lane 1, its fill
  CHECK_EQ(fill_at(10, [](uint d, uint f) { return simd_shuffle_and_fill_up(d, f, 3); }), 8u);
  CHECK_EQ(fill_at(1, [](uint d, uint f) { return simd_shuffle_and_fill_up(d, f, 3); }), 130u);  // fill of lane 30
  CHECK_EQ(fill_at(9, [](uint d, uint f) { return simd_shuffle_and_fill_up(d, f, 2, 8); }), 115u);  // group 8..15: lane 15's fill
  // Quad-groups: lanes 4..7 hold 5..8.
  CHECK_EQ(sh(5, ALL, [](uint v) { return quad_sum(v); }), 26u);
  CHECK_EQ(sh(5, ALL, [](uint v) { return quad_shuffle(v, 2); }), 7u);
  CHECK_EQ(sh(7, ALL, [](uint v) { return quad_broadcast(v, 0); }), 5u);
  CHECK_EQ(sh(5, ALL, [](uint v) { return quad_shuffle_xor(v, 1); }), 5u);
  CHECK_EQ(sh(4, ALL, [](uint v) { return quad_shuffle_up(v, 1); }), 5u);
  CHECK_EQ(sh(5, ALL, [](uint v) { return quad_shuffle_up(v, 1); }), 5u);
  CHECK_EQ(sh(7, ALL, [](uint v) { return quad_shuffle_down(v, 1); }), 8u);
  CHECK_EQ(sh(6, ALL, [](uint v) { return quad_shuffle_down(v, 1); }), 8u);
  CHECK_EQ(sh(6, ALL, [](uint v) { return quad_max(v); }), 8u);
}

static void test_votes() {
  auto even = [](unsigned i) { return i % 2 == 0; };
  CHECK_EQ(uint64_t(at_lane<bool>(3, ALL, even, [](bool b) { return simd_ballot(b); })), 0x55555555ull);
  CHECK_EQ(static_cast<ulong>(at_lane<bool>(3, 0xffull, even, [](bool b) { return simd_ballot(b); })), 0x55ull);
  CHECK(!at_lane<bool>(3, ALL, even, [](bool b) { return simd_all(b); }));
  CHECK(at_lane<bool>(3, ALL, even, [](bool b) { return simd_any(b); }));
  CHECK(at_lane<bool>(3, 0x1ull | 0x4ull | 0x8ull, [](unsigned i) { return i != 1; }, [](bool b) { return simd_all(b); }));
  CHECK(!at_lane<bool>(3, ALL, [](unsigned) { return false; }, [](bool b) { return simd_any(b); }));
  CHECK(at_lane<bool>(3, ALL, [](unsigned) { return true; }, [](bool b) { return simd_ballot(b); }).all());
  CHECK(at_lane<bool>(5, ALL, [](unsigned i) { return i != 6; }, [](bool b) { return quad_any(b) && !quad_all(b); }));
  fake::mask = 0xf0ull;
  fake::as_lane(4);
  CHECK_EQ(uint64_t(simd_active_threads_mask()), 0xf0ull);
  CHECK(simd_is_first());
  fake::as_lane(5);
  CHECK(!simd_is_first());
  CHECK(!simd_is_helper_thread());
  fake::mask = ALL;
}

static void test_barriers() {
  const unsigned tg = fake::tg_barriers, sg = fake::simd_barriers;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
  simdgroup_barrier(mem_flags::mem_none);
  CHECK_EQ(fake::tg_barriers - tg, 2u);
  CHECK_EQ(fake::simd_barriers - sg, 1u);
  atomic_thread_fence(mem_flags::mem_device, memory_order_seq_cst, thread_scope_device);
  atomic_thread_fence(mem_flags::mem_threadgroup, memory_order_relaxed);
}

static void test_atomics_single() {
  atomic_uint u;
  atomic_store_explicit(&u, 5u, memory_order_relaxed);
  CHECK_EQ(atomic_fetch_add_explicit(&u, 1, memory_order_relaxed), 5u);  // an int operand
  CHECK_EQ(atomic_fetch_sub_explicit(&u, 2u, memory_order_relaxed), 6u);
  CHECK_EQ(atomic_fetch_or_explicit(&u, 8u, memory_order_relaxed), 4u);
  CHECK_EQ(atomic_fetch_and_explicit(&u, 9u, memory_order_relaxed), 12u);
  CHECK_EQ(atomic_fetch_xor_explicit(&u, 1u, memory_order_relaxed), 8u);
  CHECK_EQ(atomic_fetch_max_explicit(&u, 20u, memory_order_relaxed), 9u);
  CHECK_EQ(atomic_fetch_min_explicit(&u, 3u, memory_order_relaxed), 20u);
  CHECK_EQ(atomic_exchange_explicit(&u, 11u, memory_order_relaxed), 3u);
  uint expected = 10u;
  CHECK(!atomic_compare_exchange_weak_explicit(&u, &expected, 12u, memory_order_relaxed, memory_order_relaxed));
  CHECK_EQ(expected, 11u);
  while (!atomic_compare_exchange_weak_explicit(&u, &expected, 12u, memory_order_relaxed, memory_order_relaxed)) {}
  CHECK_EQ(atomic_load_explicit(&u, memory_order_relaxed), 12u);
  atomic_int s;
  atomic_store_explicit(&s, -5, memory_order_relaxed);
  CHECK_EQ(atomic_fetch_max_explicit(&s, -7, memory_order_relaxed), -5);
  CHECK_EQ(atomic_fetch_min_explicit(&s, -7, memory_order_relaxed), -5);
  CHECK_EQ(atomic_load_explicit(&s, memory_order_relaxed), -7);
  atomic_float f;
  atomic_store_explicit(&f, 1.5f, memory_order_relaxed);
  CHECK_EQ(atomic_fetch_add_explicit(&f, 2.0f, memory_order_relaxed), 1.5f);
  CHECK_EQ(atomic_fetch_max_explicit(&f, 1.0f, memory_order_relaxed), 3.5f);
  CHECK_EQ(atomic_load_explicit(&f, memory_order_relaxed), 3.5f);
  atomic_bool b;
  atomic_store_explicit(&b, true, memory_order_relaxed);
  CHECK(atomic_exchange_explicit(&b, false, memory_order_relaxed));
  CHECK(!atomic_load_explicit(&b, memory_order_relaxed));
  atomic_ulong big;
  atomic_store_explicit(&big, 1ul << 40, memory_order_relaxed);
  CHECK_EQ(atomic_fetch_max_explicit(&big, 3ul, memory_order_relaxed), double(1ul << 40));
  static_assert(sizeof(atomic_uint) == 4 && sizeof(atomic_float) == 4, "atomic sizes");
}

// Device atomics from several OS threads at once (as threadgroups run).
struct Shared {
  atomic_uint count;
  atomic_float fsum;
  atomic_uint maxv;
  atomic_uint cas;
};
static Shared shared;
static void* hammer(void* arg) {
  const uint id = uint(uintptr_t(arg));
  volatile Shared* sh = &shared;  // as `volatile device atomic_uint*`
  for (uint i = 0; i < 20000; ++i) {
    atomic_fetch_add_explicit(&sh->count, 1u, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->fsum, 1.0f, memory_order_relaxed);
    atomic_fetch_max_explicit(&sh->maxv, id * 100000u + i, memory_order_relaxed);
    uint e = atomic_load_explicit(&sh->cas, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&sh->cas, &e, e + 2u, memory_order_relaxed, memory_order_relaxed)) {}
  }
  return nullptr;
}
static void test_atomics_threads() {
  pthread_t th[8];
  for (uintptr_t i = 0; i < 8; ++i) pthread_create(&th[i], nullptr, hammer, (void*)i);
  for (int i = 0; i < 8; ++i) pthread_join(th[i], nullptr);
  CHECK_EQ(atomic_load_explicit(&shared.count, memory_order_relaxed), 160000u);
  CHECK_EQ(atomic_load_explicit(&shared.fsum, memory_order_relaxed), 160000.0f);
  CHECK_EQ(atomic_load_explicit(&shared.maxv, memory_order_relaxed), 719999u);
  CHECK_EQ(atomic_load_explicit(&shared.cas, memory_order_relaxed), 320000u);
}

int main() {
  fake::bind();
  test_reductions();
  test_prefix();
  test_shuffles();
  test_votes();
  test_barriers();
  test_atomics_single();
  test_atomics_threads();
  return report("test_sync");
}
