// An engine's kernels in the style of moeflux's Metal backend, written for the
// manifest tests: param structs of its own, dispatchThreads, GELU gating with an
// extra `constant uint& dim`, weighted sums, RMS norm, softmax + top-k routing.
// Verified through engine.manifest.json as it is: never edit this file to suit the harness.
#include <metal_stdlib>
using namespace metal;

struct WeightedSumParams { uint top_k; uint dim; };
struct NormParams { uint dim; float eps; uint n_rows; };
struct RouterParams { uint num_experts; uint k; uint n_tokens; };

static inline float gelu_tanh(float x) {
    const float c = 0.7978845608028654f;
    return 0.5f * x * (1.0f + precise::tanh(c * (x + 0.044715f * x * x * x)));
}

// out = gelu(gate) * up, separate halves.
kernel void gelu_gate_mul(
        device const float* gate [[buffer(0)]],
        device const float* up   [[buffer(1)]],
        device float*       out  [[buffer(2)]],
        constant uint&      dim  [[buffer(3)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= dim) return;
    out[gid] = gelu_tanh(gate[gid]) * up[gid];
}

// out = gelu(gate_up[i]) * gate_up[dim + i]: gate and up interleaved by halves.
kernel void swiglu_fused_halves(
        device const float* gate_up [[buffer(0)]],
        device float*       out     [[buffer(1)]],
        constant uint&      dim     [[buffer(2)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= dim) return;
    out[gid] = gelu_tanh(gate_up[gid]) * gate_up[dim + gid];
}

// out[d] = sum_k w[k] * expert_out[k * dim + d]
kernel void weighted_sum(
        constant WeightedSumParams& p    [[buffer(0)]],
        device const float*  expert_out [[buffer(1)]],
        device const float*  w          [[buffer(2)]],
        device float*        out        [[buffer(3)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= p.dim) return;
    float acc = 0.0f;
    for (uint k = 0; k < p.top_k; ++k) acc += w[k] * expert_out[k * p.dim + gid];
    out[gid] = acc;
}

// One threadgroup of 256 threads per row (dispatchThreads over 256 x n_rows).
kernel void rms_norm(
        device const float* x   [[buffer(0)]],
        device const float* w   [[buffer(1)]],
        device float*       out [[buffer(2)]],
        constant NormParams& p  [[buffer(3)]],
        uint2 tid [[thread_position_in_threadgroup]],
        uint2 gid [[thread_position_in_grid]]) {
    threadgroup float partial[256];
    const uint row = gid.y;
    device const float* xr = x + (ulong)row * p.dim;
    float s = 0.0f;
    for (uint i = tid.x; i < p.dim; i += 256) s += xr[i] * xr[i];
    partial[tid.x] = s;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint n = 128; n > 0; n >>= 1) {
        if (tid.x < n) partial[tid.x] += partial[tid.x + n];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    const float r = rsqrt(partial[0] / float(p.dim) + p.eps);
    for (uint i = tid.x; i < p.dim; i += 256) out[(ulong)row * p.dim + i] = xr[i] * r * w[i];
}

// One thread per token: softmax over the experts, top-k (ties to the lower id), renormalised.
kernel void softmax_topk(
        device const float*  logits [[buffer(0)]],
        device uint*         ids    [[buffer(1)]],
        device float*        wts    [[buffer(2)]],
        constant RouterParams& p    [[buffer(3)]],
        uint t [[thread_position_in_grid]]) {
    if (t >= p.n_tokens) return;
    device const float* l = logits + (ulong)t * p.num_experts;
    float mx = -INFINITY;
    for (uint e = 0; e < p.num_experts; ++e) mx = max(mx, l[e]);
    float total = 0.0f;
    for (uint e = 0; e < p.num_experts; ++e) total += exp(l[e] - mx);
    float picked = 0.0f;
    for (uint j = 0; j < p.k; ++j) {
        uint best = 0;
        float bv = -INFINITY;
        bool found = false;
        for (uint e = 0; e < p.num_experts; ++e) {
            bool taken = false;
            for (uint q = 0; q < j; ++q) taken = taken || ids[t * p.k + q] == e;
            if (taken) continue;
            if (!found || l[e] > bv) { bv = l[e]; best = e; found = true; }
        }
        ids[t * p.k + j] = best;
        const float pe = exp(bv - mx) / total;
        wts[t * p.k + j] = pe;
        picked += pe;
    }
    for (uint j = 0; j < p.k; ++j) wts[t * p.k + j] /= picked;
}

// Fills a buffer with a value (no catalog spec: compiled only).
kernel void fill_f32(
        device float*   out [[buffer(0)]],
        constant float& v   [[buffer(1)]],
        uint gid [[thread_position_in_grid]]) {
    out[gid] = v;
}

struct QMatvecParams { uint out_dim; uint in_dim; uint group_size; };

// 4-bit affine mat-vec, one thread per output row; bf16 scales and biases as uint16_t words.
kernel void dequant_matvec_4bit(
        device const uint*     W      [[buffer(0)]],
        device const uint16_t* scales [[buffer(1)]],
        device const uint16_t* biases [[buffer(2)]],
        device const float*    x      [[buffer(3)]],
        device float*          out    [[buffer(4)]],
        constant QMatvecParams& p     [[buffer(5)]],
        uint row [[thread_position_in_grid]]) {
    if (row >= p.out_dim) return;
    const uint words = p.in_dim / 8;
    const uint groups = p.in_dim / p.group_size;
    float acc = 0.0f;
    for (uint k = 0; k < words; ++k) {
        const uint g = (k * 8) / p.group_size;
        const float s = as_type<float>(uint(scales[row * groups + g]) << 16);
        const float b = as_type<float>(uint(biases[row * groups + g]) << 16);
        const uint word = W[row * words + k];
        for (uint j = 0; j < 8; ++j) acc += (float((word >> (4 * j)) & 15u) * s + b) * x[k * 8 + j];
    }
    out[row] = acc;
}
