// Correct variant: starts from the shared expert term (plus the residual when
// asked), then adds the routed experts in reverse slot order; the column from
// thread_position_in_grid.
#include <metal_stdlib>
using namespace metal;

struct WRP { uint t; uint k; uint h; uint r; };

kernel void moe_weighted_reduce_f32(
        constant WRP& p [[buffer(0)]],
        device const float* ew [[buffer(1)]],
        device const float* ye [[buffer(2)]],
        device const float* sg [[buffer(3)]],
        device const float* ys [[buffer(4)]],
        device const float* res [[buffer(5)]],
        device float* out [[buffer(6)]],
        uint2 gp [[thread_position_in_grid]]) {
    const uint c = gp.x, tok = gp.y;
    if (tok >= p.t || c >= p.h) return;
    const uint o = tok * p.h + c;
    float acc = sg[tok] * ys[o];
    if (p.r) acc = res[o] + acc;
    for (uint k = p.k; k-- > 0;) {
        const uint slot = tok * p.k + k;
        acc += ew[slot] * ye[slot * p.h + c];
    }
    out[o] = acc;
}
