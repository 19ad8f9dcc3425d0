// HOSTILE (test/safety-cpu.test.ts): fused_gelu_mul as a new user might write
// it, staging GELU(gate) in a threadgroup tile of 32 floats indexed by the
// thread's position in its threadgroup. Threadgroups have up to 256 threads:
// threads 32..255 write (and read) past the end of `tile`.
#include <metal_stdlib>
using namespace metal;

struct FusedGeluMulParams {
    uint n_elements;
};

static inline float gelu_tanh(float x) {
    float z = 0.79788456080286536f * x * fma(0.044715f * x, x, 1.0f);
    z = clamp(z, -10.0f, 10.0f);
    return 0.5f * x * (1.0f + precise::tanh(z));
}

kernel void fused_gelu_mul(
        device const float*          gate [[buffer(0)]],
        device const float*          up   [[buffer(1)]],
        device float*                out  [[buffer(2)]],
        constant FusedGeluMulParams& p    [[buffer(3)]],
        uint i   [[thread_position_in_grid]],
        uint tid [[thread_position_in_threadgroup]]) {
    threadgroup float tile[32];
    if (i >= p.n_elements) return;
    tile[tid] = gelu_tanh(gate[i]);
    out[i] = tile[tid] * up[i];
}
