// Planted bug: wrong activation, x * silu(g) = x * g * sigmoid(g) in place of
// x * sigmoid(g) (the MLP's SiLU where the attention gate wants a sigmoid).
#include <metal_stdlib>
using namespace metal;

kernel void sigmoid_gate(
        device float*       x    [[buffer(0)]],
        device const float* gate [[buffer(1)]],
        constant uint&      dim  [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= dim) return;
    const float g = gate[i];
    x[i] = x[i] * (g / (1.0f + exp(-g)));  // BUG: the gate is sigmoid(g), not silu(g)
}
