// Planted bug: wrong index — the weight read as column-major [k, n]
// (weight[c·n + r]) instead of row-major [n, k].
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
    float sum = 0.0f;
    for (uint i = 0; i < params.k; i++) sum += weight[i * params.n + gid] * input[i];
    output[gid] = sum;
}
