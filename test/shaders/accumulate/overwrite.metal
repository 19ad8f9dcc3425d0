// Planted bug: '=' instead of '+=' — the accumulator is overwritten with
// this expert's weighted output.
#include <metal_stdlib>
using namespace metal;

struct MoeAccumParams { uint n_elements; float routing_weight; };

kernel void moe_accumulate(
        device float* accumulator [[buffer(0)]],
        device const float* expert_output [[buffer(1)]],
        constant MoeAccumParams& params [[buffer(2)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n_elements) return;
    accumulator[gid] = params.routing_weight * expert_output[gid];
}
