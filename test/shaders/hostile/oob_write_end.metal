// HOSTILE (test/hostile.test.ts): the softmax-topk interface; the last
// token's thread 0 writes one element past the end of out_weights
// (buffer 3). With n_tokens * top_k a multiple of 4 floats the end of the
// buffer is the guard page: the write faults, and moe verify reports the
// buffer, the byte offset and the thread.
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
    if (tiitg < p.top_k) {
        const uint o = token * p.top_k + tiitg;
        out_ids[o] = tiitg;
        out_weights[o] = 1.0f / float(p.top_k);
    }
    if (token == p.n_tokens - 1 && tiitg == 0) {
        out_weights[p.n_tokens * p.top_k] = 0.0f;  // one past the end
    }
}
