// Planted bug: gate and up swapped — GELU(up)·gate.
#include <metal_stdlib>
using namespace metal;

struct FusedGeluMulParams { uint n_elements; };

static inline float gelu(float x) {
    float z = clamp(0.7978845608f * (x + 0.044715f * x * x * x), -15.0f, 15.0f);
    return 0.5f * x * (1.0f + precise::tanh(z));
}

kernel void moe_swiglu_fused(
        device const float* gate_up [[buffer(0)]],
        device float* output [[buffer(1)]],
        constant FusedGeluMulParams& params [[buffer(2)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n_elements) return;
    output[gid] = gelu(gate_up[params.n_elements + gid]) * gate_up[gid];
}
