// moe_dispatch.metal — element-wise and reduction kernels of the MoE expert FFN.
//
// Our own implementations of the mlx-native moe_dispatch kernels: entry
// names, buffer indices, parameter structs and launch geometry are kept so
// that an engine's own shader verifies against the same specs
// (src/kernels/ffn.ts). Every kernel here is launched with dispatchThreads,
// threadgroups of min(256, grid.x) threads, except moe_gather_topk_weights
// (one thread).
//
// Activation: the kernels named "swiglu" (and fused_gelu_mul) compute
// GELU(gate) · up with the tanh approximation of GELU, not SiLU(gate) · up.
//
// All arithmetic is f32; bfloat buffers are widened on load and rounded to
// nearest even on store.

#include <metal_stdlib>
using namespace metal;

// GELU, tanh form:  x/2 · (1 + tanh(z)),  z = sqrt(2/pi) · x · (1 + 0.044715·x²).
// |z| is capped at 10, where tanh is ±1 to f32 precision; the cap also turns
// an overflowing x³ (z = ±inf) into a finite argument.
static inline float gelu_tanh(float x) {
    const float SQRT_2_OVER_PI = 0.79788456080286536f;
    const float CUBIC = 0.044715f;
    float z = SQRT_2_OVER_PI * x * fma(CUBIC * x, x, 1.0f);
    z = clamp(z, -10.0f, 10.0f);
    return 0.5f * x * (1.0f + precise::tanh(z));
}

// ---------------------------------------------------------------------------
// fused_gelu_mul / fused_gelu_mul_bf16: out[i] = GELU(gate[i]) · up[i]
//   buffer(0) gate [n]   buffer(1) up [n]   buffer(2) out [n]   buffer(3) {n_elements}
// ---------------------------------------------------------------------------

struct FusedGeluMulParams {
    uint n_elements;
};

