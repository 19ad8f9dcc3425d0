// Barrier-free kernel for `npm run bench:cpu`: out = GELU(tanh)(gate) * up.
#include <metal_stdlib>
using namespace metal;

kernel void bench_gelu_mul(device const float* gate [[buffer(0)]],
                           device const float* up   [[buffer(1)]],
                           device float*       out  [[buffer(2)]],
                           constant uint&      n    [[buffer(3)]],
                           uint i [[thread_position_in_grid]]) {
    if (i >= n) return;
    const float x = gate[i];
    float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    inner = clamp(inner, -15.0f, 15.0f);
    out[i] = 0.5f * x * (1.0f + tanh(inner)) * up[i];
}
