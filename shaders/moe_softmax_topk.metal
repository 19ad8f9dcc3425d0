// moe_softmax_topk.metal — fused softmax + top-k + renormalise for MoE routing.
//
// One threadgroup per token. Interface (kept from mlx-native so engines' own
// shaders verify against the same spec):
//   buffer(0)      constant MoeSoftmaxTopkParams {n_tokens, n_experts, top_k, _pad}
//   buffer(1)      device const float* logits   [n_tokens, n_experts]
//   buffer(2)      device uint*        ids      [n_tokens * top_k]
//   buffer(3)      device float*       weights  [n_tokens * top_k]
//   threadgroup(0) float[2 * tg + n_experts], tg = threads_per_threadgroup
//   grid: n_tokens threadgroups of min(n_experts, 128) threads.
//
// Correct for any threadgroup size and any 1 <= top_k <= min(64, n_experts,
// threadgroup size).
// The row's maximum and the exponentials e_j = exp(l_j - max) are computed,
// then SIMD-group 0 selects, in top_k rounds, the largest remaining e_j (ties
// to the lower expert index) with two SIMD-group reductions per round
// (simd_max of the values, simd_min of the indices holding it), so the output
// is sorted by descending weight. Ranking the unnormalised e_j ranks the
// probabilities e_j / Σ e, and the softmax's sum cancels in the
// renormalisation: w_k = e_k / Σ_{selected} e.
// Two paths, the same results bit for bit: up to ST_SLOTS experts per lane of
// SIMD-group 0 (n_experts <= 128 with the spec's threadgroup), SIMD-group 0
// alone does everything in registers, with no barrier and no threadgroup
// memory, and the other SIMD-groups leave at once; above that, the whole
// threadgroup computes the maximum and the exponentials into threadgroup
// memory first.

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

#define ST_SLOTS 4  // experts per lane on the register path

// The register path (see the header): lane l of the first w lanes owns
// experts l, l + w, ... (at most ST_SLOTS); the same operations in the same
// order as the threadgroup path, so the same bits.
static inline void softmax_topk_lanes(device const float* row, uint ne, uint top_k, uint w, uint lane,
                                      device uint* out_ids, device float* out_weights) {
    float v[ST_SLOTS];
    float m = -INFINITY;
    for (uint s = 0; s < ST_SLOTS; ++s) {
        const uint e = lane + s * w;
        v[s] = e < ne ? row[e] : -INFINITY;
        m = max(m, v[s]);
    }
    m = simd_max(m);
    for (uint s = 0; s < ST_SLOTS; ++s) {
        const uint e = lane + s * w;
        v[s] = e < ne ? exp(v[s] - m) : -1.0f;  // >= 0, so -1 marks a selected (or absent) expert
    }
    float sum = 0.0f;
    float my_val[2];  // round k's pick is kept by lane k % w: top_k <= 64 = 2w, or top_k <= threadgroup = w below 32 lanes
    uint my_id[2];
    my_val[0] = my_val[1] = 0.0f;
    my_id[0] = my_id[1] = 0u;
    for (uint k = 0; k < top_k; ++k) {
        float best = -1.0f;
        uint best_i = 0xffffffffu;
        for (uint s = 0; s < ST_SLOTS; ++s) {
            if (v[s] > best) { best = v[s]; best_i = lane + s * w; }  // ascending e: the first of equals
        }
        const float top = simd_max(best);
        const uint id = simd_min(best == top ? best_i : 0xffffffffu);
        for (uint s = 0; s < ST_SLOTS; ++s)
            if (lane + s * w == id) v[s] = -1.0f;
        if (k % w == lane) {
            if (k / w == 0) { my_val[0] = top; my_id[0] = id; }
            else { my_val[1] = top; my_id[1] = id; }
        }
        sum += top;  // the same in every lane
    }
    const float inv = 1.0f / sum;
    for (uint k = lane, j = 0; k < top_k && j < 2; k += w, ++j) {
        out_ids[k] = my_id[j];
        out_weights[k] = my_val[j] * inv;
    }
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

    threadgroup float* scratch = shmem;               // [n_sg]: reduction partials
    threadgroup float* prob    = shmem + 2 * tg_sz;   // [ne]: exponentials, -1 once selected

    device const float* row = logits + (ulong)token * ne;
    const uint w = min(32u, tg_sz);  // the lanes of SIMD-group 0

    if (ne <= ST_SLOTS * w) {  // the register path: the same for the whole dispatch (top_k <= 2w: see its picks)
        if (sg == 0) softmax_topk_lanes(row, ne, top_k, w, lane, out_ids + token * top_k, out_weights + token * top_k);
        return;
    }

    // 1. max over the row
    float m = -INFINITY;
    for (uint e = tiitg; e < ne; e += tg_sz) m = max(m, row[e]);
    m = tg_reduce_max(m, scratch, lane, sg, n_sg);

    // 2. exponentials (>= 0, so -1 can mark a selected expert)
    for (uint e = tiitg; e < ne; e += tg_sz) prob[e] = exp(row[e] - m);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (sg != 0) return;

    // 3. selection by SIMD-group 0 (its w lanes). Lane l owns experts l, l + w,
    //    ...: it alone reads and marks them, so no lane reads what another
    //    writes; lane 0 records each round's pick.
    threadgroup float* sel_val = shmem;                                    // [top_k]
    threadgroup uint*  sel_id  = (threadgroup uint*)(shmem + tg_sz);       // [top_k]
    float sum = 0.0f;
    for (uint k = 0; k < top_k; ++k) {
        float best = -1.0f;
        uint  best_i = 0xffffffffu;
        for (uint e = lane; e < ne; e += w) {
            const float v = prob[e];
            if (v > best) { best = v; best_i = e; }   // ascending e: the first of equals
        }
        const float top = simd_max(best);
        const uint  id  = simd_min(best == top ? best_i : 0xffffffffu);
        if (id < ne && id % w == lane) prob[id] = -1.0f;  // (no pick: every value left is NaN)
        if (lane == 0) { sel_val[k] = top; sel_id[k] = id; }
        sum += top;   // the same in every lane
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);

    // 4. renormalise over the selected k and write out
    const float inv = 1.0f / sum;
    const uint o = token * top_k;
    for (uint k = lane; k < top_k; k += w) {
        out_ids[o + k]     = sel_id[k];
        out_weights[o + k] = sel_val[k] * inv;
    }
}
