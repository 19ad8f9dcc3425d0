// Planted bug: scores rows read seq_len apart (tight packing) instead of
// seq_stride apart.
#include <metal_stdlib>
using namespace metal;

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
    if (gid >= heads_per_kv * kv_dim) return;
    const uint h = gid / head_dim;
    const uint d = gid % head_dim;
    const uint kvh = h / heads_per_kv;
    float acc = 0.0f;
    for (uint p = 0; p < seq_len; ++p)
        acc += scores[h * seq_len + p] * v_cache[p * kv_dim + kvh * head_dim + d];  // BUG: h * seq_stride
    out[gid] = acc;
}
