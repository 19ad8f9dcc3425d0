// Vector types, swizzles (read and write), conversions, math, bfloat rounding
// and device atomics hit by every threadgroup (several OS threads) at once.
#include <metal_stdlib>
using namespace metal;

kernel void vectors(device const float4* in [[buffer(0)]],
                    device float4*       out [[buffer(1)]],
                    device atomic_uint*  counter [[buffer(2)]],
                    device atomic_float* fsum [[buffer(3)]],
                    device ushort*       bf [[buffer(4)]],
                    uint i [[thread_position_in_grid]]) {
    float4 v = in[i];
    float4 w = v.wzyx;              // read swizzle
    w.xy = v.zw * 2.0f;             // write swizzle
    float3 c = float3(v.xy, 1.0f);
    int4 k = int4(v);               // conversion truncates toward zero
    uint4 m = uint4(3u) & uint4(5u, 6u, 7u, 1u);
    float d = dot(c, float3(1.0f, 2.0f, 3.0f)) + length(float2(3.0f, 4.0f));
    out[i * 3 + 0] = w;
    out[i * 3 + 1] = float4(float(k.x), float(k.w), d, clamp(v.x, -0.5f, 0.5f));
    out[i * 3 + 2] = float4(m) + select(float4(0.0f), float4(1.0f), v > 0.0f);
    atomic_fetch_add_explicit(counter, 1u, memory_order_relaxed);
    atomic_fetch_max_explicit(counter + 1, i, memory_order_relaxed);
    atomic_fetch_add_explicit(fsum, 1.0f, memory_order_relaxed);
    bfloat b = v.x;                 // round to nearest even
    bf[i] = as_type<ushort>(b);
}
