// HOSTILE (test/safety-cpu.test.ts): moe_accumulate whose element loop never
// ends (the stride is computed as 0), in every case. The watchdog stops it at
// the loop (its abort check) after the timeout; the kernel's other cases are
// skipped rather than timed out one by one.
#include <metal_stdlib>
using namespace metal;

struct MoeAccumParams {
    uint  n_elements;
    float routing_weight;
};

kernel void moe_accumulate(
        device float*            acc [[buffer(0)]],
        device const float*      x   [[buffer(1)]],
        constant MoeAccumParams& p   [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    const uint stride = p.n_elements / (p.n_elements + 1u);
    for (uint k = i; k < p.n_elements; k += stride) {
        acc[k] = fma(p.routing_weight, x[k], acc[k]);
    }
}
