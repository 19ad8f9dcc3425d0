// Correct variant: slots summed in reverse order with separate multiply and add.
#include <metal_stdlib>
using namespace metal;

struct WS { uint h; uint k; };

kernel void moe_weighted_sum(
        device const float* y [[buffer(0)]],
        device const float* w [[buffer(1)]],
        device float* o [[buffer(2)]],
        constant WS& p [[buffer(3)]],
        uint d [[thread_position_in_grid]]) {
    if (d >= p.h) return;
    float s = 0.0f;
    for (uint k = p.k; k > 0; --k) {
        const float prod = w[k - 1] * y[(k - 1) * p.h + d];
        s = s + prod;
    }
    o[d] = s;
}
