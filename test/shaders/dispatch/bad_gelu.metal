// PLANTED BUG for `moe dispatch --shader`: fused_gelu_mul uses the sigmoid
// approximation x·σ(1.702x) instead of GELU's tanh form. The layer must FAIL
// and name the 'GELU·up' stage as the first divergence.
#include <metal_stdlib>
using namespace metal;

struct FusedGeluMulParams {
    uint n_elements;
};

kernel void fused_gelu_mul(
    device const float* gate_out [[buffer(0)]],
    device const float* up_out   [[buffer(1)]],
    device float*       output   [[buffer(2)]],
    constant FusedGeluMulParams& params [[buffer(3)]],
    uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n_elements) return;
    const float x = gate_out[gid];
    output[gid] = x / (1.0f + exp(-1.702f * x)) * up_out[gid];
}
