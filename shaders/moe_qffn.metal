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
// SIMD-groups of 32 lanes (Q4_GU_SG for the q4 gate_up).
//   gate_up:    grid (ceil(out_dim / (FF_SG·FF_GU_ROWS)), top_k); a SIMD-group
//               owns FF_GU_ROWS rows of one slot, gate and up together; q4:
//               grid (ceil(out_dim / (Q4_GU_SG·Q4_GU_U)), top_k), Q4_GU_U rows
//               a SIMD-group, taken one after the other with the next one's
//               loads in flight (q4_gate_up).
//   down_accum: grid ceil(out_dim / (FF_SG·FF_DN_ROWS)); a SIMD-group owns
//               FF_DN_ROWS output rows and loops over every (slot, chunk)
//               pair of them, so the sum over the slots happens in its
//               registers and one simd_sum: no atomics, no second pass.
//
// The 16-byte path everywhere: a lane's unit of work is a "chunk", 16 bytes of
// weights (a uint4: 32 inputs at 4 bits, 16 at 8 bits; a float4: 4 inputs at
// f32), lane l of a step taking chunks c0 + l + 32j. The inputs (x for
// gate_up; for down_accum h [top_k, in_dim] seen as one vector, whose chunk p
// is slot p / chunks-per-row's chunk) are staged in threadgroup memory, a
// tile of XT floats at a time (FF_XT; Q4_GU_XT and FF_DN4_XT for the q4 pair): read with coalesced 16-byte loads, pre-scaled for the
// int→float trick, stored chunk-transposed with an XOR swizzle (float4 i of
// chunk c at row i, column c ^ i) so that neither the stores nor the lanes'
// reads of consecutive chunks meet bank conflicts, and the plain sum of each
// float4 (for the bias term) beside it. The weights of a tile's first
// step are loaded before the staging, so they are in flight under it; every
// step issues all its loads (words, scales, biases of NCH chunks of every
// row) before any arithmetic. The q4 pair's tiles are sized for registers
// (sm_90, ptxas): gate_up's 2048-float tile leaves few staging float4s a thread
// live under the weight loads (128 registers with its two unit buffers), and down_accum's 6 chunks a lane cover
// top-8 × 768 inputs in one step, every load of the SIMD-group in flight at once. Chunks past the end and rows past the
// last are clamped to the last ones, never guarded by a branch, and their
// results dropped by a select. The group size must be a multiple of the
// inputs per chunk (32 at 4 bits, 16 at 8), so a chunk never straddles two
// groups.

#include <metal_stdlib>
using namespace metal;

#define FF_SG      4     // SIMD-groups per threadgroup
#define FF_GU_ROWS 2     // rows (of gate and of up) per SIMD-group, gate_up
#define FF_DN_ROWS 2     // output rows per SIMD-group, down_accum
#define FF_XT      6144  // floats of the staged input tile (24 KiB; chunks per tile a multiple of 8), q8 and f32
#define Q4_GU_SG   8     // q4 gate_up: SIMD-groups per threadgroup,
#define Q4_GU_U    3     //   row pairs per SIMD-group (units, pipelined),
#define Q4_GU_XT   2048  //   floats of its staged x tile (8 KiB: all of x for in_dim ≤ 2048)
#define FF_DN4_XT  6144  // q4 down_accum's h tile (top-8 × 768 in one tile)
#define FF_DN4_NCH 6     // chunks per lane per step, q4 down_accum (top-8 × 768: one step, every load in flight at once)
#define FF_XL(XT, NT) ((XT) / 4 / (NT))  // float4s of a tile per thread of a threadgroup of NT threads (the spec's)

// Inputs per 16-byte chunk, float4s per chunk, chunks per tile.
#define FF_IPC(BITS) ((BITS) == 4 ? 32u : (BITS) == 8 ? 16u : 4u)
#define FF_NV(BITS)  (FF_IPC(BITS) / 4u)
#define FF_TC(BITS, XT)  ((XT) / FF_IPC(BITS))

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
template <uint BITS, uint XT>
static inline uint ff_slot(uint c, uint i) { return i * FF_TC(BITS, XT) + (c ^ i); }

// Loads this thread's float4s of a tile of nq float4s (clamped: every load issued).
template <uint XT, uint NT>
static inline void ff_xload(thread float4* xr, device const float4* x4, uint nq, uint tid, uint ntg) {
    for (uint k = 0; k < FF_XL(XT, NT); ++k) xr[k] = x4[min(tid + k * ntg, nq - 1)];
}

