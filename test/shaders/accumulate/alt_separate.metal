// Correct variant: the product and the add rounded separately (no fma), via a local.
#include <metal_stdlib>
using namespace metal;

struct AccP { uint n; float w; };

kernel void moe_accumulate(
        device float* acc [[buffer(0)]],
        device const float* x [[buffer(1)]],
        constant AccP& p [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= p.n) return;
    const float prev = acc[i];
    const float contrib = x[i] * p.w;
    acc[i] = contrib + prev;
}
