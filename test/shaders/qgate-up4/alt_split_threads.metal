// CORRECT variant written differently: 16 threads per row (8 rows per
// threadgroup of 128), x read from device memory, partial sums reduced through
// threadgroup memory, tanh written with exp.
#include <metal_stdlib>
using namespace metal;

static inline float tanh_exp(float z) {
    return 1.0f - 2.0f / (exp(2.0f * z) + 1.0f);
}

kernel void moe_qgate_up4_f32(
        device const uint*   wg         [[buffer(0)]],
        device const bfloat* gsc        [[buffer(1)]],
        device const bfloat* gbi        [[buffer(2)]],
        device const uint*   wu         [[buffer(3)]],
        device const bfloat* usc        [[buffer(4)]],
        device const bfloat* ubi        [[buffer(5)]],
        device const float*  x          [[buffer(6)]],
        device float*        y          [[buffer(7)]],
        constant uint&       out_dim    [[buffer(8)]],
        constant uint&       in_dim     [[buffer(9)]],
        constant uint&       group_size [[buffer(10)]],
        constant uint&       act        [[buffer(11)]],
        uint tg  [[threadgroup_position_in_grid]],
        uint tid [[thread_index_in_threadgroup]]) {
    threadgroup float pg[128];
    threadgroup float pu[128];
    const uint row = tg * 8 + tid / 16;
    const uint t = tid % 16;
    float g = 0.0f;
    float u = 0.0f;
    if (row < out_dim) {
        const uint wpr = in_dim / 8;
        const uint gpr = in_dim / group_size;
        for (uint k = t; k < wpr; k += 16) {
            const uint gi = row * gpr + (k * 8) / group_size;
            const float s1 = float(gsc[gi]), b1 = float(gbi[gi]);
            const float s2 = float(usc[gi]), b2 = float(ubi[gi]);
            uint a = wg[row * wpr + k];
            uint c = wu[row * wpr + k];
            for (uint j = 0; j < 8; ++j) {
                const float xv = x[k * 8 + j];
                g += (float(a & 15u) * s1 + b1) * xv;
                u += (float(c & 15u) * s2 + b2) * xv;
                a >>= 4;
                c >>= 4;
            }
        }
    }
    pg[tid] = g;
    pu[tid] = u;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (t == 0 && row < out_dim) {
        float gate = 0.0f;
        float up = 0.0f;
        for (uint i = 0; i < 16; ++i) { gate += pg[tid + i]; up += pu[tid + i]; }
        float a;
        if (act == 0u) a = gate / (1.0f + exp(-gate));
        else a = 0.5f * gate * (1.0f + tanh_exp(0.7978845608f * (gate + 0.044715f * gate * gate * gate)));
        y[row] = a * up;
    }
}
