// Barriers with static and dynamic threadgroup memory: each threadgroup
// reverses its slice twice through two memories, and sums it by a tree.
#include <metal_stdlib>
using namespace metal;

kernel void reverse_sum(device const float* in  [[buffer(0)]],
                        device float*       out [[buffer(1)]],
                        device float*       sums [[buffer(2)]],
                        threadgroup float*  dyn [[threadgroup(0)]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint n   [[threads_per_threadgroup]],
                        uint g   [[threadgroup_position_in_grid]]) {
    threadgroup float stat[256];
    threadgroup float tree[256];
    const uint base = g * n;
    stat[tid] = in[base + tid];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    dyn[tid] = stat[n - 1 - tid] * 2.0f;          // reversed once
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[base + tid] = dyn[n - 1 - tid];            // reversed back: 2·in
    tree[tid] = in[base + tid];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = 1; s < n; s <<= 1) {
        float v = (tid % (2 * s) == 0 && tid + s < n) ? tree[tid + s] : 0.0f;
        threadgroup_barrier(mem_flags::mem_threadgroup);
        tree[tid] += v;
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (tid == 0) sums[g] = tree[0];
}
