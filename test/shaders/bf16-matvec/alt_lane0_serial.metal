// Correct variant: lane 0 of each SIMD-group sums its whole row serially.
// (A copy of shaders/matvec_bf16.metal with that one change.)
#include <metal_stdlib>
using namespace metal;

struct MatvecBf16Params {
    uint n;
    uint k;
};

kernel void matvec_bf16_f32(
        device const bfloat*       W   [[buffer(0)]],
        device const float*        x   [[buffer(1)]],
        device float*              out [[buffer(2)]],
        constant MatvecBf16Params& p   [[buffer(3)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint lane [[thread_index_in_simdgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]]) {
    const uint row = tg * 8 + sg;
    if (row >= p.n) return;
    device const bfloat* wr = W + (ulong)row * p.k;
    float acc = 0.0f;
    if (lane != 0) return;
    for (uint j = 0; j < p.k; ++j) acc += float(wr[j]) * x[j];
    out[row] = acc;
}
