// PLANTED BUG (a race that the forward thread order hides): the barrier
// between the rank selection and the renormalisation is missing, and the
// last thread of the threadgroup writes all top_k outputs. Under the forward
// order (thread index order, what a first run uses) every other thread has
// finished the selection by then, so `moe verify` passes it; `moe verify
// --schedules 4` (reverse order, seeded shuffles) must FAIL it.
#include <metal_stdlib>
using namespace metal;

struct MoeSoftmaxTopkParams {
    uint  n_tokens;
    uint  n_experts;
    uint  top_k;
    float _pad;
};

// Reduce one value per thread to one value for the whole threadgroup.
// SIMD-group reduction first, then the per-SIMD-group partials through
// threadgroup memory. `scratch` needs one float per SIMD-group.
static inline float tg_reduce_max(float v, threadgroup float* scratch,
                                  uint lane, uint sg, uint n_sg) {
    v = simd_max(v);
    if (lane == 0) scratch[sg] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float r = scratch[0];
    for (uint i = 1; i < n_sg; ++i) r = max(r, scratch[i]);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return r;
}

static inline float tg_reduce_sum(float v, threadgroup float* scratch,
                                  uint lane, uint sg, uint n_sg) {
    v = simd_sum(v);
    if (lane == 0) scratch[sg] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float r = 0.0f;
    for (uint i = 0; i < n_sg; ++i) r += scratch[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return r;
}

kernel void moe_softmax_topk_f32(
        constant MoeSoftmaxTopkParams& p  [[buffer(0)]],
        device const float*  logits       [[buffer(1)]],
        device uint*         out_ids      [[buffer(2)]],
        device float*        out_weights  [[buffer(3)]],
        threadgroup float*   shmem        [[threadgroup(0)]],
        uint3 tgpig [[threadgroup_position_in_grid]],
        uint3 ntg   [[threads_per_threadgroup]],
        uint  tiitg [[thread_index_in_threadgroup]],
        uint  lane  [[thread_index_in_simdgroup]],
        uint  sg    [[simdgroup_index_in_threadgroup]]) {
    const uint token = tgpig.x;
    if (token >= p.n_tokens) return;  // whole threadgroup leaves together

    const uint ne    = p.n_experts;
    const uint top_k = p.top_k;
    const uint tg_sz = ntg.x;
    const uint n_sg  = (tg_sz + 31) / 32;

    threadgroup float* scratch  = shmem;               // [tg_sz]: reduction partials
    threadgroup float* sel_val  = shmem;               // [top_k] after the reductions
    threadgroup uint*  sel_id   = (threadgroup uint*)(shmem + tg_sz);  // [top_k]
    threadgroup float* prob     = shmem + 2 * tg_sz;   // [ne]

    device const float* row = logits + (ulong)token * ne;

    // 1. max over the row
    float m = -INFINITY;
    for (uint e = tiitg; e < ne; e += tg_sz) m = max(m, row[e]);
    m = tg_reduce_max(m, scratch, lane, sg, n_sg);

    // 2. exponentials and their sum
    float s = 0.0f;
    for (uint e = tiitg; e < ne; e += tg_sz) {
        float v = exp(row[e] - m);
        prob[e] = v;
        s += v;
    }
    s = tg_reduce_sum(s, scratch, lane, sg, n_sg);  // its barriers also publish prob[]
    const float inv_s = 1.0f / s;

    // 3. rank selection: rank(e) = #{j : v_j > v_e or (v_j == v_e and j < e)}
    //    (ranks of the unnormalised exponentials equal ranks of the probabilities)
    for (uint e = tiitg; e < ne; e += tg_sz) {
        const float v = prob[e];
        uint rank = 0;
        for (uint j = 0; j < ne && rank < top_k; ++j) {
            const float u = prob[j];
            rank += (u > v || (u == v && j < e)) ? 1u : 0u;
        }
        if (rank < top_k) {
            sel_val[rank] = v * inv_s;
            sel_id[rank]  = e;
        }
    }

    // 4. renormalise over the selected k and write out. PLANTED RACE: the
    //    barrier that publishes sel_val/sel_id is missing, and the last
    //    thread alone writes every slot. In index order (forward) every other
    //    thread has finished step 3 when the last one gets here, so the race
    //    never shows; in any other order it reads slots not yet written.
    if (tiitg == tg_sz - 1) {
        float ks = 0.0f;
        for (uint k = 0; k < top_k; ++k) ks += sel_val[k];
        for (uint k = 0; k < top_k; ++k) {
            out_ids[token * top_k + k]     = sel_id[k];
            out_weights[token * top_k + k] = sel_val[k] / ks;
        }
    }
}
