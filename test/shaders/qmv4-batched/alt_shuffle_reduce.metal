// CORRECT variant written differently: 4 threads per (row, token), 8 rows × 4
// tokens per threadgroup of 128, x read from device memory, partial sums
// reduced with simd_shuffle_xor across the 4 threads.
#include <metal_stdlib>
using namespace metal;

kernel void moe_qmv4_batched_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        constant uint&       n_tokens   [[buffer(8)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]]) {
    const uint quad = tid / 4;          // 32 (row, token) pairs per threadgroup
    const uint part = tid % 4;
    const uint row = tg.x * 8 + quad / 4;
    const uint tok = tg.y * 4 + quad % 4;
    const bool live = row < out_dim && tok < n_tokens;
    float acc = 0.0f;
    if (live) {
        const uint wpr = in_dim / 8;
        const uint gpr = in_dim / group_size;
        device const float* xr = x + tok * in_dim;
        for (uint k = part; k < wpr; k += 4) {
            const uint word = w[row * wpr + k];
            const uint gi = row * gpr + (k * 8) / group_size;
            const float s = float(scales[gi]);
            const float b = float(biases[gi]);
            for (uint j = 0; j < 8; ++j) acc = fma(fma(float((word >> (4 * j)) & 15u), s, b), xr[k * 8 + j], acc);
        }
    }
    acc += simd_shuffle_xor(acc, 1);
    acc += simd_shuffle_xor(acc, 2);
    if (live && part == 0) y[tok * out_dim + row] = acc;
}
