// Planted bug: softmax without subtracting the row maximum (overflows to
// inf/NaN for large scores, underflows to 0/0 for very negative ones).
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
    float s = 0.0f;
    for (uint i = tid; i < seq_len; i += ntg) {
        const float e = exp(row[i]);  // BUG: exp(row[i] - max)
        row[i] = e;
        s += e;
    }
    s = simd_sum(s);
    if (lane == 0) red[sg] = s;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        float a = 0.0f;
        for (uint i = 0; i < (ntg + 31) / 32; ++i) a += red[i];
        red[32] = a;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const float inv = 1.0f / red[32];
    for (uint i = tid; i < seq_len; i += ntg) row[i] *= inv;
}
