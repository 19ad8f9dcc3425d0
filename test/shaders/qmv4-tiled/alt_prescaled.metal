// CORRECT variant written differently: x cached in a static threadgroup array
// (no [[threadgroup(0)]]), the SIMD-groups interleave their rows (sg, sg + 4,
// ...), and nibbles are read with masks in place, x prescaled by 1/16^j as in
// MLX's qmv (exact: powers of two); dequantized weights never formed.
#include <metal_stdlib>
using namespace metal;

kernel void moe_qmv4_tiled_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        uint3 tg3  [[threadgroup_position_in_grid]],
        uint3 tid3 [[thread_position_in_threadgroup]],
        uint  lane [[thread_index_in_simdgroup]],
        uint  sg   [[simdgroup_index_in_threadgroup]]) {
    threadgroup float cache[1024];
    const uint tid = tid3.x;
    const uint rows_per_tg = 16;
    const uint row0 = tg3.x * rows_per_tg;
    const uint wpr = in_dim / 8;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (uint base = 0; base < in_dim; base += 1024) {
        const uint n = min(1024u, in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = tid; i < n; i += 128) cache[i] = x[base + i];
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = lane; k < n / 8; k += 32) {
            float xt[8];
            float xsum = 0.0f;
            float div = 1.0f;
            for (uint j = 0; j < 8; ++j) {
                const float v = cache[k * 8 + j];
                xsum += v;
                xt[j] = v / div;       // x_j / 16^(j mod 4): exact
                div = (j % 4 == 3) ? 1.0f : div * 16.0f;
            }
            const uint word_index = base / 8 + k;
            for (uint i = 0; i < 4; ++i) {
                const uint row = row0 + sg + 4 * i;
                if (row >= out_dim) continue;
                const uint wd = w[row * wpr + word_index];
                const ushort lo16 = ushort(wd & 0xffffu);
                const ushort hi16 = ushort(wd >> 16);
                const float qx = xt[0] * float(lo16 & 0x000f) + xt[1] * float(lo16 & 0x00f0)
                               + xt[2] * float(lo16 & 0x0f00) + xt[3] * float(lo16 & 0xf000)
                               + xt[4] * float(hi16 & 0x000f) + xt[5] * float(hi16 & 0x00f0)
                               + xt[6] * float(hi16 & 0x0f00) + xt[7] * float(hi16 & 0xf000);
                const uint g = (word_index * 8) / group_size;
                const uint gi = row * (in_dim / group_size) + g;
                acc[i] += float(scales[gi]) * qx + float(biases[gi]) * xsum;
            }
        }
    }
    for (uint i = 0; i < 4; ++i) {
        const float v = simd_sum(acc[i]);
        const uint row = row0 + sg + 4 * i;
        if (lane == 0 && row < out_dim) y[row] = v;
    }
}
