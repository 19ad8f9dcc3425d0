// Correct variant: bf16 expert outputs as ushort words widened by hand,
// reverse slot order.
#include <metal_stdlib>
using namespace metal;

struct WSS { uint h; uint k; uint t; };

kernel void moe_weighted_sum_seq_bf16_input(
        device const ushort* y [[buffer(0)]],
        device const float* w [[buffer(1)]],
        device float* o [[buffer(2)]],
        constant WSS& p [[buffer(3)]],
        uint2 g [[thread_position_in_grid]]) {
    if (g.y >= p.t || g.x >= p.h) return;
    float s = 0.0f;
    for (uint k = p.k; k-- > 0;) {
        const uint slot = g.y * p.k + k;
        s += as_type<float>(uint(y[slot * p.h + g.x]) << 16) * w[slot];
    }
    o[g.y * p.h + g.x] = s;
}
