// Correct variant: one flat row index r = t·K + k, pointer per row, sigmoid-form GELU.
#include <metal_stdlib>
using namespace metal;

struct SeqP { uint inter; uint k; uint t; };

kernel void moe_swiglu_seq(
        device const float* gu [[buffer(0)]],
        device float* o [[buffer(1)]],
        constant SeqP& p [[buffer(2)]],
        uint3 g [[thread_position_in_grid]]) {
    if (g.z >= p.t || g.y >= p.k || g.x >= p.inter) return;
    const uint r = g.z * p.k + g.y;
    device const float* row = gu + 2u * p.inter * r;
    const float x = row[g.x];
    const float z = 0.7978845608f * (x + 0.044715f * x * x * x);
    o[r * p.inter + g.x] = row[p.inter + g.x] * (x / (1.0f + exp(-2.0f * z)));
}
