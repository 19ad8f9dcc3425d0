// A correct variant written differently: tree reductions through threadgroup
// memory that handle any threadgroup size, and a serial insertion-sort top-k
// by thread 0. moe verify must PASS it.
#include <metal_stdlib>
using namespace metal;

struct RouterParams {
    uint n_tokens;
    uint n_experts;
    uint top_k;
    float pad;
};

kernel void moe_softmax_topk_f32(
        constant RouterParams& p     [[buffer(0)]],
        device const float* logits   [[buffer(1)]],
        device uint* ids             [[buffer(2)]],
        device float* weights        [[buffer(3)]],
        threadgroup float* smem      [[threadgroup(0)]],
        uint tok  [[threadgroup_position_in_grid]],
        uint tid  [[thread_position_in_threadgroup]],
        uint nthr [[threads_per_threadgroup]]) {
    if (tok >= p.n_tokens) return;
    const uint ne = p.n_experts;
    threadgroup float* red = smem;
    threadgroup float* pr  = smem + 2 * nthr;
    device const float* x = logits + tok * ne;

    uint span = 1;
    while (span < nthr) span <<= 1;

    float m = -INFINITY;
    for (uint e = tid; e < ne; e += nthr) m = fmax(m, x[e]);
    red[tid] = m;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = span / 2; s > 0; s >>= 1) {
        if (tid < s && tid + s < nthr) red[tid] = fmax(red[tid], red[tid + s]);
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    m = red[0];
    threadgroup_barrier(mem_flags::mem_threadgroup);

    float acc = 0.0f;
    for (uint e = tid; e < ne; e += nthr) {
        pr[e] = exp(x[e] - m);
        acc += pr[e];
    }
    red[tid] = acc;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = span / 2; s > 0; s >>= 1) {
        if (tid < s && tid + s < nthr) red[tid] += red[tid + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    const float total = red[0];

    if (tid == 0) {
        float bv[64];
        uint  bi[64];
        uint  n = 0;
        for (uint e = 0; e < ne; ++e) {
            const float v = pr[e] / total;
            if (n == p.top_k && v <= bv[n - 1]) continue;
            uint j = (n < p.top_k) ? n++ : n - 1;
            while (j > 0 && bv[j - 1] < v) {  // strict: equal values keep the earlier expert first
                bv[j] = bv[j - 1];
                bi[j] = bi[j - 1];
                --j;
            }
            bv[j] = v;
            bi[j] = e;
        }
        float ks = 0.0f;
        for (uint k = 0; k < p.top_k; ++k) ks += bv[k];
        for (uint k = 0; k < p.top_k; ++k) {
            ids[tok * p.top_k + k] = bi[k];
            weights[tok * p.top_k + k] = bv[k] / ks;
        }
    }
}
