// Planted bug: wrong index — the weight is looked up by the output column
// (weights[tid % top_k]) instead of by the slot.
#include <metal_stdlib>
using namespace metal;

struct MoeWeightedSumParams { uint hidden_size; uint top_k; };

kernel void moe_weighted_sum(
        device const float* expert_outputs [[buffer(0)]],
        device const float* weights [[buffer(1)]],
        device float* output [[buffer(2)]],
        constant MoeWeightedSumParams& params [[buffer(3)]],
        uint tid [[thread_position_in_grid]]) {
    if (tid >= params.hidden_size) return;
    float sum = 0.0f;
    for (uint k = 0; k < params.top_k; k++) sum += expert_outputs[k * params.hidden_size + tid] * weights[tid % params.top_k];
    output[tid] = sum;
}
