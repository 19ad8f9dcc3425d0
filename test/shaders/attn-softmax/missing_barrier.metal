// Planted bug: thread 0 folds the per-SIMD-group partial sums without a
// barrier after the other SIMD groups store theirs (it may read the stale
// partial maxima left in the same scratch slots).
#include <metal_stdlib>
using namespace metal;

kernel void attn_softmax_batched(
        device float*  scores     [[buffer(0)]],
        constant uint& seq_len    [[buffer(1)]],
        constant uint& seq_stride [[buffer(2)]],
        uint head [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint lane [[thread_index_in_simdgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]]) {
    threadgroup float red[32];
    threadgroup float bmax;
    threadgroup float bsum;
    device float* row = scores + head * seq_stride;
    const uint nsg = (ntg + 31) / 32;

    float m = -FLT_MAX;
    for (uint i = tid; i < seq_len; i += ntg) m = max(m, row[i]);
    m = simd_max(m);
    if (lane == 0) red[sg] = m;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        float a = red[0];
        for (uint i = 1; i < nsg; ++i) a = max(a, red[i]);
        bmax = a;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    m = bmax;

    float s = 0.0f;
    for (uint i = tid; i < seq_len; i += ntg) {
        const float e = exp(row[i] - m);
        row[i] = e;
        s += e;
    }
    s = simd_sum(s);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (lane == 0) red[sg] = s;
    // BUG: threadgroup_barrier(mem_flags::mem_threadgroup) missing here
    if (tid == 0) {
        float a = 0.0f;
        for (uint i = 0; i < nsg; ++i) a += red[i];
        bsum = a;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const float inv = 1.0f / bsum;
    for (uint i = tid; i < seq_len; i += ntg) row[i] *= inv;
}
