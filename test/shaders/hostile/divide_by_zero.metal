// HOSTILE (test/hostile.test.ts): an integer division by zero. A GPU returns
// some value; the CPU traps (SIGFPE), and moe reports it with the thread.
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
    const uint zero = uint(p._pad);  // 0 at run time (the compiler cannot know)
    if (tiitg < p.top_k) {
        out_ids[token * p.top_k + tiitg] = (tiitg + 7u) / zero;
        out_weights[token * p.top_k + tiitg] = 0.0f;
    }
}
