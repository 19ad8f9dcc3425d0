// Planted bug: off-by-one — the last slot is never added (k < top_k - 1).
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
    for (uint k = 0; k + 1 < params.top_k; k++) sum += expert_outputs[k * params.hidden_size + tid] * weights[k];
    output[tid] = sum;
}
