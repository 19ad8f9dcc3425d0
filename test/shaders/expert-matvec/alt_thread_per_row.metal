// A correct variant written differently: one thread per output row (no SIMD
// reduction), launched with the same geometry: thread `sg * 32 + lane` of the
// group handles row (group.x * 4 + sg) only from lane 0, serially over k.
#include <metal_stdlib>
using namespace metal;

struct P {
    uint n_rows;
    uint k;
    uint n_pairs;
    uint top_k;
    uint x_per_pair;
    uint n_experts;
};

kernel void moe_expert_matvec_f32(
        device const float* w   [[buffer(0)]],
        device const float* x   [[buffer(1)]],
        device const uint*  ids [[buffer(2)]],
        device float*       y   [[buffer(3)]],
        constant P& p [[buffer(4)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint  tid [[thread_index_in_threadgroup]]) {
    if (tid % 32 != 0) return;
    const uint row = tg.x * 4 + tid / 32;
    const uint pair = tg.y;
    if (row >= p.n_rows || pair >= p.n_pairs) return;
    const uint e = ids[pair];
    const uint in_row = p.x_per_pair != 0 ? pair : pair / p.top_k;
    float acc = 0.0f;
    for (uint i = 0; i < p.k; ++i) acc += w[(e * p.n_rows + row) * p.k + i] * x[in_row * p.k + i];
    y[pair * p.n_rows + row] = acc;
}
