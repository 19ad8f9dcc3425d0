// PLANTED BUG: the first element of a word is taken from the highest byte (MLX packs lowest bits first).
#include <metal_stdlib>
using namespace metal;

kernel void moe_qmv8_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        uint row [[thread_position_in_grid]]) {
    if (row >= out_dim) return;
    const uint wpr = in_dim / 4;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 4;
    float acc = 0.0f;
    for (uint g = 0; g < gpr; ++g) {
        const float s = float(scales[row * gpr + g]);
        const float b = float(biases[row * gpr + g]);
        for (uint k = g * wpg; k < (g + 1) * wpg; ++k) {
            const uint word = w[row * wpr + k];
            for (uint j = 0; j < 4; ++j) {
                const float q = float((word >> (8 * (3 - j))) & 255u);
                acc = fma(q * s + b, x[k * 4 + j], acc);
            }
        }
    }
    y[row] = acc;
}
