// HOSTILE (test/hostile.test.ts): 36 000 bytes of threadgroup variables, over
// Metal's 32 KiB, on top of the dynamic threadgroup memory. Metal would
// refuse the pipeline; moe refuses the dispatch with the figures.
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
    threadgroup float big[9000];
    const uint token = tgpig.x;
    big[tiitg] = logits[token * p.n_experts + tiitg];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tiitg < p.top_k) {
        out_ids[token * p.top_k + tiitg] = tiitg;
        out_weights[token * p.top_k + tiitg] = big[tiitg];
    }
}
