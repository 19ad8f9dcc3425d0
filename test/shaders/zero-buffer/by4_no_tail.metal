// Planted bug: each of the first n/4 threads zeroes 4 consecutive elements,
// and the tail (n mod 4 elements) is forgotten.
#include <metal_stdlib>
using namespace metal;

struct ZeroParams { uint n_elements; };

kernel void zero_buffer(
        device float* buffer [[buffer(0)]],
        constant ZeroParams& params [[buffer(1)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n_elements / 4) return;
    for (uint j = 0; j < 4; ++j) buffer[4 * gid + j] = 0.0f;
}
