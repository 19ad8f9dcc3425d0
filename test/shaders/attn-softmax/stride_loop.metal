// Planted bug: the softmax runs over the whole seq_stride row instead of the
// first seq_len positions (stale cache slots leak into the distribution).
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
    threadgroup float red[33];
    device float* row = scores + head * seq_stride;
    const uint n = seq_stride;  // BUG: should be seq_len
    float m = -FLT_MAX;
    for (uint i = tid; i < n; i += ntg) m = max(m, row[i]);
    m = simd_max(m);
    if (lane == 0) red[sg] = m;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        float a = red[0];
        for (uint i = 1; i < (ntg + 31) / 32; ++i) a = max(a, red[i]);
        red[32] = a;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    m = red[32];
    float s = 0.0f;
    for (uint i = tid; i < n; i += ntg) {
        const float e = exp(row[i] - m);
        row[i] = e;
        s += e;
    }
    s = simd_sum(s);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (lane == 0) red[sg] = s;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        float a = 0.0f;
        for (uint i = 0; i < (ntg + 31) / 32; ++i) a += red[i];
        red[32] = a;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const float inv = 1.0f / red[32];
    for (uint i = tid; i < n; i += ntg) row[i] *= inv;
}
