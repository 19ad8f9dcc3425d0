// fused_gelu_mul that does not compile: moe dispatch --shader must still
// write its reports, the stage an <error> testcase with the compiler's line.
#include <metal_stdlib>
using namespace metal;

kernel void fused_gelu_mul(device const float* gate [[buffer(0)]],
                           device const float* up [[buffer(1)]],
                           device float* out [[buffer(2)]],
                           constant uint& n [[buffer(3)]],
                           uint i [[thread_position_in_grid]]) {
  if (i < n) out[i] = gate[i] * up[i] + undefined_name;
}
