// Planted bug: wrong rounding — the f32 result is truncated to bf16 (top 16
// bits kept) instead of rounded to nearest even.
#include <metal_stdlib>
using namespace metal;

struct FusedGeluMulParams { uint n_elements; };

static inline float gelu(float x) {
    float z = clamp(0.7978845608f * (x + 0.044715f * x * x * x), -15.0f, 15.0f);
    return 0.5f * x * (1.0f + precise::tanh(z));
}

kernel void fused_gelu_mul_bf16(
        device const bfloat* gate_out [[buffer(0)]],
        device const bfloat* up_out [[buffer(1)]],
        device ushort* output [[buffer(2)]],
        constant FusedGeluMulParams& params [[buffer(3)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n_elements) return;
    const float r = gelu(float(gate_out[gid])) * float(up_out[gid]);
    output[gid] = ushort(as_type<uint>(r) >> 16);
}
