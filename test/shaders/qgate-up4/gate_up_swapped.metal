// PLANTED BUG: gate and up swapped: act(up)·gate.
#include <metal_stdlib>
using namespace metal;

#define SG   4
#define ROWS 2
#define XT   2048

static inline float dot8(uint w, threadgroup const float* xv) {
    float a = 0.0f;
    for (uint j = 0; j < 8; ++j) a += float((w >> (4 * j)) & 15u) * xv[j];
    return a;
}

static inline float act_fn(float g, uint act) {
    if (act == 1u) return 0.5f * g * (1.0f + tanh(0.7978845608f * (g + 0.044715f * g * g * g)));
    return g / (1.0f + exp(-g));
}

kernel void moe_qgate_up4_f32(
        device const uint*   wg         [[buffer(0)]],
        device const bfloat* gs_        [[buffer(1)]],
        device const bfloat* gb_        [[buffer(2)]],
        device const uint*   wu         [[buffer(3)]],
        device const bfloat* us_        [[buffer(4)]],
        device const bfloat* ub_        [[buffer(5)]],
        device const float*  x          [[buffer(6)]],
        device float*        y          [[buffer(7)]],
        constant uint&       out_dim    [[buffer(8)]],
        constant uint&       in_dim     [[buffer(9)]],
        constant uint&       group_size [[buffer(10)]],
        constant uint&       act        [[buffer(11)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    const uint first = (tg * SG + sg) * ROWS;
    float ag[ROWS] = {0.0f, 0.0f};
    float au[ROWS] = {0.0f, 0.0f};
    for (uint base = 0; base < in_dim; base += XT) {
        const uint n = min(uint(XT), in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = tid; i < n; i += SG * 32) xs[i] = x[base + i];
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = lane; k < n / 8; k += 32) {
            threadgroup const float* xv = xs + k * 8;
            float xsum = 0.0f;
            for (uint j = 0; j < 8; ++j) xsum += xv[j];
            const uint kk = base / 8 + k;
            const uint g = kk / wpg;
            for (uint r = 0; r < ROWS; ++r) {
                const uint row = first + r;
                if (row >= out_dim) continue;
                const uint wi = row * wpr + kk;
                const uint gi = row * gpr + g;
                ag[r] += float(gs_[gi]) * dot8(wg[wi], xv) + float(gb_[gi]) * xsum;
                au[r] += float(us_[gi]) * dot8(wu[wi], xv) + float(ub_[gi]) * xsum;
            }
        }
    }
    for (uint r = 0; r < ROWS; ++r) {
        const float gate = simd_sum(ag[r]);
        const float up = simd_sum(au[r]);
        if (lane == 0 && first + r < out_dim) y[first + r] = act_fn(up, act) * gate;
    }
}
