// Correct variant of attn_scores_batched written differently: no SIMD-group
// collectives; every thread stores its strided partial dot product in
// threadgroup memory and a pairwise tree folds the 256 partials.
#include <metal_stdlib>
using namespace metal;

kernel void attn_scores_batched(
        device const float* Q        [[buffer(0)]],
        device const float* K        [[buffer(1)]],
        device float*       S        [[buffer(2)]],
        constant uint&      hd       [[buffer(3)]],
        constant uint&      kvd      [[buffer(4)]],
        constant uint&      n_pos    [[buffer(5)]],
        constant uint&      stride   [[buffer(6)]],
        constant float&     scale    [[buffer(7)]],
        constant uint&      group    [[buffer(8)]],
        constant uint&      per_head [[buffer(9)]],
        uint3 tgp [[threadgroup_position_in_grid]],
        uint3 lid [[thread_position_in_threadgroup]],
        uint3 tpg [[threads_per_threadgroup]]) {
    threadgroup float part[256];
    const uint h = tgp.x / per_head;
    const uint p = tgp.x - h * per_head;
    if (p >= n_pos) return;
    const uint t = lid.x;
    const uint n = tpg.x;

    const uint kv = h / group;
    float acc = 0.0f;
    uint d = t;
    while (d < hd) {
        acc += Q[h * hd + d] * K[p * kvd + kv * hd + d];
        d += n;
    }
    part[t] = acc;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint half_n = n / 2; half_n > 0; half_n /= 2) {
        if (t < half_n) part[t] += part[t + half_n];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (t == 0) S[h * stride + p] = scale * part[0];
}
