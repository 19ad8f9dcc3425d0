// Device self-test, bfloat part. Its own file: bfloat needs MSL 3.1, and on an
// older system the other checks must still compile; this one is then skipped.
#include <metal_stdlib>
using namespace metal;

// bfloat round trip: float → bfloat (round to nearest even) → float.
kernel void selftest_bfloat(device const float* in  [[buffer(0)]],
                            device float*       out [[buffer(1)]],
                            uint i [[thread_position_in_grid]]) {
    bfloat b = bfloat(in[i]);
    out[i] = float(b);
}
