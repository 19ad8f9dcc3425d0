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
