// Correct variant: the YaRN mix written as extrap · (1 − ramp·(1 − freq_scale)).
// (A copy of shaders/moe_norm_rope.metal with that one change.)
#include <metal_stdlib>
using namespace metal;

struct RmsNormParams {
    uint  n_rows;
    uint  dim;
    float eps;
};

// rsqrt(mean(x²) + eps) of one row. Every thread of the threadgroup calls it:
// each sums the squares of a strided slice, SIMD-groups fold their lanes,
// then after one barrier every thread adds the SIMD-group partials itself.
static inline float rms_inv(device const float* xr, uint dim, float eps,
                            threadgroup float* part,
                            uint lid, uint ntg, uint lane, uint sg) {
    float ss = 0.0f;
    for (uint j = lid; j < dim; j += ntg) {
        const float v = xr[j];
        ss = fma(v, v, ss);
    }
    ss = simd_sum(ss);
    if (lane == 0) part[sg] = ss;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float total = 0.0f;
    const uint nsg = (ntg + 31) / 32;
    for (uint s = 0; s < nsg; ++s) total += part[s];
    return rsqrt(total / float(dim) + eps);
}

kernel void rms_norm_f32(
        device const float*       x   [[buffer(0)]],
        device const float*       w   [[buffer(1)]],
        device float*             out [[buffer(2)]],
        constant RmsNormParams&   p   [[buffer(3)]],
        uint row  [[threadgroup_position_in_grid]],
        uint lid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint lane [[thread_index_in_simdgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]]) {
    threadgroup float part[32];
    if (row >= p.n_rows) return;
    device const float* xr = x + (ulong)row * p.dim;
    device float* yr = out + (ulong)row * p.dim;
    const float r = rms_inv(xr, p.dim, p.eps, part, lid, ntg, lane, sg);
    for (uint j = lid; j < p.dim; j += ntg) yr[j] = xr[j] * r * w[j];
}

kernel void rms_norm_bf16w_f32(
        device const float*       x   [[buffer(0)]],
        device const bfloat*      w   [[buffer(1)]],
        device float*             out [[buffer(2)]],
        constant RmsNormParams&   p   [[buffer(3)]],
        uint row  [[threadgroup_position_in_grid]],
        uint lid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint lane [[thread_index_in_simdgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]]) {
    threadgroup float part[32];
    if (row >= p.n_rows) return;
    device const float* xr = x + (ulong)row * p.dim;
    device float* yr = out + (ulong)row * p.dim;
    const float r = rms_inv(xr, p.dim, p.eps, part, lid, ntg, lane, sg);
    for (uint j = lid; j < p.dim; j += ntg) yr[j] = xr[j] * r * float(w[j]);
}

struct RopeParams {
    uint  n_tokens;
    uint  n_heads;
    uint  head_dim;
    uint  rot_dim;
    uint  neox;
    float theta_base;
};

struct RopeYarnParams {
    uint  n_tokens;
    uint  n_heads;
    uint  head_dim;
    uint  rot_dim;
    uint  neox;
    float theta_base;
    float freq_scale;
    float corr_low;
    float corr_high;
    float mscale;
};

// Rotates pair i of the head starting at `head` (or copies two pass-through
// elements when i ≥ rot_dim/2) by angle `theta`, scaling cos and sin by `m`.
static inline void rope_pair(device const float* x, device float* out, ulong head,
                             uint i, uint rot_dim, bool neox, float theta, float m) {
    const uint half_rot = rot_dim / 2;
    if (i >= half_rot) {
        const ulong j = head + rot_dim + 2 * (i - half_rot);
        out[j] = x[j];
        out[j + 1] = x[j + 1];
        return;
    }
    const ulong j0 = head + (neox ? i : 2 * i);
    const ulong j1 = j0 + (neox ? half_rot : 1);
    const float c = cos(theta) * m;
    const float s = sin(theta) * m;
    const float a = x[j0];
    const float b = x[j1];
    out[j0] = a * c - b * s;
    out[j1] = a * s + b * c;
}

// base^(−2i/rot_dim), as llama.cpp's kernel_rope computes it (pow of the base).
static inline float rope_inv_freq(float base, uint i, uint rot_dim) {
    return pow(base, -float(2 * i) / float(rot_dim));
}

kernel void rope_f32(
        constant RopeParams& p   [[buffer(0)]],
        device const float*  x   [[buffer(1)]],
        device const uint*   pos [[buffer(2)]],
        device float*        out [[buffer(3)]],
        uint3 gid [[thread_position_in_grid]]) {
    const uint i = gid.x;
    if (i >= p.head_dim / 2 || gid.y >= p.n_heads || gid.z >= p.n_tokens) return;
    const ulong head = ((ulong)gid.z * p.n_heads + gid.y) * p.head_dim;
    const float theta = float(pos[gid.z]) * rope_inv_freq(p.theta_base, i, p.rot_dim);
    rope_pair(x, out, head, i, p.rot_dim, p.neox != 0, theta, 1.0f);
}

kernel void rope_yarn_f32(
        constant RopeYarnParams& p   [[buffer(0)]],
        device const float*      x   [[buffer(1)]],
        device const uint*       pos [[buffer(2)]],
        device float*            out [[buffer(3)]],
        uint3 gid [[thread_position_in_grid]]) {
    const uint i = gid.x;
    if (i >= p.head_dim / 2 || gid.y >= p.n_heads || gid.z >= p.n_tokens) return;
    const ulong head = ((ulong)gid.z * p.n_heads + gid.y) * p.head_dim;
    const float extrap = rope_inv_freq(p.theta_base, i, p.rot_dim);
    const float ramp = clamp((float(i) - p.corr_low) / max(0.001f, p.corr_high - p.corr_low), 0.0f, 1.0f);
    const float inv = extrap * (1.0f - ramp * (1.0f - p.freq_scale));
    rope_pair(x, out, head, i, p.rot_dim, p.neox != 0, float(pos[gid.z]) * inv, p.mscale);
}
