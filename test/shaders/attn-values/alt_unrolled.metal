// Correct variant of attn_values_batched written differently: the position
// loop unrolled by four into independent accumulators (a different summation
// order), uint2 indexing of (head, dim), and the idle tail of the last
// threadgroup detected from threads_per_grid arithmetic.
#include <metal_stdlib>
using namespace metal;

kernel void attn_values_batched(
        device const float* P     [[buffer(0)]],
        device const float* V     [[buffer(1)]],
        device float*       O     [[buffer(2)]],
        constant uint&      D     [[buffer(3)]],
        constant uint&      KVD   [[buffer(4)]],
        constant uint&      N     [[buffer(5)]],
        constant uint&      LD    [[buffer(6)]],
        constant uint&      G     [[buffer(7)]],
        uint3 gid3 [[thread_position_in_grid]]) {
    const uint gid = gid3.x;
    const uint n_heads = G * (KVD / D);
    const uint2 hd = uint2(gid / D, gid % D);
    if (hd.x >= n_heads) return;
    device const float* prow = P + hd.x * LD;
    device const float* vcol = V + (hd.x / G) * D + hd.y;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    uint p = 0;
    for (; p + 4 <= N; p += 4) {
        a0 += prow[p + 0] * vcol[(p + 0) * KVD];
        a1 += prow[p + 1] * vcol[(p + 1) * KVD];
        a2 += prow[p + 2] * vcol[(p + 2) * KVD];
        a3 += prow[p + 3] * vcol[(p + 3) * KVD];
    }
    for (; p < N; ++p) a0 += prow[p] * vcol[p * KVD];
    O[hd.x * D + hd.y] = (a0 + a1) + (a2 + a3);
}
