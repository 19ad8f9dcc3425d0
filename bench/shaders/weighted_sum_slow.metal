// A planted regression for `npm run bench:gate`: moe_weighted_sum with the
// same signature and the same result as shaders/moe_dispatch.metal, plus
// useless extra work (about 20% more time on the CPU backend at the bench
// shape, hidden 4096 × top_k 8). The script measures the slowdown it really
// causes and prints it beside the gate's detection rate.
#include <metal_stdlib>
using namespace metal;

struct MoeWeightedSumParams {
    uint hidden_size;
    uint top_k;
};

kernel void moe_weighted_sum(
        device const float*            y   [[buffer(0)]],
        device const float*            w   [[buffer(1)]],
        device float*                  out [[buffer(2)]],
        constant MoeWeightedSumParams& p   [[buffer(3)]],
        uint d [[thread_position_in_grid]]) {
    const uint H = p.hidden_size;
    if (d >= H) return;
    float acc = 0.0f;
    for (uint k = 0; k < p.top_k; ++k) acc = fma(w[k], y[(ulong)k * H + d], acc);
    // The planted work: a second pass over a quarter of the slots, and one
    // slot more on odd threads (2.5 of 8 slots on average), into an
    // accumulator that cannot change the result. The compiler may not drop
    // it: the test of isfinite reads it.
    float extra = 0.0f;
    const uint again = p.top_k / 4 + (d & 1u);
    for (uint k = 0; k < again && k < p.top_k; ++k) extra = fma(w[k], y[(ulong)k * H + d], extra);
    out[d] = isfinite(extra) ? acc + 0.0f * extra : acc;
}
