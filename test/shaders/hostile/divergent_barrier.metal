// HOSTILE (test/hostile.test.ts): the last thread of each threadgroup returns
// before the barrier the others wait at. On a GPU that is undefined
// behaviour (a hang, or garbage); moe reports the divergent barrier.
#include <metal_stdlib>
using namespace metal;

struct MoeSoftmaxTopkParams {
    uint  n_tokens;
    uint  n_experts;
    uint  top_k;
    float _pad;
};

kernel void moe_softmax_topk_f32(
        constant MoeSoftmaxTopkParams& p  [[buffer(0)]],
        device const float*  logits       [[buffer(1)]],
        device uint*         out_ids      [[buffer(2)]],
        device float*        out_weights  [[buffer(3)]],
        threadgroup float*   shmem        [[threadgroup(0)]],
        uint3 tgpig [[threadgroup_position_in_grid]],
        uint  tiitg [[thread_index_in_threadgroup]]) {
    const uint token = tgpig.x;
    const uint tg_sz = min(p.n_experts, 128u);
    if (tiitg == tg_sz - 1 && tg_sz > 1) return;  // leaves before the barrier
    shmem[tiitg] = logits[token * p.n_experts + tiitg];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tiitg < p.top_k) {
        const uint o = token * p.top_k + tiitg;
        out_ids[o] = tiitg;
        out_weights[o] = shmem[tiitg];
    }
}
