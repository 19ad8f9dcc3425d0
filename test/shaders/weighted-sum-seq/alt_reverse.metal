// Correct variant: reverse slot order, row pointers, separate multiply and add.
#include <metal_stdlib>
using namespace metal;

struct WSS { uint h; uint k; uint t; };

kernel void moe_weighted_sum_seq(
        device const float* y [[buffer(0)]],
        device const float* w [[buffer(1)]],
        device float* o [[buffer(2)]],
        constant WSS& p [[buffer(3)]],
        uint2 g [[thread_position_in_grid]]) {
    if (g.y >= p.t || g.x >= p.h) return;
    device const float* wt = w + g.y * p.k;
    float s = 0.0f;
    for (int k = int(p.k) - 1; k >= 0; --k) {
        device const float* row = y + (g.y * p.k + uint(k)) * p.h;
        s += row[g.x] * wt[k];
    }
    o[g.y * p.h + g.x] = s;
}
