// Correct variant: pointers to the two halves, GELU in the sigmoid form.
#include <metal_stdlib>
using namespace metal;

struct GeluN { uint n; };

kernel void moe_swiglu_fused(
        device const float* gu [[buffer(0)]],
        device float* o [[buffer(1)]],
        constant GeluN& prm [[buffer(2)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= prm.n) return;
    device const float* gate = gu;
    device const float* up = gu + prm.n;
    const float x = gate[gid];
    const float z = 0.7978845608f * (x + 0.044715f * x * x * x);
    o[gid] = x / (1.0f + exp(-2.0f * z)) * up[gid];
}
