// moe_weighted_reduce.metal — the end of a MoE FFN layer in one kernel:
//
//   out[t, h] = Σ_k w[t·K + k] · y[t·K + k, h]  +  g[t] · ys[t, h]  (+ res[t, h])
//
// routed experts' down-projections weighted by their routing weights, plus the
// shared expert's output scaled by its gate, plus the residual when
// add_residual != 0. When add_residual == 0 the residual buffer is a dummy the
// host may leave uninitialised (or smaller): it is not read at all.
//
// Interface (mlx-native's moe_weighted_reduce_f32, kept so engines' shaders
// verify against the same spec):
//   buffer(0) constant MoeWeightedReduceParams {n_tokens, top_k, h, add_residual}
//   buffer(1) w   [n_tokens·top_k]      buffer(2) y [n_tokens·top_k, h]
//   buffer(3) g   [n_tokens]            buffer(4) ys [n_tokens, h]
//   buffer(5) res [n_tokens, h]         buffer(6) out [n_tokens, h]
//   dispatchThreadgroups: (ceil(h / 256), n_tokens) threadgroups of 256 threads.

#include <metal_stdlib>
using namespace metal;

struct MoeWeightedReduceParams {
    uint n_tokens;
    uint top_k;
    uint h;
    uint add_residual;
};

kernel void moe_weighted_reduce_f32(
        constant MoeWeightedReduceParams& p   [[buffer(0)]],
        device const float*               w   [[buffer(1)]],
        device const float*               y   [[buffer(2)]],
        device const float*               g   [[buffer(3)]],
        device const float*               ys  [[buffer(4)]],
        device const float*               res [[buffer(5)]],
        device float*                     out [[buffer(6)]],
        uint2 tgpos [[threadgroup_position_in_grid]],
        uint  lid   [[thread_index_in_threadgroup]],
        uint2 tgdim [[threads_per_threadgroup]]) {
    const uint col = tgpos.x * tgdim.x + lid;
    const uint t   = tgpos.y;
    const uint H   = p.h;
    const uint K   = p.top_k;
    if (col >= H || t >= p.n_tokens) return;

    const ulong slot0 = (ulong)t * K;
    float acc = 0.0f;
    for (uint k = 0; k < K; ++k) acc = fma(w[slot0 + k], y[(slot0 + k) * H + col], acc);
    const ulong o = (ulong)t * H + col;
    acc = fma(g[t], ys[o], acc);
    if (p.add_residual != 0u) acc += res[o];
    out[o] = acc;
}
