// Planted bug: wrong index — gate_up read as [top_k, n_tokens, 2I]
// (row k·n_tokens + t) while the output is written token-major (t·top_k + k).
#include <metal_stdlib>
using namespace metal;

struct MoeSwigluSeqParams { uint intermediate; uint top_k; uint n_tokens; };

static inline float gelu(float x) {
    float z = clamp(0.7978845608f * (x + 0.044715f * x * x * x), -15.0f, 15.0f);
    return 0.5f * x * (1.0f + precise::tanh(z));
}

kernel void moe_swiglu_seq(
        device const float* gate_up_buf [[buffer(0)]],
        device float* output_buf [[buffer(1)]],
        constant MoeSwigluSeqParams& params [[buffer(2)]],
        uint3 tid [[thread_position_in_grid]]) {
    uint i = tid.x, slot = tid.y, tok = tid.z;
    if (tok >= params.n_tokens || slot >= params.top_k || i >= params.intermediate) return;
    uint in_row = slot * params.n_tokens + tok;
    uint base = in_row * 2 * params.intermediate;
    output_buf[(tok * params.top_k + slot) * params.intermediate + i] = gelu(gate_up_buf[base + i]) * gate_up_buf[base + params.intermediate + i];
}
