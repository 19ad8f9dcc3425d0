// rms_norm.metal: an RMS norm written the way many engines write it, with
// its length and epsilon bound as separate scalars and the reduction
// scratch space passed in as threadgroup memory by the host.
//
//   y[r, j] = x[r, j] / sqrt(sum_j x[r, j]^2 / dim + eps) * weight[j]
//
//   buffer(0) x [rows * dim]    buffer(1) weight [dim]    buffer(2) y [rows * dim]
//   buffer(3) constant uint& dim                          buffer(4) constant float& eps
//   threadgroup(0) partial: one float per thread
//   dispatchThreadgroups: one threadgroup of 128 threads per row.

#include <metal_stdlib>
using namespace metal;

kernel void example_rms_norm(
    device const float* x       [[buffer(0)]],
    device const float* weight  [[buffer(1)]],
    device float*       y       [[buffer(2)]],
    constant uint&      dim     [[buffer(3)]],
    constant float&     eps     [[buffer(4)]],
    threadgroup float*  partial [[threadgroup(0)]],
    uint row [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint ntg [[threads_per_threadgroup]]) {
    device const float* xr = x + row * dim;

    // Each thread sums the squares of a strided slice of the row...
    float ss = 0.0f;
    for (uint j = tid; j < dim; j += ntg) {
        ss = fma(xr[j], xr[j], ss);
    }
    partial[tid] = ss;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // ...then the slices are folded pairwise (ntg is a power of two).
    for (uint s = ntg / 2; s > 0; s >>= 1) {
        if (tid < s) {
            partial[tid] += partial[tid + s];
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }

    const float inv = rsqrt(partial[0] / float(dim) + eps);
    for (uint j = tid; j < dim; j += ntg) {
        y[row * dim + j] = xr[j] * inv * weight[j];
    }
}
