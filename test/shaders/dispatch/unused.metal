// A shader none of whose kernels is a stage of the MoE layer: moe dispatch
// --shader must refuse it (exit 2) instead of passing with our kernels only.
#include <metal_stdlib>
using namespace metal;

kernel void my_scale_f32(device float* x [[buffer(0)]],
                         constant uint& n [[buffer(1)]],
                         uint i [[thread_position_in_grid]]) {
  if (i < n) x[i] = 2.0f * x[i];
}
