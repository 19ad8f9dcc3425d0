// Planted bug: no guard on the sum — all-zero probabilities give 0 · (1/0) = NaN.
#include <metal_stdlib>
using namespace metal;

struct MoeGatherTopkParams { uint n_experts; uint top_k; };

kernel void moe_gather_topk_weights(
        device const float* softmax_probs [[buffer(0)]],
        device const uint* sorted_indices [[buffer(1)]],
        device const float* per_expert_scale [[buffer(2)]],
        device uint* out_expert_ids [[buffer(3)]],
        device float* out_weights [[buffer(4)]],
        constant MoeGatherTopkParams& params [[buffer(5)]],
        uint tid [[thread_position_in_grid]]) {
    if (tid != 0) return;
    float sum = 0.0f;
    for (uint k = 0; k < params.top_k; k++) {
        out_expert_ids[k] = sorted_indices[k];
        sum += softmax_probs[sorted_indices[k]];
    }
    for (uint k = 0; k < params.top_k; k++) {
        uint e = sorted_indices[k];
        out_weights[k] = softmax_probs[e] / sum * per_expert_scale[e];
    }
}
