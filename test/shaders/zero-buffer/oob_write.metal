// Planted bug: the last thread also zeroes element n, one float past the end
// of the buffer (an off-by-one store). Every element of the buffer is still
// written, so the outputs compare equal: only a guard after the buffer (the
// CPU backend's canary, the GPU backends' redzones) sees it.
#include <metal_stdlib>
using namespace metal;

struct ZeroParams { uint n_elements; };

kernel void zero_buffer_oob_write(
        device float* buffer [[buffer(0)]],
        constant ZeroParams& params [[buffer(1)]],
        uint gid [[thread_position_in_grid]]) {
    buffer[gid] = 0.0f;
    if (gid + 1 == params.n_elements) buffer[gid + 1] = 0.0f;
}
