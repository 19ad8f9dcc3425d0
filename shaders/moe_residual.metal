// moe_residual.metal — the residual stream around an MoE block, written for
// moe-kernels:
//
//   residual_add_f32:   out[i] = a[i] + b[i]
//     buffer(0) a   buffer(1) b   buffer(2) out   buffer(3) constant ResidualAddParams {n_elements}
//     dispatchThreads: n_elements threads in threadgroups of min(256, n_elements)
//
//   moe_combine_residual_f32:         out[t, d] = res[t, d] + Σ_k w[t, k] · y[t, k, d]
//   moe_combine_residual_scaled_f32:  out[t, d] = res[t, d] + scale · Σ_k w[t, k] · y[t, k, d]
//     (the scaled form is DeepSeek-V2/V3's routed_scaling_factor, applied to the
//      routed experts' sum only, never to the residual)
//     buffer(0) y [n_tokens·top_k·hidden]   buffer(1) w [n_tokens·top_k]
//     buffer(2) res [n_tokens·hidden]       buffer(3) out [n_tokens·hidden]
//     buffer(4) constant MoeCombineParams {n_tokens, top_k, hidden} (+ float scale)
//     dispatchThreads: (hidden, n_tokens) in threadgroups of min(256, hidden)
//
// f32 throughout; the expert sum is accumulated with fma in slot order.

#include <metal_stdlib>
using namespace metal;

struct ResidualAddParams {
    uint n_elements;
};

kernel void residual_add_f32(
        device const float*          a   [[buffer(0)]],
        device const float*          b   [[buffer(1)]],
        device float*                out [[buffer(2)]],
        constant ResidualAddParams&  p   [[buffer(3)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= p.n_elements) return;
    out[i] = a[i] + b[i];
}

struct MoeCombineParams {
    uint n_tokens;
    uint top_k;
    uint hidden;
};

struct MoeCombineScaledParams {
    uint  n_tokens;
    uint  top_k;
    uint  hidden;
    float scale;
};

// Σ_k w[t, k] · y[t, k, d] for one output element.
static inline float combine_experts(device const float* y, device const float* w,
                                    uint t, uint d, uint top_k, uint hidden) {
    const ulong slot0 = (ulong)t * top_k;
    float acc = 0.0f;
    for (uint k = 0; k < top_k; ++k) acc = fma(w[slot0 + k], y[(slot0 + k) * hidden + d], acc);
    return acc;
}

kernel void moe_combine_residual_f32(
        device const float*        y   [[buffer(0)]],
        device const float*        w   [[buffer(1)]],
        device const float*        res [[buffer(2)]],
        device float*              out [[buffer(3)]],
        constant MoeCombineParams& p   [[buffer(4)]],
        uint2 gid [[thread_position_in_grid]]) {
    if (gid.x >= p.hidden || gid.y >= p.n_tokens) return;
    const ulong o = (ulong)gid.y * p.hidden + gid.x;
    out[o] = res[o] + combine_experts(y, w, gid.y, gid.x, p.top_k, p.hidden);
}

kernel void moe_combine_residual_scaled_f32(
        device const float*              y   [[buffer(0)]],
        device const float*              w   [[buffer(1)]],
        device const float*              res [[buffer(2)]],
        device float*                    out [[buffer(3)]],
        constant MoeCombineScaledParams& p   [[buffer(4)]],
        uint2 gid [[thread_position_in_grid]]) {
    if (gid.x >= p.hidden || gid.y >= p.n_tokens) return;
    const ulong o = (ulong)gid.y * p.hidden + gid.x;
    out[o] = fma(p.scale, combine_experts(y, w, gid.y, gid.x, p.top_k, p.hidden), res[o]);
}
