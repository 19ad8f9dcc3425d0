// Correct variant of sigmoid_gate written differently: the overflow-free
// form of the sigmoid, e = exp(-|g|), sigma = g >= 0 ? 1/(1+e) : e/(1+e),
// applied as a multiplication.
#include <metal_stdlib>
using namespace metal;

kernel void sigmoid_gate(
        device float*       out   [[buffer(0)]],
        device const float* g     [[buffer(1)]],
        constant uint&      n     [[buffer(2)]],
        uint3 tgp [[threadgroup_position_in_grid]],
        uint3 lid [[thread_position_in_threadgroup]],
        uint3 tpg [[threads_per_threadgroup]]) {
    const uint i = tgp.x * tpg.x + lid.x;
    if (i < n) {
        const float gi = g[i];
        const float e = exp(-fabs(gi));
        const float sig = (gi >= 0.0f ? 1.0f : e) / (1.0f + e);
        out[i] = sig * out[i];
    }
}
