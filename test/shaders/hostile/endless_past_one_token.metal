// HOSTILE (test/cli-bench.test.ts, test/cli-dispatch.test.ts): moe_softmax_topk_f32
// that finishes at once for a single token and never ends for more: a run
// with a later case or stage that hangs, to interrupt after the first one
// finished. Its outputs are not a softmax (uniform weights, ids 0..k-1).
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
    if (p.n_tokens > 1 && token == 0 && tiitg == 0) {
        while (true) {
        }
    }
    if (tiitg < p.top_k) {
        const uint o = token * p.top_k + tiitg;
        out_ids[o] = tiitg;
        out_weights[o] = 1.0f / float(p.top_k);
    }
}
