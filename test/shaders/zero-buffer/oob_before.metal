// Planted bug: thread 0 also zeroes the float just before the buffer (an
// index computed as gid - 1 without a check). The outputs compare equal:
// only a guard before the buffer sees it.
#include <metal_stdlib>
using namespace metal;

struct ZeroParams { uint n_elements; };

kernel void zero_buffer_oob_before(
        device float* buffer [[buffer(0)]],
        constant ZeroParams& params [[buffer(1)]],
        uint gid [[thread_position_in_grid]]) {
    buffer[gid] = 0.0f;
    if (gid == 0 && params.n_elements > 0) buffer[int(gid) - 1] = 0.0f;
}
