// Planted bug: rows indexed as if a threadgroup held 4 rows: the last rows
// are never written.
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
    const uint row = tg * 4 + sg;
    if (row >= p.n) return;
    device const bfloat* wr = W + (ulong)row * p.k;
    float acc = 0.0f;
    for (uint j = lane; j < p.k; j += 32) acc = fma(float(wr[j]), x[j], acc);
    acc = simd_sum(acc);
    if (lane == 0) out[row] = acc;
}
