// PLANTED BUG: tokens of a partial last tile (n_tokens not a multiple of 4) are never written.
#include <metal_stdlib>
using namespace metal;

#define QB_SG   4
#define QB_ROWS 2
#define QB_TOK  4
#define QB_XT   512

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
        threadgroup float*   xs         [[threadgroup(0)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    const uint first = (tg.x * QB_SG + sg) * QB_ROWS;
    const uint t0 = tg.y * QB_TOK;
    const uint nt = n_tokens - t0 >= QB_TOK ? QB_TOK : 0u;  // PLANTED BUG: a partial last tile of tokens is dropped
    threadgroup const float4* xs4 = (threadgroup const float4*)xs;

    float acc[QB_ROWS][QB_TOK];
    for (uint r = 0; r < QB_ROWS; ++r)
        for (uint t = 0; t < QB_TOK; ++t) acc[r][t] = 0.0f;

    for (uint base = 0; base < in_dim; base += QB_XT) {
        const uint n = min(uint(QB_XT), in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = tid; i < QB_TOK * n; i += ntg) {
            const uint t = i / n;
            const uint c = i - t * n;
            xs[t * QB_XT + c] = t < nt ? x[(ulong)(t0 + t) * in_dim + base + c] : 0.0f;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = lane; k < n / 8; k += 32) {
            const uint kk = base / 8 + k;
            const uint g = kk / wpg;
            for (uint r = 0; r < QB_ROWS; ++r) {
                const uint row = first + r;
                if (row >= out_dim) continue;
                const uint word = w[(ulong)row * wpr + kk];
                const float s = float(scales[(ulong)row * gpr + g]);
                const float b = float(biases[(ulong)row * gpr + g]);
                const float4 wl = float4(float(word & 15u), float((word >> 4) & 15u),
                                         float((word >> 8) & 15u), float((word >> 12) & 15u)) * s + b;
                const float4 wh = float4(float((word >> 16) & 15u), float((word >> 20) & 15u),
                                         float((word >> 24) & 15u), float(word >> 28)) * s + b;
                for (uint t = 0; t < QB_TOK; ++t) {
                    const float4 xl = xs4[(t * QB_XT) / 4 + 2 * k];
                    const float4 xh = xs4[(t * QB_XT) / 4 + 2 * k + 1];
                    float a = acc[r][t];
                    a = fma(wl.x, xl.x, a); a = fma(wl.y, xl.y, a); a = fma(wl.z, xl.z, a); a = fma(wl.w, xl.w, a);
                    a = fma(wh.x, xh.x, a); a = fma(wh.y, xh.y, a); a = fma(wh.z, xh.z, a); a = fma(wh.w, xh.w, a);
                    acc[r][t] = a;
                }
            }
        }
    }
    for (uint r = 0; r < QB_ROWS; ++r) {
        for (uint t = 0; t < QB_TOK; ++t) {
            const float v = simd_sum(acc[r][t]);
            if (lane == 0 && first + r < out_dim && t < nt) y[(ulong)(t0 + t) * out_dim + first + r] = v;
        }
    }
}


