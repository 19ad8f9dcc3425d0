// Planted bug: sigmoid of the negated gate, x / (1 + exp(+g)).
#include <metal_stdlib>
using namespace metal;

kernel void sigmoid_gate(
        device float*       x    [[buffer(0)]],
        device const float* gate [[buffer(1)]],
        constant uint&      dim  [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= dim) return;
    x[i] = x[i] / (1.0f + exp(gate[i]));  // BUG: exp(-gate[i])
}
