// Kernels used by `moe bench` itself.
//   moe_empty:    does nothing; its time is the floor of a dispatch (launch overhead).
//   moe_copy_f32: dst[i] = src[i]; its bandwidth is the measured peak (--measure-peak).
#include <metal_stdlib>
using namespace metal;

kernel void moe_empty(device float* sink [[buffer(0)]],
                      uint i [[thread_position_in_grid]]) {
}

kernel void moe_copy_f32(device const float4* src [[buffer(0)]],
                         device float4*       dst [[buffer(1)]],
                         constant uint&       n4  [[buffer(2)]],
                         uint i [[thread_position_in_grid]]) {
    if (i < n4) dst[i] = src[i];
}

// moe_read_u32: reads n4 uint4s once and keeps nothing but a fold of them:
// the time a kernel needs only to read that many bytes, the ceiling for any
// kernel that must (a quantized mat-vec of that many packed weights). Each
// thread reads RD_PER uint4s, t + k·T for T threads in all (coalesced, all
// loads independent); each SIMD-group writes the XOR of its words.
#define RD_PER 4
kernel void moe_read_u32(device const uint4* src [[buffer(0)]],
                         device uint*        out [[buffer(1)]],
                         constant uint&      n4  [[buffer(2)]],
                         uint t    [[thread_position_in_grid]],
                         uint lane [[thread_index_in_simdgroup]]) {
    const uint T = (n4 + RD_PER - 1) / RD_PER;
    uint4 v[RD_PER];
    for (uint k = 0; k < RD_PER; ++k) {
        const uint i = t + k * T;
        v[k] = t < T && i < n4 ? src[i] : uint4(0u);
    }
    uint acc = 0u;
    for (uint k = 0; k < RD_PER; ++k) acc ^= (v[k].x ^ v[k].y) ^ (v[k].z ^ v[k].w);
    acc = simd_xor(acc);
    if (lane == 0) out[t / 32] = acc;
}
