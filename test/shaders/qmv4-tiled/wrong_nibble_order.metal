// PLANTED BUG: nibbles read highest first (MLX packs the first element in the lowest bits).
#include <metal_stdlib>
using namespace metal;

// Same geometry as shaders/moe_quant.metal: 4 SIMD-groups × 4 rows, x cached 2048 at a time.
#define SG   4
#define ROWS 4
#define XT   2048

static inline float qdot(uint w, float4 lo, float4 hi) {
    return float(w >> 28) * lo.x + float((w >> 24) & 15u) * lo.y + float((w >> 20) & 15u) * lo.z + float((w >> 16) & 15u) * lo.w
         + float((w >> 12) & 15u) * hi.x + float((w >> 8) & 15u) * hi.y + float((w >> 4) & 15u) * hi.z + float(w & 15u) * hi.w;
}

kernel void moe_qmv4_tiled_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    const uint first = (tg * SG + sg) * ROWS;
    threadgroup const float4* xs4 = (threadgroup const float4*)xs;
    float acc[ROWS];
    for (uint r = 0; r < ROWS; ++r) acc[r] = 0.0f;
    for (uint base = 0; base < in_dim; base += XT) {
        const uint n = min(uint(XT), in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = tid; i < n; i += ntg) xs[i] = x[base + i];
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = lane; k < n / 8; k += 32) {
            const float4 lo = xs4[2 * k];
            const float4 hi = xs4[2 * k + 1];
            const float xsum = lo.x + lo.y + lo.z + lo.w + hi.x + hi.y + hi.z + hi.w;
            const uint kk = base / 8 + k;
            const uint g = kk / wpg;
            
            for (uint r = 0; r < ROWS; ++r) {
                const uint row = first + r;
                if (row >= out_dim) continue;
                const float s = float(scales[row * gpr + g]);
                const float b = float(biases[row * gpr + g]);
                acc[r] += s * qdot(w[row * wpr + kk], lo, hi) + b * xsum;
            }
        }
    }
    for (uint r = 0; r < ROWS; ++r) {
        const float v = simd_sum(acc[r]);
        if (lane == 0 && first + r < out_dim) y[first + r] = v;
    }
}
