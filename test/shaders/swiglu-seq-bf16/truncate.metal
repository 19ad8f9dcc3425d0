// Planted bug: wrong rounding — bf16 store by truncation (top 16 bits).
#include <metal_stdlib>
using namespace metal;

struct MoeSwigluSeqParams { uint intermediate; uint top_k; uint n_tokens; };

static inline float gelu(float x) {
    float z = clamp(0.7978845608f * (x + 0.044715f * x * x * x), -15.0f, 15.0f);
    return 0.5f * x * (1.0f + precise::tanh(z));
}

kernel void moe_swiglu_seq_bf16(
        device const bfloat* gate_up_buf [[buffer(0)]],
        device ushort* output_buf [[buffer(1)]],
        constant MoeSwigluSeqParams& params [[buffer(2)]],
        uint3 tid [[thread_position_in_grid]]) {
    uint i = tid.x, slot = tid.y, tok = tid.z;
    if (tok >= params.n_tokens || slot >= params.top_k || i >= params.intermediate) return;
    uint row = tok * params.top_k + slot;
    uint base = row * 2 * params.intermediate;
    float r = gelu(float(gate_up_buf[base + i])) * float(gate_up_buf[base + params.intermediate + i]);
    output_buf[row * params.intermediate + i] = ushort(as_type<uint>(r) >> 16);
}
