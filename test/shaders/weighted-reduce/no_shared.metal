// Planted bug: missing term — the gated shared-expert output is never added.
#include <metal_stdlib>
using namespace metal;

struct MoeWeightedReduceParams { uint n_tokens; uint top_k; uint h; uint add_residual; };

kernel void moe_weighted_reduce_f32(
        constant MoeWeightedReduceParams& params [[buffer(0)]],
        device const float* expert_w [[buffer(1)]],
        device const float* y_expert [[buffer(2)]],
        device const float* sh_gate [[buffer(3)]],
        device const float* y_shared [[buffer(4)]],
        device const float* residual [[buffer(5)]],
        device float* output [[buffer(6)]],
        uint2 tgpig [[threadgroup_position_in_grid]],
        uint tiitg [[thread_index_in_threadgroup]]) {
    uint col = tgpig.x * 256 + tiitg;
    uint t = tgpig.y;
    if (col >= params.h || t >= params.n_tokens) return;
    float acc = 0.0f;
    for (uint k = 0; k < params.top_k; k++) {
        acc += expert_w[t * params.top_k + k] * y_expert[(t * params.top_k + k) * params.h + col];
    }
    if (params.add_residual) acc += residual[t * params.h + col];
    output[t * params.h + col] = acc;
}
