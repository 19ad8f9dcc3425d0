// attention.metal — single-token (decode) GPU attention: the four kernels of
// moeflux's gpu_attn_fuse, written for moe-kernels. Entry names, buffer
// indices and launch geometry follow the moeflux host code so engines' own
// shaders verify against the same specs:
//
//   attn_scores_batched   scores[h*seq_stride + p] = scale * dot(Q[h], K[p, kv(h)])
//       buffer(0) Q [num_heads*head_dim]   buffer(1) K [seq_len*kv_dim]
//       buffer(2) scores [num_heads*seq_stride] (only p < seq_len written)
//       buffer(3..9) head_dim, kv_dim, seq_len, seq_stride, scale (float),
//                    heads_per_kv, num_seq_tgs (= seq_len)
//       grid: seq_len*num_heads threadgroups of 256; tg = p + h*num_seq_tgs
//   attn_softmax_batched  per-head softmax of scores[h, 0..seq_len), in place
//       buffer(0) scores, buffer(1) seq_len, buffer(2) seq_stride
//       grid: num_heads threadgroups of 256
//   attn_values_batched   out[h*head_dim + d] = sum_p scores[h, p] * V[p, kv(h), d]
//       buffer(0) scores, buffer(1) V [seq_len*kv_dim], buffer(2) out,
//       buffer(3..7) head_dim, kv_dim, seq_len, seq_stride, heads_per_kv
//       grid: ceil(num_heads*head_dim / 256) threadgroups of 256
//   sigmoid_gate          x[i] *= 1 / (1 + exp(-gate[i]))
//       buffer(0) x (in/out), buffer(1) gate, buffer(2) dim
//       grid: ceil(dim / 256) threadgroups of 256
//
// GQA: kv(h) = h / heads_per_kv, and kv_dim = num_kv_heads * head_dim.

#include <metal_stdlib>
using namespace metal;

// Sum (or max) of one value per thread over the whole threadgroup: a SIMD-group
// collective, then thread 0 folds the per-SIMD-group results and broadcasts
// through slot 32 of `tg` (33 floats). Every thread of the group must call it.
// Back-to-back calls may share `tg`: slots 0..31 are rewritten only after every
// thread has passed the previous call's second barrier (so thread 0 is done
// reading them), and slot 32 only after every thread has read it.
static inline float group_sum(float v, threadgroup float* tg,
                              uint tid, uint lane, uint sg, uint ntg) {
    const float part = simd_sum(v);
    if (lane == 0) tg[sg] = part;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        float acc = 0.0f;
        for (uint i = 0; i < (ntg + 31) / 32; ++i) acc += tg[i];
        tg[32] = acc;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return tg[32];
}

static inline float group_max(float v, threadgroup float* tg,
                              uint tid, uint lane, uint sg, uint ntg) {
    const float part = simd_max(v);
    if (lane == 0) tg[sg] = part;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        float acc = tg[0];
        for (uint i = 1; i < (ntg + 31) / 32; ++i) acc = max(acc, tg[i]);
        tg[32] = acc;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return tg[32];
}

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
    threadgroup float red[33];
    const uint pos  = tg_id % num_seq_tgs;
    const uint head = tg_id / num_seq_tgs;
    if (pos >= seq_len) return;  // the whole threadgroup leaves together

    device const float* qh = q + (ulong)head * head_dim;
    device const float* kp = k_cache + (ulong)pos * kv_dim + (ulong)(head / heads_per_kv) * head_dim;

    float acc = 0.0f;
    for (uint d = tid; d < head_dim; d += ntg) acc = fma(qh[d], kp[d], acc);
    const float dot = group_sum(acc, red, tid, lane, sg, ntg);
    if (tid == 0) scores[(ulong)head * seq_stride + pos] = dot * scale;
}

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
    device float* row = scores + (ulong)head * seq_stride;

    // 1. max (finite start: fast math assumes no infinities)
    float m = -FLT_MAX;
    for (uint i = tid; i < seq_len; i += ntg) m = max(m, row[i]);
    m = group_max(m, red, tid, lane, sg, ntg);

    // 2. exponentials, kept in place, and their sum. Each thread revisits only
    //    the elements it wrote, so no barrier is needed between the passes.
    float s = 0.0f;
    for (uint i = tid; i < seq_len; i += ntg) {
        const float e = exp(row[i] - m);
        row[i] = e;
        s += e;
    }
    s = group_sum(s, red, tid, lane, sg, ntg);

    // 3. normalise
    const float inv = 1.0f / s;
    for (uint i = tid; i < seq_len; i += ntg) row[i] *= inv;
}

kernel void attn_values_batched(
        device const float* scores       [[buffer(0)]],
        device const float* v_cache      [[buffer(1)]],
        device float*       out          [[buffer(2)]],
        constant uint&      head_dim     [[buffer(3)]],
        constant uint&      kv_dim       [[buffer(4)]],
        constant uint&      seq_len      [[buffer(5)]],
        constant uint&      seq_stride   [[buffer(6)]],
        constant uint&      heads_per_kv [[buffer(7)]],
        uint gid [[thread_position_in_grid]]) {
    // The grid is rounded up to whole threadgroups; num_heads*head_dim equals
    // heads_per_kv * kv_dim, the number of outputs.
    if (gid >= heads_per_kv * kv_dim) return;
    const uint head = gid / head_dim;
    const uint d    = gid - head * head_dim;

    device const float* s = scores + (ulong)head * seq_stride;
    device const float* v = v_cache + (ulong)(head / heads_per_kv) * head_dim + d;
    float acc = 0.0f;
    for (uint p = 0; p < seq_len; ++p) acc = fma(s[p], v[(ulong)p * kv_dim], acc);
    out[gid] = acc;
}

kernel void sigmoid_gate(
        device float*       x    [[buffer(0)]],
        device const float* gate [[buffer(1)]],
        constant uint&      dim  [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= dim) return;
    x[i] = x[i] / (1.0f + exp(-gate[i]));
}
