// PLANTED BUG: every slot of a token uses the expert of its first slot. moe verify must FAIL.
// moe_expert_matvec.metal — expert-indexed mat-vec for the batched MoE path:
// every (token, slot) pair of one batch multiplies its token's input by the
// weights of the expert routed to that slot, in one dispatch (the gather-by-id
// pattern of MLX's gather_qmm and llama.cpp's mul_mv_id, for f32 weights).
//
//   buffer(0) w    float [n_experts, n_rows, k]   experts' weights, row-major
//   buffer(1) x    float [n_inputs, k]            one input row per token (x_per_pair = 0)
//                                                 or per pair (x_per_pair = 1)
//   buffer(2) ids  uint  [n_pairs]                expert of each pair
//   buffer(3) y    float [n_pairs, n_rows]
//   buffer(4) params
// One SIMD-group per output row: threadgroups (ceil(n_rows / 4), n_pairs) of 128.
#include <metal_stdlib>
using namespace metal;

struct MoeExpertMatvecParams {
    uint n_rows;
    uint k;
    uint n_pairs;
    uint top_k;       // pairs per token (input row of pair q is q / top_k)
    uint x_per_pair;  // 1: input row q for pair q
    uint n_experts;
};

kernel void moe_expert_matvec_f32(
        device const float* w   [[buffer(0)]],
        device const float* x   [[buffer(1)]],
        device const uint*  ids [[buffer(2)]],
        device float*       y   [[buffer(3)]],
        constant MoeExpertMatvecParams& p [[buffer(4)]],
        uint2 tg   [[threadgroup_position_in_grid]],
        uint  sg   [[simdgroup_index_in_threadgroup]],
        uint  lane [[thread_index_in_simdgroup]],
        uint  nsg  [[simdgroups_per_threadgroup]]) {
    const uint pair = tg.y;
    const uint row = tg.x * nsg + sg;
    if (pair >= p.n_pairs || row >= p.n_rows) return;
    const uint e = ids[pair / p.top_k * p.top_k];
    if (e >= p.n_experts) return;
    device const float* wr = w + ((ulong)e * p.n_rows + row) * p.k;
    device const float* xr = x + (ulong)(p.x_per_pair ? pair : pair / p.top_k) * p.k;
    float acc = 0.0f;
    for (uint i = lane; i < p.k; i += 32) acc = fma(wr[i], xr[i], acc);
    acc = simd_sum(acc);
    if (lane == 0) y[(ulong)pair * p.n_rows + row] = acc;
}
