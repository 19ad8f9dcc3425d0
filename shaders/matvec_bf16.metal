// matvec_bf16.metal — dense mat-vec with bfloat16 weights (the router, shared
// expert and attention projections of bf16 checkpoints), written for moe-kernels:
//
//   out[r] = Σ_j float(W[r, j]) · x[j]      W row-major [n, k] bfloat, x and out float
//   buffer(0) W [n·k] bfloat   buffer(1) x [k]   buffer(2) out [n]
//   buffer(3) constant MatvecBf16Params {n, k}
//   dispatchThreadgroups: ceil(n / 8) threadgroups of 256 threads: 8 rows per
//   threadgroup, one SIMD-group (32 lanes) per row; each lane sums a strided
//   slice of the row in f32, simd_sum folds the lanes.

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
    for (uint j = lane; j < p.k; j += 32) acc = fma(float(wr[j]), x[j], acc);
    acc = simd_sum(acc);
    if (lane == 0) out[row] = acc;
}
