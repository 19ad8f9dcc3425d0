// Planted bug: scores rows packed seq_len apart (the tight layout of a test
// oracle) instead of seq_stride apart, as the production cache layout needs.
#include <metal_stdlib>
using namespace metal;

kernel void attn_scores_batched(
        device const float* q            [[buffer(0)]],
        device const float* k_cache      [[buffer(1)]],
        device float*       scores       [[buffer(2)]],
        constant uint&      head_dim     [[buffer(3)]],
        constant uint&      kv_dim       [[buffer(4)]],
        constant uint&      seq_len      [[buffer(5)]],
        constant uint&      seq_stride   [[buffer(6)]],
        constant float&     scale        [[buffer(7)]],
        constant uint&      heads_per_kv [[buffer(8)]],
        constant uint&      num_seq_tgs  [[buffer(9)]],
        uint tg_id [[threadgroup_position_in_grid]],
        uint tid   [[thread_index_in_threadgroup]],
        uint ntg   [[threads_per_threadgroup]],
        uint lane  [[thread_index_in_simdgroup]],
        uint sg    [[simdgroup_index_in_threadgroup]]) {
    threadgroup float red[32];
    const uint pos  = tg_id % num_seq_tgs;
    const uint head = tg_id / num_seq_tgs;
    if (pos >= seq_len) return;
    const uint kvh = head / heads_per_kv;
    float acc = 0.0f;
    for (uint d = tid; d < head_dim; d += ntg) acc += q[head * head_dim + d] * k_cache[pos * kv_dim + kvh * head_dim + d];
    acc = simd_sum(acc);
    if (lane == 0) red[sg] = acc;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        float t = 0.0f;
        for (uint i = 0; i < (ntg + 31) / 32; ++i) t += red[i];
        scores[head * seq_len + pos] = t * scale;  // BUG: row stride must be seq_stride
    }
}
