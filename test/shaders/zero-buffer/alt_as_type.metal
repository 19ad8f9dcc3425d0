// Correct variant: stores the all-zero bit pattern (as_type), guarded by a
// comparison written the other way round.
#include <metal_stdlib>
using namespace metal;

struct ZP { uint n; };

kernel void zero_buffer(
        device float* b [[buffer(0)]],
        constant ZP& p [[buffer(1)]],
        uint i [[thread_position_in_grid]]) {
    if (p.n > i) b[i] = as_type<float>(0u);
}
