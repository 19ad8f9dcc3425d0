// Planted bug: wrong index — probabilities read as if already sorted
// (softmax_probs[k]) instead of gathered at the expert id.
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
        sum += softmax_probs[k];
    }
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (uint k = 0; k < params.top_k; k++) {
        out_weights[k] = softmax_probs[k] * inv * per_expert_scale[sorted_indices[k]];
    }
}
