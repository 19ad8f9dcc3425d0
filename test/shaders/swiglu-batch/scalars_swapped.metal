// Planted bug: the two scalars are read from swapped indices (intermediate
// taken from buffer(3), top_k from buffer(2)).
#include <metal_stdlib>
using namespace metal;

static inline float gelu(float x) {
    float z = clamp(0.7978845608f * (x + 0.044715f * x * x * x), -15.0f, 15.0f);
    return 0.5f * x * (1.0f + precise::tanh(z));
}

kernel void moe_swiglu_batch(
        device const float* gate_up_buf [[buffer(0)]],
        device float* output_buf [[buffer(1)]],
        constant uint& top_k [[buffer(2)]],
        constant uint& intermediate [[buffer(3)]],
        uint2 tid [[thread_position_in_grid]]) {
    uint i = tid.x, slot = tid.y;
    if (slot >= top_k || i >= intermediate) return;
    uint base = slot * 2 * intermediate;
    output_buf[slot * intermediate + i] = gelu(gate_up_buf[base + i]) * gate_up_buf[base + intermediate + i];
}
