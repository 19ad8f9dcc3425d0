// HOSTILE (test/hostile.test.ts): reads logits[-1] (a signed index one before
// the row of token 0). With n_tokens * n_experts a multiple of 4096 floats
// (16 KiB) the buffer starts on a page boundary, right after the leading
// guard: the read faults, and moe verify reports 4 bytes before the start of
// buffer(1). (Smaller buffers start inside their first page, after slack
// bytes that hold a NaN canary: the read is not a fault there, but the NaN
// reaches the output.)
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
    device const float* row = logits + token * p.n_experts;
    const float before = row[int(tiitg) - 1];  // thread 0: one element before the row
    if (tiitg < p.top_k) {
        const uint o = token * p.top_k + tiitg;
        out_ids[o] = tiitg;
        out_weights[o] = before;
    }
}
