// Planted bug: wrong activation — SiLU(gate)·up instead of GELU-tanh(gate)·up.
#include <metal_stdlib>
using namespace metal;

struct MoeSwigluSeqParams { uint intermediate; uint top_k; uint n_tokens; };

kernel void moe_swiglu_seq(
        device const float* gate_up_buf [[buffer(0)]],
        device float* output_buf [[buffer(1)]],
        constant MoeSwigluSeqParams& params [[buffer(2)]],
        uint3 tid [[thread_position_in_grid]]) {
    uint i = tid.x, slot = tid.y, tok = tid.z;
    if (tok >= params.n_tokens || slot >= params.top_k || i >= params.intermediate) return;
    uint row = tok * params.top_k + slot;
    uint base = row * 2 * params.intermediate;
    float g = gate_up_buf[base + i];
    output_buf[row * params.intermediate + i] = g / (1.0f + exp(-g)) * gate_up_buf[base + params.intermediate + i];
}
