// VARIANT v0: shaders/moe_qffn.metal as it was before the q4 pair got its own tiles (gate_up q4 245
// (launch geometry of the shader before the pipelined gate_up: MOE_QFFN_Q4_GEOMETRY=4,2,4,2)
// registers, down_accum q4 160 on sm_90), the reference that bench/qffn-variants.sh times beside the others.
// moe_qffn.metal — the expert stage of one decode token in two dispatches.
//
//   moe_qffn_gate_up_{q4,q8,f32}:     h[s, r] = act(Wg[ids[s]]·x)[r] · (Wu[ids[s]]·x)[r]
//                                     for every top-k slot s: gate, up and the activation
//   moe_qffn_down_accum_{q4,q8,f32}:  out[r] = Σ_s route_w[s]·(Wd[ids[s]]·h[s])[r]
//                                     (+ shared_gate·shared[r]) (+ residual[r])
//
// Weights are stacked over experts: [n_experts, rows, in_dim], MLX affine
// quantized (w = q·scale + bias per group of group_size inputs, bf16 scale and
// bias, q packed lowest bits first in uint32 words; see moe_quant.metal) or
// f32. An id ≥ n_experts is a slot without an expert: gate_up writes zeros
// for it and down_accum adds nothing for it; no such id is ever read from.
//
// Geometry (mirrored by src/kernels/qffn-*.ts): threadgroups of FF_SG
// SIMD-groups of 32 lanes.
//   gate_up:    grid (ceil(out_dim / (FF_SG·FF_GU_ROWS)), top_k); a SIMD-group
//               owns FF_GU_ROWS rows of one slot, gate and up together.
//   down_accum: grid ceil(out_dim / (FF_SG·FF_DN_ROWS)); a SIMD-group owns
//               FF_DN_ROWS output rows and loops over every (slot, chunk)
//               pair of them, so the sum over the slots happens in its
//               registers and one simd_sum: no atomics, no second pass.
//
// The 16-byte path everywhere: a lane's unit of work is a "chunk", 16 bytes of
// weights (a uint4: 32 inputs at 4 bits, 16 at 8 bits; a float4: 4 inputs at
// f32), lane l of a step taking chunks c0 + l + 32j. The inputs (x for
// gate_up; for down_accum h [top_k, in_dim] seen as one vector, whose chunk p
// is slot p / chunks-per-row's chunk) are staged in threadgroup memory, FF_XT
// floats at a time: read with coalesced 16-byte loads, pre-scaled for the
// int→float trick, stored chunk-transposed with an XOR swizzle (float4 i of
// chunk c at row i, column c ^ i) so that neither the stores nor the lanes'
// reads of consecutive chunks meet bank conflicts, and the plain sum of each
// float4 (for the bias term) beside it. The weights of a tile's first
// step are loaded before the staging, so they are in flight under it; every
// step issues all its loads (words, scales, biases of FF_*_NCH chunks of
// every row) before any arithmetic. Chunks past the end and rows past the
// last are clamped to the last ones, never guarded by a branch, and their
// results dropped by a select. The group size must be a multiple of the
// inputs per chunk (32 at 4 bits, 16 at 8), so a chunk never straddles two
// groups.

#include <metal_stdlib>
using namespace metal;

#define FF_SG      4     // SIMD-groups per threadgroup
#define FF_GU_ROWS 2     // rows (of gate and of up) per SIMD-group, gate_up
#define FF_GU_NCH  2     // chunks per lane per step, gate_up
#define FF_DN_ROWS 2     // output rows per SIMD-group, down_accum
#define FF_DN_NCH  3     // chunks per lane per step, down_accum
#define FF_XT      6144  // floats of the staged input tile (24 KiB; chunks per tile a multiple of 8)
#define FF_XL      (FF_XT / 4 / (FF_SG * 32))  // float4s of a tile per thread (the spec's threadgroup)

