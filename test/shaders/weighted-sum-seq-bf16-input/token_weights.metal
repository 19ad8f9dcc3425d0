// Planted bug: wrong index — weights[k] instead of weights[tok·top_k + k].
#include <metal_stdlib>
using namespace metal;

struct MoeWeightedSumSeqParams { uint hidden_size; uint top_k; uint n_tokens; };

kernel void moe_weighted_sum_seq_bf16_input(
        device const bfloat* expert_outputs [[buffer(0)]],
        device const float* weights [[buffer(1)]],
        device float* output [[buffer(2)]],
        constant MoeWeightedSumSeqParams& params [[buffer(3)]],
        uint2 tid [[thread_position_in_grid]]) {
    uint d = tid.x, tok = tid.y;
    if (tok >= params.n_tokens || d >= params.hidden_size) return;
    float sum = 0.0f;
    for (uint k = 0; k < params.top_k; k++) {
        sum += float(expert_outputs[(tok * params.top_k + k) * params.hidden_size + d]) * weights[k];
    }
    output[tok * params.hidden_size + d] = sum;
}
