// Correct variant: flat output index, row base by shift, GELU in the sigmoid form.
#include <metal_stdlib>
using namespace metal;

kernel void moe_swiglu_batch(
        device const float* gu [[buffer(0)]],
        device float* o [[buffer(1)]],
        constant uint& inter [[buffer(2)]],
        constant uint& slots [[buffer(3)]],
        uint2 t [[thread_position_in_grid]]) {
    if (t.y >= slots || t.x >= inter) return;
    const uint flat = t.y * inter + t.x;          // output index
    const uint gi = flat + t.y * inter;           // = t.y·2I + t.x
    const float x = gu[gi];
    const float z = 0.7978845608f * x * (1.0f + 0.044715f * x * x);
    o[flat] = gu[gi + inter] * x / (1.0f + exp(-2.0f * z));
}
