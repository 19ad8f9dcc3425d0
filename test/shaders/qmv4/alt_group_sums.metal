// CORRECT variant written differently: per group it sums q·x and x, then adds
// scale·Σq·x + bias·Σx (MLX's algebra); nibbles are peeled off by shifting the
// word right; the row is addressed through pointers.
#include <metal_stdlib>
using namespace metal;

kernel void moe_qmv4_f32(
        device const uint*   packed     [[buffer(0)]],
        device const ushort* scale_bits [[buffer(1)]],   // raw bf16 bits, decoded here
        device const ushort* bias_bits  [[buffer(2)]],
        device const float*  in         [[buffer(3)]],
        device float*        out        [[buffer(4)]],
        constant uint&       rows       [[buffer(5)]],
        constant uint&       cols       [[buffer(6)]],
        constant uint&       gs         [[buffer(7)]],
        uint3 pos [[thread_position_in_grid]]) {
    const uint r = pos.x;
    if (r >= rows) return;
    const uint ngroups = cols / gs;
    device const uint* wr = packed + r * (cols / 8);
    float total = 0.0f;
    for (uint g = 0; g < ngroups; ++g) {
        float qx = 0.0f;
        float xs = 0.0f;
        for (uint k = 0; k < gs / 8; ++k) {
            uint word = wr[g * (gs / 8) + k];
            device const float* xv = in + g * gs + k * 8;
            for (uint j = 0; j < 8; ++j) {
                qx += float(word & 0xfu) * xv[j];
                xs += xv[j];
                word >>= 4;
            }
        }
        const float s = as_type<float>(uint(scale_bits[r * ngroups + g]) << 16);
        const float b = as_type<float>(uint(bias_bits[r * ngroups + g]) << 16);
        total += s * qx + b * xs;
    }
    out[r] = total;
}