// Float4 q of the tile into threadgroup memory, pre-scaled, and its plain
// sum (for the bias term) at the same slot of xsum.
template <uint BITS, uint XT>
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
        xs4[ff_slot<BITS, XT>(c, i)] = v * k;
        if (BITS != 32) xsum[ff_slot<BITS, XT>(c, i)] = ff_hsum(v);
    }
}

// Stores the loaded tile (and, for a threadgroup smaller than the spec's,
// loads and stores the rest), between the barriers that guard it.
template <uint BITS, uint XT, uint NT>
static inline void ff_xstore(threadgroup float4* xs4, threadgroup float* xsum, thread const float4* xr,
                             device const float4* x4, uint nq, uint tid, uint ntg) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous tile is consumed
    for (uint k = 0; k < FF_XL(XT, NT); ++k) ff_xput<BITS, XT>(xs4, xsum, xr[k], tid + k * ntg, nq);
    for (uint q0 = FF_XL(XT, NT) * ntg; q0 < XT / 4; q0 += ntg) ff_xput<BITS, XT>(xs4, xsum, x4[min(q0 + tid, nq - 1)], q0 + tid, nq);
    threadgroup_barrier(mem_flags::mem_threadgroup);
}

// Σ_i W[row, i]·x_i over staged chunk cl: wd the chunk's 16 bytes, s and b
// its group's scale and bias (unused for f32).
template <uint BITS, uint XT>
static inline float ff_chunk(uint4 wd, bfloat s, bfloat b, threadgroup const float4* xs4, threadgroup const float* xsum,
                             uint cl, uint magic) {
    float4 xv[FF_NV(BITS)];
    float xs = 0.0f;
    for (uint i = 0; i < FF_NV(BITS); ++i) {
        xv[i] = xs4[ff_slot<BITS, XT>(cl, i)];
        if (BITS != 32) xs += xsum[ff_slot<BITS, XT>(cl, i)];
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
template <uint BITS, uint XT, uint NCH>
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
    uint4 dg[NCH][FF_GU_ROWS], du[NCH][FF_GU_ROWS];
    bfloat sgv[NCH][FF_GU_ROWS], bgv[NCH][FF_GU_ROWS], suv[NCH][FF_GU_ROWS], buv[NCH][FF_GU_ROWS];
    for (uint t0 = 0; t0 < cpr; t0 += FF_TC(BITS, XT)) {
        const uint nct = min(FF_TC(BITS, XT), cpr - t0);  // chunks in this tile
        float4 xr[FF_XL(XT, FF_SG * 32)];
        ff_xload<XT, FF_SG * 32>(xr, x4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
        for (uint c0 = 0; c0 < nct; c0 += 32 * NCH) {
            // every load of the step (the first step's before the staging, under it)
            _Pragma("unroll") for (uint j = 0; j < NCH; ++j) {
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
            if (c0 == 0) ff_xstore<BITS, XT, FF_SG * 32>(xs4, xsum, xr, x4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
            // the dot products; clamped chunks dropped
            _Pragma("unroll") for (uint j = 0; j < NCH; ++j) {
                const uint cl = c0 + lane + 32 * j;
                const uint cc = min(cl, nct - 1);
                for (uint r = 0; r < FF_GU_ROWS; ++r) {
                    const float pg = ff_chunk<BITS, XT>(dg[j][r], sgv[j][r], bgv[j][r], xs4, xsum, cc, magic);
                    const float pu = ff_chunk<BITS, XT>(du[j][r], suv[j][r], buv[j][r], xs4, xsum, cc, magic);
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
template <uint BITS, uint XT, uint NCH>
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
    uint4 wd[NCH][FF_DN_ROWS];
    bfloat sv[NCH][FF_DN_ROWS], bv[NCH][FF_DN_ROWS];
    float rw[NCH];
    for (uint t0 = 0; t0 < np; t0 += FF_TC(BITS, XT)) {
        const uint nct = min(FF_TC(BITS, XT), np - t0);
        float4 xr[FF_XL(XT, FF_SG * 32)];
        ff_xload<XT, FF_SG * 32>(xr, h4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
        for (uint c0 = 0; c0 < nct; c0 += 32 * NCH) {
            _Pragma("unroll") for (uint j = 0; j < NCH; ++j) {
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
            if (c0 == 0) ff_xstore<BITS, XT, FF_SG * 32>(xs4, xsum, xr, h4 + t0 * FF_NV(BITS), nct * FF_NV(BITS), tid, ntg);
            _Pragma("unroll") for (uint j = 0; j < NCH; ++j) {
                const uint cl = c0 + lane + 32 * j;
                const uint cc = min(cl, nct - 1);
                for (uint r = 0; r < FF_DN_ROWS; ++r) {
                    const float v = rw[j] * ff_chunk<BITS, XT>(wd[j][r], sv[j][r], bv[j][r], xs4, xsum, cc, magic);
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
// gate_up q4, software-pipelined: a SIMD-group owns Q4_GU_U row pairs of one
// slot and takes them one "unit" at a time, a unit being one row of gate and
// one of up over the staged x tile (chunks lane and lane + 32). While it
// computes unit u, the words, scales and biases of unit u + 1 are already in
// flight (two register buffers), and one staged tile serves Q4_GU_SG · Q4_GU_U
// row pairs. On the H200 this took the q4 gate_up of Qwen3-30B-A3B's decode
// from 10.5 µs (8 SIMD-groups' worth of rows all loaded at once, staged per
// 8 row pairs) to 9.2 µs (bench/qffn-variants.sh).

// One unit's loads in gate_up: chunks lane and lane + 32 of the tile, gate and up.
struct Q4GuBuf {
    uint4 g0, g1, u0, u1;
    bfloat sg0, sg1, bg0, bg1, su0, su1, bu0, bu1;
};

static inline Q4GuBuf q4_gu_load(device const uint4* wg4, device const bfloat* gs, device const bfloat* gb,
                                 device const uint4* wu4, device const bfloat* us, device const bfloat* ub,
                                 uint row, uint cpr, uint gpr, uint cpg, uint c0, uint c1) {
    Q4GuBuf b;
    const ulong wr = (ulong)row * cpr;
    const ulong gr = (ulong)row * gpr;
    b.g0 = wg4[wr + c0];
    b.g1 = wg4[wr + c1];
    b.u0 = wu4[wr + c0];
    b.u1 = wu4[wr + c1];
    b.sg0 = gs[gr + c0 / cpg];
    b.sg1 = gs[gr + c1 / cpg];
    b.bg0 = gb[gr + c0 / cpg];
    b.bg1 = gb[gr + c1 / cpg];
    b.su0 = us[gr + c0 / cpg];
    b.su1 = us[gr + c1 / cpg];
    b.bu0 = ub[gr + c0 / cpg];
    b.bu1 = ub[gr + c1 / cpg];
    return b;
}

static inline void q4_gate_up(device const uint* wg, device const bfloat* gs, device const bfloat* gb,
                              device const uint* wu, device const bfloat* us, device const bfloat* ub,
                              device const float* x, device float* h, device const uint* ids,
                              uint out_dim, uint in_dim, uint group_size, uint n_experts, uint act,
                              threadgroup float4* xs4, threadgroup float* xsum,
                              uint2 tg, uint tid, uint ntg, uint sg, uint lane) {
    const uint slot = tg.y;
    const uint first = (tg.x * Q4_GU_SG + sg) * Q4_GU_U;
    const uint id = ids[slot];
    const bool present = id < n_experts;
    const uint e = min(id, n_experts - 1);
    const uint cpr = in_dim / 32u;
    const uint cpg = group_size / 32u;
    const uint gpr = in_dim / group_size;
    const uint magic = 0x4B000000u | (in_dim & 0x80000000u);
    device const uint4* wg4 = (device const uint4*)wg;
    device const uint4* wu4 = (device const uint4*)wu;
    device const float4* x4 = (device const float4*)x;

    float ag[Q4_GU_U];
    float au[Q4_GU_U];
    _Pragma("unroll") for (uint u = 0; u < Q4_GU_U; ++u) {
        ag[u] = 0.0f;
        au[u] = 0.0f;
    }
    for (uint t0 = 0; t0 < cpr; t0 += FF_TC(4, Q4_GU_XT)) {
        const uint nct = min(FF_TC(4, Q4_GU_XT), cpr - t0);
        const uint l0 = lane, l1 = lane + 32u;
        const uint c0 = t0 + min(l0, nct - 1), c1 = t0 + min(l1, nct - 1);
        float4 xr[FF_XL(Q4_GU_XT, Q4_GU_SG * 32)];
        ff_xload<Q4_GU_XT, Q4_GU_SG * 32>(xr, x4 + t0 * 8u, nct * 8u, tid, ntg);
        Q4GuBuf cur = q4_gu_load(wg4, gs, gb, wu4, us, ub, e * out_dim + min(first, out_dim - 1), cpr, gpr, cpg, c0, c1);
        ff_xstore<4, Q4_GU_XT, Q4_GU_SG * 32>(xs4, xsum, xr, x4 + t0 * 8u, nct * 8u, tid, ntg);
        const uint cc0 = min(l0, nct - 1), cc1 = min(l1, nct - 1);
        _Pragma("unroll") for (uint u = 0; u < Q4_GU_U; ++u) {
            Q4GuBuf nxt = cur;
            if (u + 1 < Q4_GU_U)  // (a constant once unrolled)
                nxt = q4_gu_load(wg4, gs, gb, wu4, us, ub, e * out_dim + min(first + u + 1, out_dim - 1), cpr, gpr, cpg, c0, c1);
            const float g0 = ff_chunk<4, Q4_GU_XT>(cur.g0, cur.sg0, cur.bg0, xs4, xsum, cc0, magic);
            const float g1 = ff_chunk<4, Q4_GU_XT>(cur.g1, cur.sg1, cur.bg1, xs4, xsum, cc1, magic);
            const float p0 = ff_chunk<4, Q4_GU_XT>(cur.u0, cur.su0, cur.bu0, xs4, xsum, cc0, magic);
            const float p1 = ff_chunk<4, Q4_GU_XT>(cur.u1, cur.su1, cur.bu1, xs4, xsum, cc1, magic);
            ag[u] += (l0 < nct ? g0 : 0.0f) + (l1 < nct ? g1 : 0.0f);
            au[u] += (l0 < nct ? p0 : 0.0f) + (l1 < nct ? p1 : 0.0f);
            cur = nxt;
        }
    }
    _Pragma("unroll") for (uint u = 0; u < Q4_GU_U; ++u) {
        const float g = simd_sum(ag[u]);
        const float v = simd_sum(au[u]);
        if (lane == 0 && first + u < out_dim) h[(ulong)slot * out_dim + first + u] = present ? ff_act(g, act) * v : 0.0f;
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
    threadgroup float4 xs4[Q4_GU_XT / 4];
    threadgroup float xsum[Q4_GU_XT / 4];
    q4_gate_up(wg, gs, gb, wu, us, ub, x, h, ids, out_dim, in_dim, group_size, n_experts, act, xs4, xsum, tg, tid, ntg, sg, lane);
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
    ff_gate_up<8, FF_XT, 2>(wg, gs, gb, wu, us, ub, x, h, ids, out_dim, in_dim, group_size, n_experts, act, xs4, xsum, tg, tid, ntg, sg, lane);
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
    // 4 float4s of each of 4 rows a lane a step in flight (2 took 28.1 µs for top-8 of 2048 -> 768 on the H200, 4 take 26.1)
    ff_gate_up<32, FF_XT, 4>((device const uint*)wg, none, none, (device const uint*)wu, none, none, x, h, ids,
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
    threadgroup float4 xs4[FF_DN4_XT / 4];
    threadgroup float xsum[FF_DN4_XT / 4];
    ff_down_accum<4, FF_DN4_XT, FF_DN4_NCH>(w, scales, biases, h, out, ids, route_w, shared, shared_gate, residual, out_dim, in_dim,
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
    ff_down_accum<8, FF_XT, 3>(w, scales, biases, h, out, ids, route_w, shared, shared_gate, residual, out_dim, in_dim,
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
    // 8 float4s of each of 2 rows a lane a step in flight (3 took 17.7 µs for top-8 of 768 -> 2048 on the H200, 8 take 14.7)
    ff_down_accum<32, FF_XT, 8>((device const uint*)w, none, none, h, out, ids, route_w, shared, shared_gate, residual,
                      out_dim, in_dim, 32u, n_experts, top_k, add_shared, add_residual, xs4, xsum, tg, tid, ntg, sg, lane);
}