// Inputs per 16-byte chunk, float4s per chunk, chunks per tile.
#define FF_IPC(BITS) ((BITS) == 4 ? 32u : (BITS) == 8 ? 16u : 4u)
#define FF_NV(BITS)  (FF_IPC(BITS) / 4u)
#define FF_TC(BITS)  (FF_XT / FF_IPC(BITS))

static inline float ff_hsum(float4 v) { return (v.x + v.y) + (v.z + v.w); }

// q·2^k of the bits under mask, without an int→float conversion: the bits sit
// in the mantissa of 2^23 (magic 0x4B000000, passed in so it stays in a register).
static inline float ff_bits(uint w, uint mask, uint magic) { return as_type<float>((w & mask) | magic) - 8388608.0f; }

// Σ q_j·x_j of one 4-bit word; lo, hi its 8 inputs pre-scaled by 16^-j (j = 0..4)
// and, for nibbles 5..7 (taken from w >> 12), 16^-(j-3).
static inline float ff_dot4(uint w, float4 lo, float4 hi, uint magic) {
    const uint h = w >> 12;
    float a = ff_bits(w, 0xFu, magic) * lo.x;
    a = fma(ff_bits(w, 0xF0u, magic), lo.y, a);
    a = fma(ff_bits(w, 0xF00u, magic), lo.z, a);
    a = fma(ff_bits(w, 0xF000u, magic), lo.w, a);
    a = fma(ff_bits(w, 0xF0000u, magic), hi.x, a);
    a = fma(ff_bits(h, 0xF00u, magic), hi.y, a);
    a = fma(ff_bits(h, 0xF000u, magic), hi.z, a);
    a = fma(ff_bits(h, 0xF0000u, magic), hi.w, a);
    return a;
}

// Σ q_j·x_j of one 8-bit word; v its 4 inputs pre-scaled by (1, 2^-8, 1, 2^-8)
// (bytes 2, 3 from w >> 16).
static inline float ff_dot8(uint w, float4 v, uint magic) {
    const uint h = w >> 16;
    float a = ff_bits(w, 0xFFu, magic) * v.x;
    a = fma(ff_bits(w, 0xFF00u, magic), v.y, a);
    a = fma(ff_bits(h, 0xFFu, magic), v.z, a);
    a = fma(ff_bits(h, 0xFF00u, magic), v.w, a);
    return a;
}

// Slot of float4 i of chunk c in the staged tile.
template <uint BITS>
static inline uint ff_slot(uint c, uint i) { return i * FF_TC(BITS) + (c ^ i); }

// Loads this thread's float4s of a tile of nq float4s (clamped: every load issued).
static inline void ff_xload(thread float4* xr, device const float4* x4, uint nq, uint tid, uint ntg) {
    for (uint k = 0; k < FF_XL; ++k) xr[k] = x4[min(tid + k * ntg, nq - 1)];
}

// Float4 q of the tile into threadgroup memory, pre-scaled, and its plain
// sum (for the bias term) at the same slot of xsum.
template <uint BITS>
static inline void ff_xput(threadgroup float4* xs4, threadgroup float* xsum, float4 v, uint q, uint nq) {
    const uint c = q / FF_NV(BITS);
    const uint i = q % FF_NV(BITS);
    float4 k = float4(1.0f);
    if (BITS == 4) {
        k = (i & 1u) != 0u ? float4(0.0000152587890625f, 0.00390625f, 0.000244140625f, 0.0000152587890625f)
                           : float4(1.0f, 0.0625f, 0.00390625f, 0.000244140625f);
    } else if (BITS == 8) {
        k = float4(1.0f, 0.00390625f, 1.0f, 0.00390625f);
    }
    if (q < nq) {
        xs4[ff_slot<BITS>(c, i)] = v * k;
        if (BITS != 32) xsum[ff_slot<BITS>(c, i)] = ff_hsum(v);
    }
}

