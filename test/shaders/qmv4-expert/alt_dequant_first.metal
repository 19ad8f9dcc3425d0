// CORRECT variant written differently: x in the natural layout, each weight dequantized before the multiply (no x sums), the slot's expert and input resolved through base pointers.
#include <metal_stdlib>
using namespace metal;

#define SG   4
#define ROWS 4
#define XT   2048

kernel void moe_qmv4_expert_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        device const uint*   ids        [[buffer(8)]],
        constant uint&       n_experts  [[buffer(9)]],
        constant uint&       x_per_pair [[buffer(10)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    const uint slot = tg.y;
    const uint e = ids[slot];
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    const uint first = (tg.x * SG + sg) * ROWS;
    device const float* xr = x + (x_per_pair != 0u ? slot * in_dim : 0u);
    device const uint* we = w + e * out_dim * wpr;
    device const bfloat* se = scales + e * out_dim * gpr;
    device const bfloat* be = biases + e * out_dim * gpr;
    float acc[ROWS] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (uint base = 0; base < in_dim; base += XT) {
        const uint n = min(uint(XT), in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = tid; i < n; i += SG * 32) xs[i] = xr[base + i];
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = lane; k < n / 8; k += 32) {
            const uint kk = base / 8 + k;
            const uint g = kk / wpg;
            for (uint r = 0; r < ROWS; ++r) {
                const uint row = first + r;
                if (row >= out_dim) continue;
                const uint word = we[row * wpr + kk];
                const float s = float(se[row * gpr + g]);
                const float b = float(be[row * gpr + g]);
                for (uint j = 0; j < 8; ++j) acc[r] += (float((word >> (4 * j)) & 15u) * s + b) * xs[k * 8 + j];
            }
        }
    }
    for (uint r = 0; r < ROWS; ++r) {
        const float v = simd_sum(acc[r]);
        if (lane == 0 && first + r < out_dim) y[slot * out_dim + first + r] = v;
    }
}
