// An engine's kernels in the style of ggml/llama.cpp Metal backends, written for
// the manifest tests: weights first, scalars bound one per index (ne00, ne01),
// dispatchThreadgroups, 8 rows per threadgroup of 256 threads, float4 loads,
// an offsets buffer in the batched mat-vec. Verified through manifest.json
// as it is: never edit this file to suit the harness.
#include <metal_stdlib>
using namespace metal;

#define N_SIMDWIDTH 32
#define N_ROWS_PER_TG 8

static inline float bf16_to_f32(ushort h) { return as_type<float>(uint(h) << 16); }

// y[r] = sum_c dequant(w[r, c]) * x[c]; MLX affine 4-bit: 8 nibbles per word,
// one bf16 scale and bias per group (as raw ushort words).
kernel void kernel_mul_mv_q4_f32_r8(
        device const float  * src1   [[buffer(0)]],
        device const uint   * src0   [[buffer(1)]],
        device const ushort * scales [[buffer(2)]],
        device const ushort * biases [[buffer(3)]],
        device       float  * dst    [[buffer(4)]],
        constant     uint   & ne00   [[buffer(5)]],
        constant     uint   & ne01   [[buffer(6)]],
        constant     uint   & gsize  [[buffer(7)]],
        uint  tgpig [[threadgroup_position_in_grid]],
        uint  sgitg [[simdgroup_index_in_threadgroup]],
        uint  tiisg [[thread_index_in_simdgroup]]) {
    const uint row = tgpig * N_ROWS_PER_TG + sgitg;
    if (row >= ne01) return;
    const uint nw = ne00 / 8;
    const uint ng = ne00 / gsize;
    device const uint * wr = src0 + (ulong)row * nw;
    float acc = 0.0f;
    for (uint k = tiisg; k < nw; k += N_SIMDWIDTH) {
        const uint g = (k * 8) / gsize;
        const float s = bf16_to_f32(scales[(ulong)row * ng + g]);
        const float b = bf16_to_f32(biases[(ulong)row * ng + g]);
        const uint word = wr[k];
        for (uint j = 0; j < 8; ++j) {
            acc += (float((word >> (4 * j)) & 15u) * s + b) * src1[k * 8 + j];
        }
    }
    acc = simd_sum(acc);
    if (tiisg == 0) dst[row] = acc;
}

// The same for a batch of tokens: x of token t starts at x_offs[t].
kernel void kernel_mul_mv_q4_f32_batched(
        device const uint   * src0   [[buffer(0)]],
        device const ushort * scales [[buffer(1)]],
        device const ushort * biases [[buffer(2)]],
        device const float  * src1   [[buffer(3)]],
        device const uint   * x_offs [[buffer(4)]],
        device       float  * dst    [[buffer(5)]],
        constant     uint   & ne00   [[buffer(6)]],
        constant     uint   & ne01   [[buffer(7)]],
        constant     uint   & gsize  [[buffer(8)]],
        uint2 tgpig [[threadgroup_position_in_grid]],
        uint  sgitg [[simdgroup_index_in_threadgroup]],
        uint  tiisg [[thread_index_in_simdgroup]]) {
    const uint row = tgpig.x * N_ROWS_PER_TG + sgitg;
    const uint t = tgpig.y;
    if (row >= ne01) return;
    const uint nw = ne00 / 8;
    const uint ng = ne00 / gsize;
    device const uint * wr = src0 + (ulong)row * nw;
    device const float * x = src1 + x_offs[t];
    float acc = 0.0f;
    for (uint k = tiisg; k < nw; k += N_SIMDWIDTH) {
        const uint g = (k * 8) / gsize;
        const float s = bf16_to_f32(scales[(ulong)row * ng + g]);
        const float b = bf16_to_f32(biases[(ulong)row * ng + g]);
        const uint word = wr[k];
        for (uint j = 0; j < 8; ++j) {
            acc += (float((word >> (4 * j)) & 15u) * s + b) * x[k * 8 + j];
        }
    }
    acc = simd_sum(acc);
    if (tiisg == 0) dst[(ulong)t * ne01 + row] = acc;
}

// RMS norm, one threadgroup per row; partial sums in threadgroup memory.
kernel void kernel_rms_norm_f32(
        device const float * src0 [[buffer(0)]],
        device       float * dst  [[buffer(1)]],
        constant     uint  & ne00 [[buffer(2)]],
        constant     float & eps  [[buffer(3)]],
        device const float * w    [[buffer(4)]],
        threadgroup  float * sum  [[threadgroup(0)]],
        uint tgpig [[threadgroup_position_in_grid]],
        uint tpitg [[thread_position_in_threadgroup]],
        uint ntg   [[threads_per_threadgroup]]) {
    device const float * x = src0 + (ulong)tgpig * ne00;
    float s = 0.0f;
    for (uint i = tpitg; i < ne00; i += ntg) s += x[i] * x[i];
    sum[tpitg] = s;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint half_n = ntg / 2; half_n > 0; half_n /= 2) {
        if (tpitg < half_n) sum[tpitg] += sum[tpitg + half_n];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    const float scale = 1.0f / sqrt(sum[0] / float(ne00) + eps);
    device float * y = dst + (ulong)tgpig * ne00;
    for (uint i = tpitg; i < ne00; i += ntg) y[i] = x[i] * scale * w[i];
}

// dst = src0 + src1, four floats per thread.
kernel void kernel_add_f32_4(
        device const float4 * src0 [[buffer(0)]],
        device const float4 * src1 [[buffer(1)]],
        device       float4 * dst  [[buffer(2)]],
        constant     uint   & n4   [[buffer(3)]],
        uint tpig [[thread_position_in_grid]]) {
    if (tpig >= n4) return;
    dst[tpig] = src0[tpig] + src1[tpig];
}

// dst = a * w + res: the combine of top-k expert outputs with the residual.
kernel void kernel_moe_combine_f32(
        device const float * src0 [[buffer(0)]],
        device const float * ws   [[buffer(1)]],
        device const float * res  [[buffer(2)]],
        device       float * dst  [[buffer(3)]],
        constant     uint  & ne00 [[buffer(4)]],
        constant     uint  & n_k  [[buffer(5)]],
        uint2 tgpig [[threadgroup_position_in_grid]],
        uint  tpitg [[thread_position_in_threadgroup]],
        uint  ntg   [[threads_per_threadgroup]]) {
    const uint t = tgpig.y;
    for (uint d = tgpig.x * ntg + tpitg; d < ne00; d += ntg * 65535u) {
        float acc = 0.0f;
        for (uint k = 0; k < n_k; ++k) acc += ws[t * n_k + k] * src0[((ulong)t * n_k + k) * ne00 + d];
        dst[(ulong)t * ne00 + d] = res[(ulong)t * ne00 + d] + acc;
    }
}

// dst = src0 * scale: the engine has no catalog spec for it (compiled only).
kernel void kernel_scale_f32(
        device const float * src0  [[buffer(0)]],
        device       float * dst   [[buffer(1)]],
        constant     float & scale [[buffer(2)]],
        uint tpig [[thread_position_in_grid]]) {
    dst[tpig] = src0[tpig] * scale;
}
