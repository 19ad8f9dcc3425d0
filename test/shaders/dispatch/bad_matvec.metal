// PLANTED BUG for `moe dispatch --shader`: naive_matvec_f32 skips the last
// input column (off by one). With --strategy loop the router is the first
// stage that uses it, so the layer must FAIL at 'router'.
#include <metal_stdlib>
using namespace metal;

struct MatvecParams {
    uint m;
    uint k;
    uint n;
};

kernel void naive_matvec_f32(
    device const float* weight [[buffer(0)]],
    device const float* input  [[buffer(1)]],
    device float*       output [[buffer(2)]],
    constant MatvecParams& params [[buffer(3)]],
    uint gid [[thread_position_in_grid]]) {
    if (gid >= params.n) return;
    float acc = 0.0f;
    for (uint i = 0; i + 1 < params.k; ++i) acc += weight[gid * params.k + i] * input[i];
    output[gid] = acc;
}
