// Planted bug: unrolled by 4 without the tail loop — the last k mod 4
// columns are dropped.
#include <metal_stdlib>
using namespace metal;

struct MatvecParams { uint m; uint k; uint n; };

kernel void naive_matvec_f32(
        device const float* weight [[buffer(0)]],
        device const float* input [[buffer(1)]],
        device float* output [[buffer(2)]],
        constant MatvecParams& params [[buffer(3)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n) return;
    device const float* row = weight + gid * params.k;
    float sum = 0.0f;
    for (uint i = 0; i + 4 <= params.k; i += 4) {
        sum += row[i] * input[i] + row[i + 1] * input[i + 1] + row[i + 2] * input[i + 2] + row[i + 3] * input[i + 3];
    }
    output[gid] = sum;
}
