// Planted bug: the 0.044715·x³ term of the tanh argument is missing.
#include <metal_stdlib>
using namespace metal;

struct FusedGeluMulParams { uint n_elements; };

kernel void fused_gelu_mul(
        device const float* gate_out [[buffer(0)]],
        device const float* up_out [[buffer(1)]],
        device float* output [[buffer(2)]],
        constant FusedGeluMulParams& params [[buffer(3)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n_elements) return;
    const float x = gate_out[gid];
    const float z = clamp(0.7978845608f * x, -15.0f, 15.0f);
    output[gid] = 0.5f * x * (1.0f + precise::tanh(z)) * up_out[gid];
}
