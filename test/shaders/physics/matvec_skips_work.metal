// A mat-vec that does none of its work: every thread returns at once, so the
// dispatch takes its floor while the cost model counts every weight read.
#include <metal_stdlib>
using namespace metal;

struct MatvecParams { uint m; uint k; uint n; };

kernel void naive_matvec_f32(
        device const float*    W   [[buffer(0)]],
        device const float*    x   [[buffer(1)]],
        device float*          out [[buffer(2)]],
        constant MatvecParams& p   [[buffer(3)]],
        uint r [[thread_position_in_grid]]) {
    return;
}
