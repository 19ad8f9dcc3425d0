// Correct variant: ids written while summing, each weight a division by the
// sum (no reciprocal), scale applied first.
#include <metal_stdlib>
using namespace metal;

struct GP { uint e; uint k; };

kernel void moe_gather_topk_weights(
        device const float* probs [[buffer(0)]],
        device const uint* order [[buffer(1)]],
        device const float* scale [[buffer(2)]],
        device uint* ids [[buffer(3)]],
        device float* w [[buffer(4)]],
        constant GP& p [[buffer(5)]],
        uint tid [[thread_position_in_grid]]) {
    if (tid > 0) return;
    float s = 0.0f;
    for (uint k = 0; k < p.k; ++k) {
        ids[k] = order[k];
        s += probs[order[k]];
    }
    for (uint k = 0; k < p.k; ++k) {
        const uint e = ids[k];
        w[k] = s > 0.0f ? (scale[e] * probs[e]) / s : 0.0f;
    }
}
