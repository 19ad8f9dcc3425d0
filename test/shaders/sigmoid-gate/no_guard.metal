// Planted bug: no bounds check although the grid is rounded up to whole
// threadgroups of 256, so the idle tail reads and writes past both buffers.
#include <metal_stdlib>
using namespace metal;

kernel void sigmoid_gate(
        device float*       x    [[buffer(0)]],
        device const float* gate [[buffer(1)]],
        constant uint&      dim  [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    x[i] = x[i] / (1.0f + exp(-gate[i]));
}