// Stores the loaded tile (and, for a threadgroup smaller than the spec's,
// loads and stores the rest), between the barriers that guard it.
template <uint BITS>
static inline void ff_xstore(threadgroup float4* xs4, threadgroup float* xsum, thread const float4* xr,
                             device const float4* x4, uint nq, uint tid, uint ntg) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous tile is consumed
    for (uint k = 0; k < FF_XL; ++k) ff_xput<BITS>(xs4, xsum, xr[k], tid + k * ntg, nq);
    for (uint q0 = FF_XL * ntg; q0 < FF_XT / 4; q0 += ntg) ff_xput<BITS>(xs4, xsum, x4[min(q0 + tid, nq - 1)], q0 + tid, nq);
    threadgroup_barrier(mem_flags::mem_threadgroup);
}

// Σ_i W[row, i]·x_i over staged chunk cl: wd the chunk's 16 bytes, s and b
// its group's scale and bias (unused for f32).
template <uint BITS>
static inline float ff_chunk(uint4 wd, bfloat s, bfloat b, threadgroup const float4* xs4, threadgroup const float* xsum,
                             uint cl, uint magic) {
    float4 xv[FF_NV(BITS)];
    float xs = 0.0f;
    for (uint i = 0; i < FF_NV(BITS); ++i) {
        xv[i] = xs4[ff_slot<BITS>(cl, i)];
        if (BITS != 32) xs += xsum[ff_slot<BITS>(cl, i)];
    }
    if (BITS == 4) {
        const float qx = (ff_dot4(wd.x, xv[0], xv[1], magic) + ff_dot4(wd.y, xv[2], xv[3], magic)) +
                         (ff_dot4(wd.z, xv[4], xv[5], magic) + ff_dot4(wd.w, xv[6], xv[7], magic));
        return fma(float(s), qx, float(b) * xs);
    } else if (BITS == 8) {
        const float qx = (ff_dot8(wd.x, xv[0], magic) + ff_dot8(wd.y, xv[1], magic)) +
                         (ff_dot8(wd.z, xv[2], magic) + ff_dot8(wd.w, xv[3], magic));
        return fma(float(s), qx, float(b) * xs);
    }
    return ff_hsum(as_type<float4>(wd) * xv[0]);
}

static inline float ff_act(float g, uint act) {
    if (act == 1u) {
        const float k = 0.7978845608028654f;  // √(2/π)
        return 0.5f * g * (1.0f + tanh(k * (g + 0.044715f * g * g * g)));
    }
    return g / (1.0f + exp(-g));
}

