// Correct variant of attn_softmax_batched written differently: one pass of
// online softmax per thread (running max with a rescaled running sum), the
// 256 (max, sum) pairs merged serially by thread 0, then one pass that writes
// exp(s - max) / sum straight from the untouched input.
#include <metal_stdlib>
using namespace metal;

kernel void attn_softmax_batched(
        device float*  s      [[buffer(0)]],
        constant uint& n      [[buffer(1)]],
        constant uint& stride [[buffer(2)]],
        uint3 tgp [[threadgroup_position_in_grid]],
        uint3 lid [[thread_position_in_threadgroup]],
        uint3 tpg [[threads_per_threadgroup]]) {
    threadgroup float tm[256];
    threadgroup float ts[256];
    threadgroup float total[2];
    device float* row = s + tgp.x * stride;
    const uint t = lid.x;

    float m = -FLT_MAX;
    float sum = 0.0f;
    for (uint i = t; i < n; i += tpg.x) {
        const float v = row[i];
        if (v > m) {
            sum = sum * exp(m - v) + 1.0f;
            m = v;
        } else {
            sum += exp(v - m);
        }
    }
    tm[t] = m;
    ts[t] = sum;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (t == 0) {
        float gm = -FLT_MAX;
        for (uint j = 0; j < tpg.x; ++j) gm = max(gm, tm[j]);
        float gs = 0.0f;
        for (uint j = 0; j < tpg.x; ++j) gs += ts[j] * exp(tm[j] - gm);
        total[0] = gm;
        total[1] = gs;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const float gm = total[0];
    const float gs = total[1];
    for (uint i = t; i < n; i += tpg.x) row[i] = exp(row[i] - gm) / gs;
}
