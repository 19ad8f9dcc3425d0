// HOSTILE (test/safety-cpu.test.ts): thread 0 of each threadgroup writes the
// element just past the end of the [[threadgroup(0)]] buffer, whose length
// is (2 · threads + n_experts) floats.
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
        uint  tiitg [[thread_index_in_threadgroup]],
        uint  tg_sz [[threads_per_threadgroup]]) {
    const uint token = tgpig.x;
    shmem[tiitg] = logits[token * p.n_experts];
    if (tiitg == 0) shmem[2 * tg_sz + p.n_experts] = 1.0f;
    if (tiitg < p.top_k) {
        const uint o = token * p.top_k + tiitg;
        out_ids[o] = tiitg;
        out_weights[o] = 1.0f / float(p.top_k);
    }
}