// gate_up for BITS = 4, 8 or 32 (f32: w as uint4 bit patterns, no scales).
template <uint BITS>
static inline void ff_gate_up(device const uint* wg, device const bfloat* gs, device const bfloat* gb,
                              device const uint* wu, device const bfloat* us, device const bfloat* ub,
                              device const float* x, device float* h, device const uint* ids,
                              uint out_dim, uint in_dim, uint group_size, uint n_experts, uint act,
                              threadgroup float4* xs4, threadgroup float* xsum,
                              uint2 tg, uint tid, uint ntg, uint sg, uint lane) {
    const uint slot = tg.y;
    const uint first = (tg.x * FF_SG + sg) * FF_GU_ROWS;
    const uint id = ids[slot];
    const bool present = id < n_experts;
    const uint e = min(id, n_experts - 1);
    const uint cpr = in_dim / FF_IPC(BITS);
    const uint cpg = BITS == 32 ? 1u : group_size / FF_IPC(BITS);
    const uint gpr = BITS == 32 ? 1u : in_dim / group_size;
    const uint magic = 0x4B000000u | (in_dim & 0x80000000u);  // in_dim < 2^31: the constant, opaque to the compiler
    device const uint4* wg4 = (device const uint4*)wg;
    device const uint4* wu4 = (device const uint4*)wu;
    device const float4* x4 = (device const float4*)x;

    float ag[FF_GU_ROWS];
    float au[FF_GU_ROWS];
    ulong rows[FF_GU_ROWS];
    for (uint r = 0; r < FF_GU_ROWS; ++r) {
        ag[r] = 0.0f;
        au[r] = 0.0f;
        rows[r] = (ulong)e * out_dim + min(first + r, out_dim - 1);
    }
    uint4 dg[FF_GU_NCH][FF_GU_ROWS], du[FF_GU_NCH][FF_GU_ROWS];
    bfloat sgv[FF_GU_NCH][FF_GU_ROWS], bgv[FF_GU_NCH][FF_GU_ROWS], suv[FF_GU_NCH][FF_GU_ROWS], buv[FF_GU_NCH][FF_GU_ROWS];
    for (uint t0 = 0; t0 < cpr; t0 += FF_TC(BITS)) {
        const uint nct = min(FF_TC(BITS), cpr - t0);  // chunks in this tile
        float4 xr[FF_XL];
        ff_xload(xr, x4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
        for (uint c0 = 0; c0 < nct; c0 += 32 * FF_GU_NCH) {
            // every load of the step (the first step's before the staging, under it)
            _Pragma("unroll") for (uint j = 0; j < FF_GU_NCH; ++j) {
                const uint c = t0 + min(c0 + lane + 32 * j, nct - 1);
                for (uint r = 0; r < FF_GU_ROWS; ++r) {
                    dg[j][r] = wg4[rows[r] * cpr + c];
                    du[j][r] = wu4[rows[r] * cpr + c];
                    if (BITS != 32) {  // (a constant: no branch)
                        const ulong g = rows[r] * gpr + c / cpg;
                        sgv[j][r] = gs[g];
                        bgv[j][r] = gb[g];
                        suv[j][r] = us[g];
                        buv[j][r] = ub[g];
                    }
                }
            }
            if (c0 == 0) ff_xstore<BITS>(xs4, xsum, xr, x4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
            // the dot products; clamped chunks dropped
            _Pragma("unroll") for (uint j = 0; j < FF_GU_NCH; ++j) {
                const uint cl = c0 + lane + 32 * j;
                const uint cc = min(cl, nct - 1);
                for (uint r = 0; r < FF_GU_ROWS; ++r) {
                    const float pg = ff_chunk<BITS>(dg[j][r], sgv[j][r], bgv[j][r], xs4, xsum, cc, magic);
                    const float pu = ff_chunk<BITS>(du[j][r], suv[j][r], buv[j][r], xs4, xsum, cc, magic);
                    ag[r] += cl < nct ? pg : 0.0f;
                    au[r] += cl < nct ? pu : 0.0f;
                }
            }
        }
    }
    for (uint r = 0; r < FF_GU_ROWS; ++r) {
        const float g = simd_sum(ag[r]);
        const float u = simd_sum(au[r]);
        if (lane == 0 && first + r < out_dim) h[(ulong)slot * out_dim + first + r] = present ? ff_act(g, act) * u : 0.0f;
    }
}

// down_accum for BITS = 4, 8 or 32. Pair p of the SIMD-group's rows is chunk
// p of h seen as one vector [top_k · in_dim]: slot p / cpr, chunk p % cpr.
template <uint BITS>
static inline void ff_down_accum(device const uint* w, device const bfloat* scales, device const bfloat* biases,
                                 device const float* h, device float* out, device const uint* ids,
                                 device const float* route_w, device const float* shared,
                                 device const float* shared_gate, device const float* residual,
                                 uint out_dim, uint in_dim, uint group_size, uint n_experts, uint top_k,
                                 uint add_shared, uint add_residual,
                                 threadgroup float4* xs4, threadgroup float* xsum,
                                 uint tg, uint tid, uint ntg, uint sg, uint lane) {
    const uint first = (tg * FF_SG + sg) * FF_DN_ROWS;
    const uint cpr = in_dim / FF_IPC(BITS);
    const uint cpg = BITS == 32 ? 1u : group_size / FF_IPC(BITS);
    const uint gpr = BITS == 32 ? 1u : in_dim / group_size;
    const uint magic = 0x4B000000u | (in_dim & 0x80000000u);
    const uint np = top_k * cpr;
    device const uint4* w4 = (device const uint4*)w;
    device const float4* h4 = (device const float4*)h;

    float acc[FF_DN_ROWS];
    for (uint r = 0; r < FF_DN_ROWS; ++r) acc[r] = 0.0f;
    uint4 wd[FF_DN_NCH][FF_DN_ROWS];
    bfloat sv[FF_DN_NCH][FF_DN_ROWS], bv[FF_DN_NCH][FF_DN_ROWS];
    float rw[FF_DN_NCH];
    for (uint t0 = 0; t0 < np; t0 += FF_TC(BITS)) {
        const uint nct = min(FF_TC(BITS), np - t0);
        float4 xr[FF_XL];
        ff_xload(xr, h4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
        for (uint c0 = 0; c0 < nct; c0 += 32 * FF_DN_NCH) {
            _Pragma("unroll") for (uint j = 0; j < FF_DN_NCH; ++j) {
                const uint p = t0 + min(c0 + lane + 32 * j, nct - 1);
                const uint slot = p / cpr;
                const uint id = ids[slot];
                const uint e = min(id, n_experts - 1);
                // an id past the experts adds nothing: its routing weight counts as 0
                const float rwv = route_w[slot];
                rw[j] = id < n_experts ? rwv : 0.0f;
                for (uint r = 0; r < FF_DN_ROWS; ++r) {
                    const ulong row = (ulong)e * out_dim + min(first + r, out_dim - 1);
                    const uint c = p - slot * cpr;
                    wd[j][r] = w4[row * cpr + c];
                    if (BITS != 32) {  // (a constant: no branch)
                        const ulong g = row * gpr + c / cpg;
                        sv[j][r] = scales[g];
                        bv[j][r] = biases[g];
                    }
                }
            }
            if (c0 == 0) ff_xstore<BITS>(xs4, xsum, xr, h4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
            _Pragma("unroll") for (uint j = 0; j < FF_DN_NCH; ++j) {
                const uint cl = c0 + lane + 32 * j;
                const uint cc = min(cl, nct - 1);
                for (uint r = 0; r < FF_DN_ROWS; ++r) {
                    const float v = rw[j] * ff_chunk<BITS>(wd[j][r], sv[j][r], bv[j][r], xs4, xsum, cc, magic);
                    acc[r] += cl < nct ? v : 0.0f;
                }
            }
        }
    }
    for (uint r = 0; r < FF_DN_ROWS; ++r) {
        const float v = simd_sum(acc[r]);
        const uint row = first + r;
        if (lane == 0 && row < out_dim) {
            float o = v;
            if (add_shared != 0u) o = fma(shared_gate[0], shared[row], o);
            if (add_residual != 0u) o += residual[row];
            out[row] = o;
        }
    }
}

// ---------------------------------------------------------------------------
// gate_up, quantized:
//   buffer(0..2) gate w [n_experts, out_dim, in_dim·bits/32], scales, biases [n_experts, out_dim, in_dim/group_size]
//   buffer(3..5) up   w, scales, biases (the same shapes)
//   buffer(6) x [in_dim]   buffer(7) h [top_k, out_dim]   buffer(8) ids [top_k]
//   buffer(9) out_dim  buffer(10) in_dim  buffer(11) group_size  buffer(12) n_experts
//   buffer(13) act: 0 = SiLU g/(1+e^−g), 1 = GELU-tanh 0.5·g·(1 + tanh(√(2/π)(g + 0.044715·g³)))

kernel void moe_qffn_gate_up_q4(
        device const uint*   wg         [[buffer(0)]],
        device const bfloat* gs         [[buffer(1)]],
        device const bfloat* gb         [[buffer(2)]],
        device const uint*   wu         [[buffer(3)]],
        device const bfloat* us         [[buffer(4)]],
        device const bfloat* ub         [[buffer(5)]],
        device const float*  x          [[buffer(6)]],
        device float*        h          [[buffer(7)]],
        device const uint*   ids        [[buffer(8)]],
        constant uint&       out_dim    [[buffer(9)]],
        constant uint&       in_dim     [[buffer(10)]],
        constant uint&       group_size [[buffer(11)]],
        constant uint&       n_experts  [[buffer(12)]],
        constant uint&       act        [[buffer(13)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float4 xs4[FF_XT / 4];
    threadgroup float xsum[FF_XT / 4];
    ff_gate_up<4>(wg, gs, gb, wu, us, ub, x, h, ids, out_dim, in_dim, group_size, n_experts, act, xs4, xsum, tg, tid, ntg, sg, lane);
}

kernel void moe_qffn_gate_up_q8(
        device const uint*   wg         [[buffer(0)]],
        device const bfloat* gs         [[buffer(1)]],
        device const bfloat* gb         [[buffer(2)]],
        device const uint*   wu         [[buffer(3)]],
        device const bfloat* us         [[buffer(4)]],
        device const bfloat* ub         [[buffer(5)]],
        device const float*  x          [[buffer(6)]],
        device float*        h          [[buffer(7)]],
        device const uint*   ids        [[buffer(8)]],
        constant uint&       out_dim    [[buffer(9)]],
        constant uint&       in_dim     [[buffer(10)]],
        constant uint&       group_size [[buffer(11)]],
        constant uint&       n_experts  [[buffer(12)]],
        constant uint&       act        [[buffer(13)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float4 xs4[FF_XT / 4];
    threadgroup float xsum[FF_XT / 4];
    ff_gate_up<8>(wg, gs, gb, wu, us, ub, x, h, ids, out_dim, in_dim, group_size, n_experts, act, xs4, xsum, tg, tid, ntg, sg, lane);
}

// gate_up, f32: buffer(0) gate w [n_experts, out_dim, in_dim], buffer(1) up w,
// buffer(2) x, buffer(3) h, buffer(4) ids, buffer(5) out_dim, buffer(6) in_dim,
// buffer(7) n_experts, buffer(8) act. in_dim % 4 == 0.
kernel void moe_qffn_gate_up_f32(
        device const float*  wg         [[buffer(0)]],
        device const float*  wu         [[buffer(1)]],
        device const float*  x          [[buffer(2)]],
        device float*        h          [[buffer(3)]],
        device const uint*   ids        [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       n_experts  [[buffer(7)]],
        constant uint&       act        [[buffer(8)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    // no scales: the weights' pointer stands in for them, never read (BITS = 32)
    threadgroup float4 xs4[FF_XT / 4];
    threadgroup float xsum[FF_XT / 4];
    device const bfloat* none = (device const bfloat*)wg;
    ff_gate_up<32>((device const uint*)wg, none, none, (device const uint*)wu, none, none, x, h, ids,
                   out_dim, in_dim, 32u, n_experts, act, xs4, xsum, tg, tid, ntg, sg, lane);
}

// ---------------------------------------------------------------------------
// down_accum, quantized:
//   buffer(0..2) w [n_experts, out_dim, in_dim·bits/32], scales, biases
//   buffer(3) h [top_k, in_dim] (gate_up's output)   buffer(4) out [out_dim]
//   buffer(5) ids [top_k]   buffer(6) route_w [top_k]
//   buffer(7) shared [out_dim]   buffer(8) shared_gate [1]   buffer(9) residual [out_dim]
//   buffer(10) out_dim  buffer(11) in_dim  buffer(12) group_size  buffer(13) n_experts
//   buffer(14) top_k    buffer(15) add_shared  buffer(16) add_residual
// (shared, shared_gate and residual are read only when their flag is set.)

kernel void moe_qffn_down_accum_q4(
        device const uint*   w            [[buffer(0)]],
        device const bfloat* scales       [[buffer(1)]],
        device const bfloat* biases       [[buffer(2)]],
        device const float*  h            [[buffer(3)]],
        device float*        out          [[buffer(4)]],
        device const uint*   ids          [[buffer(5)]],
        device const float*  route_w      [[buffer(6)]],
        device const float*  shared       [[buffer(7)]],
        device const float*  shared_gate  [[buffer(8)]],
        device const float*  residual     [[buffer(9)]],
        constant uint&       out_dim      [[buffer(10)]],
        constant uint&       in_dim       [[buffer(11)]],
        constant uint&       group_size   [[buffer(12)]],
        constant uint&       n_experts    [[buffer(13)]],
        constant uint&       top_k        [[buffer(14)]],
        constant uint&       add_shared   [[buffer(15)]],
        constant uint&       add_residual [[buffer(16)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float4 xs4[FF_XT / 4];
    threadgroup float xsum[FF_XT / 4];
    ff_down_accum<4>(w, scales, biases, h, out, ids, route_w, shared, shared_gate, residual, out_dim, in_dim,
                     group_size, n_experts, top_k, add_shared, add_residual, xs4, xsum, tg, tid, ntg, sg, lane);
}

kernel void moe_qffn_down_accum_q8(
        device const uint*   w            [[buffer(0)]],
        device const bfloat* scales       [[buffer(1)]],
        device const bfloat* biases       [[buffer(2)]],
        device const float*  h            [[buffer(3)]],
        device float*        out          [[buffer(4)]],
        device const uint*   ids          [[buffer(5)]],
        device const float*  route_w      [[buffer(6)]],
        device const float*  shared       [[buffer(7)]],
        device const float*  shared_gate  [[buffer(8)]],
        device const float*  residual     [[buffer(9)]],
        constant uint&       out_dim      [[buffer(10)]],
        constant uint&       in_dim       [[buffer(11)]],
        constant uint&       group_size   [[buffer(12)]],
        constant uint&       n_experts    [[buffer(13)]],
        constant uint&       top_k        [[buffer(14)]],
        constant uint&       add_shared   [[buffer(15)]],
        constant uint&       add_residual [[buffer(16)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float4 xs4[FF_XT / 4];
    threadgroup float xsum[FF_XT / 4];
    ff_down_accum<8>(w, scales, biases, h, out, ids, route_w, shared, shared_gate, residual, out_dim, in_dim,
                     group_size, n_experts, top_k, add_shared, add_residual, xs4, xsum, tg, tid, ntg, sg, lane);
}

// down_accum, f32: buffer(0) w [n_experts, out_dim, in_dim], then h, out, ids,
// route_w, shared, shared_gate, residual at 1..7, out_dim 8, in_dim 9,
// n_experts 10, top_k 11, add_shared 12, add_residual 13. in_dim % 4 == 0.
kernel void moe_qffn_down_accum_f32(
        device const float*  w            [[buffer(0)]],
        device const float*  h            [[buffer(1)]],
        device float*        out          [[buffer(2)]],
        device const uint*   ids          [[buffer(3)]],
        device const float*  route_w      [[buffer(4)]],
        device const float*  shared       [[buffer(5)]],
        device const float*  shared_gate  [[buffer(6)]],
        device const float*  residual     [[buffer(7)]],
        constant uint&       out_dim      [[buffer(8)]],
        constant uint&       in_dim       [[buffer(9)]],
        constant uint&       n_experts    [[buffer(10)]],
        constant uint&       top_k        [[buffer(11)]],
        constant uint&       add_shared   [[buffer(12)]],
        constant uint&       add_residual [[buffer(13)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float4 xs4[FF_XT / 4];
    threadgroup float xsum[FF_XT / 4];
    device const bfloat* none = (device const bfloat*)w;
    ff_down_accum<32>((device const uint*)w, none, none, h, out, ids, route_w, shared, shared_gate, residual,
                      out_dim, in_dim, 32u, n_experts, top_k, add_shared, add_residual, xs4, xsum, tg, tid, ntg, sg, lane);
}
