// PLANTED BUG for `moe dispatch --shader`: moe_weighted_reduce_f32 forgets the
// shared expert term. Everything upstream is right, so the layer must FAIL at
// 'combine' (the last stage) for a model with a shared expert.
#include <metal_stdlib>
using namespace metal;

struct MoeWeightedReduceParams {
    uint n_tokens;
    uint top_k;
    uint h;
    uint add_residual;
};

kernel void moe_weighted_reduce_f32(
    constant MoeWeightedReduceParams& p [[buffer(0)]],
    device const float* expert_w  [[buffer(1)]],
    device const float* y_expert  [[buffer(2)]],
    device const float* sh_gate   [[buffer(3)]],
    device const float* y_shared  [[buffer(4)]],
    device const float* residual  [[buffer(5)]],
    device float*       output    [[buffer(6)]],
    uint2 tg  [[threadgroup_position_in_grid]],
    uint  tid [[thread_index_in_threadgroup]]) {
    const uint t = tg.y;
    const uint c = tg.x * 256 + tid;
    if (t >= p.n_tokens || c >= p.h) return;
    float acc = 0.0f;
    for (uint k = 0; k < p.top_k; ++k) acc += expert_w[t * p.top_k + k] * y_expert[(t * p.top_k + k) * p.h + c];
    if (p.add_residual != 0) acc += residual[t * p.h + c];
    output[t * p.h + c] = acc;
}
