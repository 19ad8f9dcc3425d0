// Planted bug: zeroing by multiplying (buffer[i] *= 0): NaN or inf left in
// pooled memory stays NaN.
#include <metal_stdlib>
using namespace metal;

struct ZeroParams { uint n_elements; };

kernel void zero_buffer(
        device float* buffer [[buffer(0)]],
        constant ZeroParams& params [[buffer(1)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n_elements) return;
    buffer[gid] *= 0.0f;
}