kernel void fused_gelu_mul(
        device const float*          gate [[buffer(0)]],
        device const float*          up   [[buffer(1)]],
        device float*                out  [[buffer(2)]],
        constant FusedGeluMulParams& p    [[buffer(3)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= p.n_elements) return;
    out[i] = gelu_tanh(gate[i]) * up[i];
}

kernel void fused_gelu_mul_bf16(
        device const bfloat*         gate [[buffer(0)]],
        device const bfloat*         up   [[buffer(1)]],
        device bfloat*               out  [[buffer(2)]],
        constant FusedGeluMulParams& p    [[buffer(3)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= p.n_elements) return;
    const float r = gelu_tanh(float(gate[i])) * float(up[i]);
    out[i] = bfloat(r);
}

// ---------------------------------------------------------------------------
// moe_accumulate: acc[i] += w · x[i]     buffer(0) acc [n] (in/out)  buffer(1) x [n]
//                                        buffer(2) {n_elements, routing_weight}
// ---------------------------------------------------------------------------

struct MoeAccumParams {
    uint  n_elements;
    float routing_weight;
};

kernel void moe_accumulate(
        device float*            acc [[buffer(0)]],
        device const float*      x   [[buffer(1)]],
        constant MoeAccumParams& p   [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    if (i >= p.n_elements) return;
    acc[i] = fma(p.routing_weight, x[i], acc[i]);
}

// ---------------------------------------------------------------------------
// zero_buffer: buf[i] = 0     buffer(0) buf [n]   buffer(1) {n_elements}
// (a store, never buf[i] *= 0: pooled memory may hold NaN or inf)
// ---------------------------------------------------------------------------

struct ZeroParams {
    uint n_elements;
};

kernel void zero_buffer(
        device float*        buf [[buffer(0)]],
        constant ZeroParams& p   [[buffer(1)]],
        uint i [[thread_position_in_grid]]) {
    if (i < p.n_elements) buf[i] = 0.0f;
}

// ---------------------------------------------------------------------------
// moe_swiglu_fused: one row [gate (n) | up (n)] -> out[i] = GELU(gate[i]) · up[i]
//   buffer(0) gate_up [2n]   buffer(1) out [n]   buffer(2) {n_elements}
// ---------------------------------------------------------------------------

kernel void moe_swiglu_fused(
        device const float*          gate_up [[buffer(0)]],
        device float*                out     [[buffer(1)]],
        constant FusedGeluMulParams& p       [[buffer(2)]],
        uint i [[thread_position_in_grid]]) {
    const uint n = p.n_elements;
    if (i >= n) return;
    out[i] = gelu_tanh(gate_up[i]) * gate_up[n + i];
}

// ---------------------------------------------------------------------------
// moe_swiglu_batch: top_k rows [gate (I) | up (I)] -> out [top_k, I]
//   buffer(0) gate_up [top_k, 2I]  buffer(1) out [top_k, I]
//   buffer(2) intermediate (uint)   buffer(3) top_k (uint)
//   grid: (I, top_k) threads
// ---------------------------------------------------------------------------

kernel void moe_swiglu_batch(
        device const float* gate_up      [[buffer(0)]],
        device float*       out          [[buffer(1)]],
        constant uint&      intermediate [[buffer(2)]],
        constant uint&      top_k        [[buffer(3)]],
        uint2 pos [[thread_position_in_grid]]) {
    const uint i = pos.x;
    const uint row = pos.y;
    if (i >= intermediate || row >= top_k) return;
    device const float* g = gate_up + (ulong)row * (2u * intermediate);
    out[(ulong)row * intermediate + i] = gelu_tanh(g[i]) * g[intermediate + i];
}

// ---------------------------------------------------------------------------
// moe_swiglu_seq / moe_swiglu_seq_bf16: n_tokens·top_k rows [gate (I) | up (I)]
//   buffer(0) gate_up [n_tokens, top_k, 2I]  buffer(1) out [n_tokens, top_k, I]
//   buffer(2) {intermediate, top_k, n_tokens}
//   grid: (I, top_k, n_tokens) threads
// ---------------------------------------------------------------------------

struct MoeSwigluSeqParams {
    uint intermediate;
    uint top_k;
    uint n_tokens;
};

kernel void moe_swiglu_seq(
        device const float*          gate_up [[buffer(0)]],
        device float*                out     [[buffer(1)]],
        constant MoeSwigluSeqParams& p       [[buffer(2)]],
        uint3 pos [[thread_position_in_grid]]) {
    const uint I = p.intermediate;
    if (pos.x >= I || pos.y >= p.top_k || pos.z >= p.n_tokens) return;
    const ulong row = (ulong)pos.z * p.top_k + pos.y;
    device const float* g = gate_up + row * (2u * I);
    out[row * I + pos.x] = gelu_tanh(g[pos.x]) * g[I + pos.x];
}

kernel void moe_swiglu_seq_bf16(
        device const bfloat*         gate_up [[buffer(0)]],
        device bfloat*               out     [[buffer(1)]],
        constant MoeSwigluSeqParams& p       [[buffer(2)]],
        uint3 pos [[thread_position_in_grid]]) {
    const uint I = p.intermediate;
    if (pos.x >= I || pos.y >= p.top_k || pos.z >= p.n_tokens) return;
    const ulong row = (ulong)pos.z * p.top_k + pos.y;
    device const bfloat* g = gate_up + row * (2u * I);
    const float r = gelu_tanh(float(g[pos.x])) * float(g[I + pos.x]);
    out[row * I + pos.x] = bfloat(r);
}

// ---------------------------------------------------------------------------
// moe_weighted_sum: out[d] = Σ_k y[k, d] · w[k]
//   buffer(0) y [top_k, H]  buffer(1) w [top_k]  buffer(2) out [H]  buffer(3) {hidden_size, top_k}
// ---------------------------------------------------------------------------

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
    out[d] = acc;
}

// ---------------------------------------------------------------------------
// moe_weighted_sum_seq (+ _bf16_input): out[t, d] = Σ_k y[t, k, d] · w[t, k]
//   buffer(0) y [n_tokens, top_k, H] (f32, or bfloat)  buffer(1) w [n_tokens, top_k] f32
//   buffer(2) out [n_tokens, H] f32                      buffer(3) {hidden_size, top_k, n_tokens}
//   grid: (H, n_tokens) threads
// ---------------------------------------------------------------------------

struct MoeWeightedSumSeqParams {
    uint hidden_size;
    uint top_k;
    uint n_tokens;
};

kernel void moe_weighted_sum_seq(
        device const float*               y   [[buffer(0)]],
        device const float*               w   [[buffer(1)]],
        device float*                     out [[buffer(2)]],
        constant MoeWeightedSumSeqParams& p   [[buffer(3)]],
        uint2 pos [[thread_position_in_grid]]) {
    const uint H = p.hidden_size;
    const uint K = p.top_k;
    if (pos.x >= H || pos.y >= p.n_tokens) return;
    device const float* wt = w + (ulong)pos.y * K;
    device const float* yt = y + (ulong)pos.y * K * H + pos.x;
    float acc = 0.0f;
    for (uint k = 0; k < K; ++k) acc = fma(wt[k], yt[(ulong)k * H], acc);
    out[(ulong)pos.y * H + pos.x] = acc;
}

kernel void moe_weighted_sum_seq_bf16_input(
        device const bfloat*              y   [[buffer(0)]],
        device const float*               w   [[buffer(1)]],
        device float*                     out [[buffer(2)]],
        constant MoeWeightedSumSeqParams& p   [[buffer(3)]],
        uint2 pos [[thread_position_in_grid]]) {
    const uint H = p.hidden_size;
    const uint K = p.top_k;
    if (pos.x >= H || pos.y >= p.n_tokens) return;
    device const float*  wt = w + (ulong)pos.y * K;
    device const bfloat* yt = y + (ulong)pos.y * K * H + pos.x;
    float acc = 0.0f;  // f32 accumulator: only the inputs are bfloat
    for (uint k = 0; k < K; ++k) acc = fma(wt[k], float(yt[(ulong)k * H]), acc);
    out[(ulong)pos.y * H + pos.x] = acc;
}

// ---------------------------------------------------------------------------
// naive_matvec_f32: out[r] = Σ_c W[r, c] · x[c]
//   buffer(0) W [n, k] row-major  buffer(1) x [k]  buffer(2) out [n]  buffer(3) {m (= 1), k, n}
// ---------------------------------------------------------------------------

struct MatvecParams {
    uint m;  // rows of the input batch; always 1 (mat-vec)
    uint k;
    uint n;
};

kernel void naive_matvec_f32(
        device const float*    W   [[buffer(0)]],
        device const float*    x   [[buffer(1)]],
        device float*          out [[buffer(2)]],
        constant MatvecParams& p   [[buffer(3)]],
        uint r [[thread_position_in_grid]]) {
    if (r >= p.n) return;
    device const float* row = W + (ulong)r * p.k;
    float acc = 0.0f;
    for (uint c = 0; c < p.k; ++c) acc = fma(row[c], x[c], acc);
    out[r] = acc;
}

// ---------------------------------------------------------------------------
// moe_gather_topk_weights (one thread):
//   ids[k] = order[k]; w[k] = probs[ids[k]] / Σ_{j<top_k} probs[ids[j]] · scale[ids[k]]
//   (w = 0 when the sum is not positive)
//   buffer(0) probs [E]  buffer(1) order [E] (descending)  buffer(2) scale [E]
//   buffer(3) ids [top_k]  buffer(4) w [top_k]  buffer(5) {n_experts, top_k}; top_k <= 8
// ---------------------------------------------------------------------------

struct MoeGatherTopkParams {
    uint n_experts;
    uint top_k;
};

kernel void moe_gather_topk_weights(
        device const float*           probs [[buffer(0)]],
        device const uint*            order [[buffer(1)]],
        device const float*           scale [[buffer(2)]],
        device uint*                  ids   [[buffer(3)]],
        device float*                 w     [[buffer(4)]],
        constant MoeGatherTopkParams& p     [[buffer(5)]],
        uint tid [[thread_position_in_grid]]) {
    if (tid != 0) return;
    const uint K = min(p.top_k, 8u);
    float total = 0.0f;
    for (uint k = 0; k < K; ++k) total += probs[order[k]];
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    for (uint k = 0; k < K; ++k) {
        const uint e = order[k];
        ids[k] = e;
        w[k] = (probs[e] * inv) * scale[e];
    }
}
