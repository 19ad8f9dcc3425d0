// Correct variant: GELU through the identity ½(1 + tanh z) = σ(2z),
// GELU(x) = x / (1 + exp(−2z)) — no tanh, no clamp, exp overflow gives x/inf = 0.
#include <metal_stdlib>
using namespace metal;

struct FusedGeluMulParams { uint n_elements; };

kernel void fused_gelu_mul(
        device const float* g [[buffer(0)]],
        device const float* u [[buffer(1)]],
        device float* o [[buffer(2)]],
        constant FusedGeluMulParams& prm [[buffer(3)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= prm.n_elements) return;
    const float x = g[gid];
    const float z = 0.7978845608f * (x + 0.044715f * x * x * x);
    o[gid] = u[gid] * (x / (1.0f + exp(-2.0f * z)));
}
