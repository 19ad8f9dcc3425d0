// HOSTILE (test/safety-cpu.test.ts): an endless loop written with goto, which
// the emitters do not instrument: the watchdog's other means (the CPU
// backend's signal) end it, and the process still exits right after its
// report.
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
    volatile uint spins = 0;
again:
    spins = spins + 1u;
    if (spins != 0u || i < p.n_elements) goto again;
    acc[i] = fma(p.routing_weight, x[i], acc[i]);
}
