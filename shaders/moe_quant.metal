// moe_quant.metal — mat-vecs over MLX-affine quantized weights (4- and 8-bit),
// the kernels MoE engines on Macs run their experts with.
//
// Format (src/quant/affine.ts): each row of W [out_dim, in_dim] is cut into
// groups of group_size consecutive input elements; a group has one scale and
// one bias (bfloat) and each element a q of 4 or 8 bits: w = q·scale + bias.
// A uint32 word holds 8 4-bit values or 4 8-bit values, the first element in
// the lowest bits. in_dim is a multiple of group_size, and group_size of the
// values per word, so a word never straddles two groups.
//
// Common interface (the layout engines use):
//   buffer(0) device const uint*   w       [out_dim, in_dim*bits/32]
//   buffer(1) device const bfloat* scales  [out_dim, in_dim/group_size]
//   buffer(2) device const bfloat* biases  [out_dim, in_dim/group_size]
//   buffer(3) device const float*  x       [in_dim]
//   buffer(4) device float*        y       [out_dim]
//   buffer(5) constant uint& out_dim
//   buffer(6) constant uint& in_dim
//   buffer(7) constant uint& group_size
// Variants add buffers after these (batched, expert-indexed) or take two
// weight sets (fused gate + up); each kernel's comment says how.
//
// Kernels:
//   moe_qmv4_f32 / moe_qmv8_f32              one thread per output row, x read from device memory
//   moe_qmv4_tiled_f32 / moe_qmv8_tiled_f32  SIMD-group per row (QT_ROWS rows each, one after the
//                                            other in registers), x cached in threadgroup memory
//   moe_qgate_up4_f32                        y = act(Wg·x) · (Wu·x), act = SiLU or GELU-tanh
//   moe_qmv4_batched_f32                     Y[t] = W·X[t] for N tokens, each word dequantized once
//   moe_qmv4_expert_f32                      all top-k experts of one token in one dispatch (tiled)
//   moe_qmv4_expert_naive_f32                the same, one thread per (row, slot)

#include <metal_stdlib>
using namespace metal;

// ---------------------------------------------------------------------------
// Tiled mat-vec geometry: QT_SG SIMD-groups per threadgroup, each owning
// QT_ROWS consecutive rows; x is cached QT_XT elements at a time.
#define QT_SG   4
#define QT_ROWS 4
#define QT_XT   2048   // floats of threadgroup memory (8 KiB): threadgroup(0)

// Dot product of one 4-bit word with its 8 inputs, split in two float4.
static inline float qdot4(uint w, float4 lo, float4 hi) {
    float a = float(w & 15u) * lo.x;
    a = fma(float((w >> 4) & 15u), lo.y, a);
    a = fma(float((w >> 8) & 15u), lo.z, a);
    a = fma(float((w >> 12) & 15u), lo.w, a);
    a = fma(float((w >> 16) & 15u), hi.x, a);
    a = fma(float((w >> 20) & 15u), hi.y, a);
    a = fma(float((w >> 24) & 15u), hi.z, a);
    a = fma(float(w >> 28), hi.w, a);
    return a;
}

// Dot product of one 8-bit word with its 4 inputs.
static inline float qdot8(uint w, float4 v) {
    float a = float(w & 255u) * v.x;
    a = fma(float((w >> 8) & 255u), v.y, a);
    a = fma(float((w >> 16) & 255u), v.z, a);
    a = fma(float(w >> 24), v.w, a);
    return a;
}

static inline float hsum4(float4 v) { return (v.x + v.y) + (v.z + v.w); }

// Copy x[base, base + n) into the threadgroup cache. For 4 bits the cache is
// split in halves: the first four inputs of word k go to float4 slot k, the
// last four to slot QT_XT/8 + k, so that the 32 lanes of a SIMD-group reading
// words k..k+31 read consecutive float4s (no bank conflicts). For 8 bits a
// word's four inputs are one float4 and the natural layout already is.
template <uint BITS>
static inline void qt_load_x(threadgroup float* xs, device const float* x, uint base, uint n,
                             uint tid, uint ntg) {
    for (uint i = tid; i < n; i += ntg) {
        const uint dst = BITS == 4 ? ((i >> 2) & 1u) * (QT_XT / 2) + (i >> 3) * 4 + (i & 3u) : i;
        xs[dst] = x[base + i];
    }
}

// The rows [first, first + QT_ROWS) of one SIMD-group, all threads of the
// threadgroup taking part in the loads of x (every thread must call this: it
// has barriers). Lane l handles words l, l + 32, ... of each row, so the 32
// lanes read 32 consecutive words of a row: coalesced. Per word the algebra
// is scale·Σ q_j·x_j + bias·Σ x_j (the bias term needs only the sum of x).
template <uint BITS>
static inline void qt_rows(device const uint* w, device const bfloat* scales, device const bfloat* biases,
                           device const float* x, device float* y,
                           uint out_dim, uint in_dim, uint group_size,
                           threadgroup float* xs, uint first,
                           uint tid, uint ntg, uint lane) {
    const uint per_word = 32 / BITS;
    const uint wpr = in_dim / per_word;     // words per row
    const uint gpr = in_dim / group_size;   // groups per row
    const uint wpg = group_size / per_word; // words per group
    threadgroup const float4* xs4 = (threadgroup const float4*)xs;

    float acc[QT_ROWS];
    for (uint r = 0; r < QT_ROWS; ++r) acc[r] = 0.0f;

    for (uint base = 0; base < in_dim; base += QT_XT) {
        const uint n = min(uint(QT_XT), in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous tile is consumed
        qt_load_x<BITS>(xs, x, base, n, tid, ntg);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        const uint k0 = base / per_word;
        for (uint k = lane; k < n / per_word; k += 32) {
            float4 lo;
            float4 hi;
            float xsum;
            if (BITS == 4) {
                lo = xs4[k];
                hi = xs4[QT_XT / 8 + k];
                xsum = hsum4(lo) + hsum4(hi);
            } else {
                lo = xs4[k];
                hi = lo;
                xsum = hsum4(lo);
            }
            const uint kk = k0 + k;
            const uint g = kk / wpg;
            for (uint r = 0; r < QT_ROWS; ++r) {
                const uint row = first + r;
                if (row < out_dim) {
                    const uint word = w[(ulong)row * wpr + kk];
                    const float s = float(scales[(ulong)row * gpr + g]);
                    const float b = float(biases[(ulong)row * gpr + g]);
                    const float qx = BITS == 4 ? qdot4(word, lo, hi) : qdot8(word, lo);
                    acc[r] = fma(s, qx, fma(b, xsum, acc[r]));
                }
            }
        }
    }
    for (uint r = 0; r < QT_ROWS; ++r) {
        const float v = simd_sum(acc[r]);
        if (lane == 0 && first + r < out_dim) y[first + r] = v;
    }
}

// 16-byte path of the 4-bit tiled rows, taken when group_size is a multiple
// of 32 (then so is in_dim): a uint4 of four packed words covers 32 inputs of
// one group (a "chunk"), and an x tile of QT_XT inputs is QF_TC chunks, two
// per lane. Per tile, each thread first issues its loads of x, then those of
// its chunks' words, scales and biases for all QT_ROWS rows, all in flight
// together; x goes first so that it is not queued behind the weights.
//
// Nibbles become floats without an int→float conversion (a slow instruction
// on GPUs): (w & 0xF<<4j) | 0x4B000000 is the float 2^23 + q·16^j exactly
// (the nibble sits in the mantissa), so subtracting 2^23 leaves q·16^j
// exactly, and x is stored pre-multiplied by 16^-j (a power of two: exact)
// so the product is q·x. Nibbles 5..7 come from w >> 12, to stay within the
// 23 mantissa bits. The tile is stored chunk-transposed (float4 i of chunk c
// in row i), with an XOR swizzle so that neither the copy (consecutive
// threads: the float4s of one chunk) nor the reads (consecutive lanes:
// consecutive chunks) meet bank conflicts; so are the per-float4 sums of the
// unscaled x (for the bias term).
#define QF_TC (QT_XT / 32)                // chunks per x tile
#define QF_XL (QT_XT / 4 / (QT_SG * 32))  // float4s of the tile per thread (the spec's threadgroup)

static inline uint qf_xslot(uint c, uint i) { return i * QF_TC + (c ^ i); }
static inline uint qf_pslot(uint c, uint i) { return i * QF_TC + (c ^ (i << 2)); }

// q·16^j of the nibble under mask (magic: 0x4B000000, passed in so that the
// compiler keeps it in a register and the mask and the or are one operation).
static inline float qnib(uint w, uint mask, uint magic) { return as_type<float>((w & mask) | magic) - 8388608.0f; }

// Σ_j q_j·x_j of one word, lo and hi its inputs pre-scaled as qf_store_x stores them.
static inline float qdot4s(uint w, float4 lo, float4 hi, uint magic) {
    const uint h = w >> 12;
    float a = qnib(w, 0xFu, magic) * lo.x;
    a = fma(qnib(w, 0xF0u, magic), lo.y, a);
    a = fma(qnib(w, 0xF00u, magic), lo.z, a);
    a = fma(qnib(w, 0xF000u, magic), lo.w, a);
    a = fma(qnib(w, 0xF0000u, magic), hi.x, a);
    a = fma(qnib(h, 0xF00u, magic), hi.y, a);
    a = fma(qnib(h, 0xF000u, magic), hi.z, a);
    a = fma(qnib(h, 0xF0000u, magic), hi.w, a);
    return a;
}

// Float4 q of the tile (chunk q/8, float4 q%8 of it) into threadgroup memory:
// pre-scaled, and its sum.
static inline void qf_store_x(threadgroup float4* xs4, threadgroup float* xpart, float4 v, uint q) {
    const uint c = q >> 3;
    const uint i = q & 7u;
    const float4 even = float4(1.0f, 0.0625f, 0.00390625f, 0.000244140625f);                    // 16^-j, j = 0..3
    const float4 odd = float4(0.0000152587890625f, 0.00390625f, 0.000244140625f, 0.0000152587890625f);  // j = 4..7 (5..7 from w >> 12)
    xs4[qf_xslot(c, i)] = v * ((i & 1u) != 0u ? odd : even);
    xpart[qf_pslot(c, i)] = hsum4(v);
}

// One chunk c of the tile for the QT_ROWS rows: acc[r] += scale·Σ q·x + bias·Σ x.
static inline void qf_chunk(thread float* acc, threadgroup const float4* xs4, threadgroup const float* xpart, uint c,
                            thread const uint4* wv, thread const bfloat* sv, thread const bfloat* bv, uint magic) {
    float4 xv[8];
    float xsum = 0.0f;
    for (uint i = 0; i < 8; ++i) {
        xv[i] = xs4[qf_xslot(c, i)];
        xsum += xpart[qf_pslot(c, i)];
    }
    for (uint r = 0; r < QT_ROWS; ++r) {
        const uint4 wd = wv[r];
        const float qx = (qdot4s(wd.x, xv[0], xv[1], magic) + qdot4s(wd.y, xv[2], xv[3], magic)) +
                         (qdot4s(wd.z, xv[4], xv[5], magic) + qdot4s(wd.w, xv[6], xv[7], magic));
        acc[r] = fma(float(sv[r]), qx, fma(float(bv[r]), xsum, acc[r]));
    }
}

// Loads the words, scale and bias of chunk c0 + c of the QT_ROWS rows. Rows
// past the last and chunks past the tile are clamped to the last ones, so
// that there is no branch: a load under a condition makes the GPU compilers
// wait for it before the next, where unconditional loads are all in flight
// at once. (Clamped rows are computed and not stored; clamped chunks are not
// computed.) The scales and biases stay bfloat until they are used, for the
// same reason.
static inline void qf_fetch(device const uint4* w4, device const bfloat* scales, device const bfloat* biases,
                            uint first, uint out_dim, uint cpr, uint cpg, uint gpr, uint c0, uint c, uint nc,
                            thread uint4* wv, thread bfloat* sv, thread bfloat* bv) {
    const uint cc = min(c, nc - 1);
    for (uint r = 0; r < QT_ROWS; ++r) {
        const uint row = min(first + r, out_dim - 1);
        const ulong g = (ulong)row * gpr + (c0 + cc) / cpg;
        wv[r] = w4[(ulong)row * cpr + c0 + cc];
        sv[r] = scales[g];
        bv[r] = biases[g];
    }
}

// As qt_rows<4> (the same rows, the same barriers for every thread), the
// 16-byte path; group_size % 32 == 0.
static inline void qf_rows(device const uint* w, device const bfloat* scales, device const bfloat* biases,
                           device const float* x, device float* y,
                           uint out_dim, uint in_dim, uint group_size,
                           threadgroup float* xs, threadgroup float* xpart, uint first,
                           uint tid, uint ntg, uint lane) {
    const uint cpr = in_dim / 32;          // chunks per row
    const uint cpg = group_size / 32;      // chunks per group
    const uint gpr = in_dim / group_size;  // groups per row
    const uint magic = 0x4B000000u | (in_dim & 0x80000000u);  // in_dim < 2^31: the constant, opaque to the compiler
    device const uint4* w4 = (device const uint4*)w;
    threadgroup float4* xs4 = (threadgroup float4*)xs;

    float acc[QT_ROWS];
    for (uint r = 0; r < QT_ROWS; ++r) acc[r] = 0.0f;

    for (uint c0 = 0; c0 < cpr; c0 += QF_TC) {
        const uint nc = min(uint(QF_TC), cpr - c0);
        const uint nq = nc * 8;  // float4s of x in this tile
        device const float4* x4 = (device const float4*)(x + c0 * 32);
        // 1. this thread's share of x, then this lane's words, scales and
        //    biases of the tile (chunks lane and lane + 32), all in flight
        float4 xr[QF_XL];
        for (uint k = 0; k < QF_XL; ++k) xr[k] = x4[min(tid + k * ntg, nq - 1)];  // clamped, as in qf_fetch
        uint4 wa[QT_ROWS], wb[QT_ROWS];
        bfloat sa[QT_ROWS], sb[QT_ROWS], ba[QT_ROWS], bb[QT_ROWS];
        qf_fetch(w4, scales, biases, first, out_dim, cpr, cpg, gpr, c0, lane, nc, wa, sa, ba);
        qf_fetch(w4, scales, biases, first, out_dim, cpr, cpg, gpr, c0, lane + 32, nc, wb, sb, bb);
        // 2. x into threadgroup memory
        threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous tile is consumed
        for (uint k = 0; k < QF_XL; ++k) {
            const uint q = tid + k * ntg;
            if (q < nq) qf_store_x(xs4, xpart, xr[k], q);
        }
        for (uint q = tid + QF_XL * ntg; q < nq; q += ntg) qf_store_x(xs4, xpart, x4[q], q);  // (a smaller threadgroup)
        threadgroup_barrier(mem_flags::mem_threadgroup);
        // 3. the dot products
        if (lane < nc) qf_chunk(acc, xs4, xpart, lane, wa, sa, ba, magic);
        if (lane + 32 < nc) qf_chunk(acc, xs4, xpart, lane + 32, wb, sb, bb, magic);
    }
    for (uint r = 0; r < QT_ROWS; ++r) {
        const float v = simd_sum(acc[r]);
        if (lane == 0 && first + r < out_dim) y[first + r] = v;
    }
}

// The 4-bit tiled rows by the best path for the group size (the same for the
// whole dispatch, so every thread meets the same barriers).
static inline void q4_rows(device const uint* w, device const bfloat* scales, device const bfloat* biases,
                           device const float* x, device float* y,
                           uint out_dim, uint in_dim, uint group_size,
                           threadgroup float* xs, threadgroup float* xpart, uint first,
                           uint tid, uint ntg, uint lane) {
    if (group_size % 32u == 0u)
        qf_rows(w, scales, biases, x, y, out_dim, in_dim, group_size, xs, xpart, first, tid, ntg, lane);
    else
        qt_rows<4>(w, scales, biases, x, y, out_dim, in_dim, group_size, xs, first, tid, ntg, lane);
}

// ---------------------------------------------------------------------------
// Naive: one thread per output row; launch with at least out_dim threads.
// Each weight is dequantized (q·scale + bias) and multiplied by x.

kernel void moe_qmv4_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        uint row [[thread_position_in_grid]]) {
    if (row >= out_dim) return;
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    device const uint* wr = w + (ulong)row * wpr;
    float acc = 0.0f;
    for (uint g = 0; g < gpr; ++g) {
        const float s = float(scales[(ulong)row * gpr + g]);
        const float b = float(biases[(ulong)row * gpr + g]);
        for (uint k = g * wpg; k < (g + 1) * wpg; ++k) {
            const uint word = wr[k];
            for (uint j = 0; j < 8; ++j) {
                const float wv = float((word >> (4 * j)) & 15u) * s + b;
                acc = fma(wv, x[k * 8 + j], acc);
            }
        }
    }
    y[row] = acc;
}

kernel void moe_qmv8_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        uint row [[thread_position_in_grid]]) {
    if (row >= out_dim) return;
    const uint wpr = in_dim / 4;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 4;
    device const uint* wr = w + (ulong)row * wpr;
    float acc = 0.0f;
    for (uint g = 0; g < gpr; ++g) {
        const float s = float(scales[(ulong)row * gpr + g]);
        const float b = float(biases[(ulong)row * gpr + g]);
        for (uint k = g * wpg; k < (g + 1) * wpg; ++k) {
            const uint word = wr[k];
            for (uint j = 0; j < 4; ++j) {
                const float wv = float((word >> (8 * j)) & 255u) * s + b;
                acc = fma(wv, x[k * 4 + j], acc);
            }
        }
    }
    y[row] = acc;
}

// ---------------------------------------------------------------------------
// Tiled: threadgroups of QT_SG·32 threads, each threadgroup QT_SG·QT_ROWS rows:
// grid ceil(out_dim / (QT_SG·QT_ROWS)) threadgroups; threadgroup(0): QT_XT floats.

kernel void moe_qmv4_tiled_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float xpart[QT_XT / 4];
    const uint first = (tg * QT_SG + sg) * QT_ROWS;
    q4_rows(w, scales, biases, x, y, out_dim, in_dim, group_size, xs, xpart, first, tid, ntg, lane);
}

kernel void moe_qmv8_tiled_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    const uint first = (tg * QT_SG + sg) * QT_ROWS;
    qt_rows<8>(w, scales, biases, x, y, out_dim, in_dim, group_size, xs, first, tid, ntg, lane);
}

// ---------------------------------------------------------------------------
// Expert-indexed (gather by id, as MLX's gather_qmv and llama.cpp's
// mul_mv_id): the top-k experts of one token in one dispatch.
//   buffers 0..7 as above, with w, scales, biases stacked over experts:
//             w [n_experts, out_dim, in_dim/8], scales/biases [n_experts, out_dim, in_dim/group_size]
//             x [in_dim] (x_per_pair = 0: gate/up, every slot reads the token's input)
//               or [top_k, in_dim] (x_per_pair = 1: down, slot i reads row i)
//             y [top_k, out_dim]
//   buffer(8)  device const uint* ids [top_k]
//   buffer(9)  constant uint& n_experts   (an id ≥ n_experts gives a row of zeros, no read)
//   buffer(10) constant uint& x_per_pair
// Tiled: grid (ceil(out_dim / (QT_SG·QT_ROWS)), top_k) threadgroups of QT_SG·32.

kernel void moe_qmv4_expert_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        device const uint*   ids        [[buffer(8)]],
        constant uint&       n_experts  [[buffer(9)]],
        constant uint&       x_per_pair [[buffer(10)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float xpart[QT_XT / 4];
    const uint slot = tg.y;
    const uint e = ids[slot];
    const uint first = (tg.x * QT_SG + sg) * QT_ROWS;
    device float* ys = y + (ulong)slot * out_dim;
    if (e >= n_experts) {  // the same for the whole threadgroup: leaving skips no barrier
        for (uint r = lane; r < QT_ROWS; r += 32)
            if (first + r < out_dim) ys[first + r] = 0.0f;
        return;
    }
    const ulong rows0 = (ulong)e * out_dim;
    q4_rows(w + rows0 * (in_dim / 8), scales + rows0 * (in_dim / group_size),
            biases + rows0 * (in_dim / group_size), x + (x_per_pair != 0u ? (ulong)slot * in_dim : 0ul),
            ys, out_dim, in_dim, group_size, xs, xpart, first, tid, ntg, lane);
}

// Naive expert-indexed: one thread per (row, slot); grid (out_dim, top_k) threads.
kernel void moe_qmv4_expert_naive_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        device const uint*   ids        [[buffer(8)]],
        constant uint&       n_experts  [[buffer(9)]],
        constant uint&       x_per_pair [[buffer(10)]],
        uint2 gid [[thread_position_in_grid]]) {
    const uint row = gid.x;
    const uint slot = gid.y;
    if (row >= out_dim) return;
    const uint e = ids[slot];
    if (e >= n_experts) { y[(ulong)slot * out_dim + row] = 0.0f; return; }
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    const ulong r = (ulong)e * out_dim + row;
    device const uint* wr = w + r * wpr;
    device const float* xr = x + (x_per_pair != 0u ? (ulong)slot * in_dim : 0ul);
    float acc = 0.0f;
    for (uint g = 0; g < gpr; ++g) {
        const float s = float(scales[r * gpr + g]);
        const float b = float(biases[r * gpr + g]);
        for (uint k = g * wpg; k < (g + 1) * wpg; ++k) {
            const uint word = wr[k];
            for (uint j = 0; j < 8; ++j) {
                acc = fma(float((word >> (4 * j)) & 15u) * s + b, xr[k * 8 + j], acc);
            }
        }
    }
    y[(ulong)slot * out_dim + row] = acc;
}

// ---------------------------------------------------------------------------
// Batched over N tokens (prefill of one expert): Y[t, r] = Σ_i W[r, i]·X[t, i].
//   buffers 0..7 as above with x [n_tokens, in_dim], y [n_tokens, out_dim]
//   buffer(8) constant uint& n_tokens
// Threadgroups of QB_SG·32 threads: SIMD-group per QB_ROWS rows and the
// threadgroup's QB_TOK tokens; each word is dequantized once into registers
// and used for every token. grid (ceil(out_dim / (QB_SG·QB_ROWS)), ceil(n_tokens / QB_TOK));
// threadgroup(0): QB_TOK·QB_XT floats (the tokens' inputs, one tile at a time).
#define QB_SG   4
#define QB_ROWS 2
#define QB_TOK  4
#define QB_XT   512

kernel void moe_qmv4_batched_f32(
        device const uint*   w          [[buffer(0)]],
        device const bfloat* scales     [[buffer(1)]],
        device const bfloat* biases     [[buffer(2)]],
        device const float*  x          [[buffer(3)]],
        device float*        y          [[buffer(4)]],
        constant uint&       out_dim    [[buffer(5)]],
        constant uint&       in_dim     [[buffer(6)]],
        constant uint&       group_size [[buffer(7)]],
        constant uint&       n_tokens   [[buffer(8)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint2 tg  [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sg   [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    const uint first = (tg.x * QB_SG + sg) * QB_ROWS;
    const uint t0 = tg.y * QB_TOK;
    const uint nt = min(uint(QB_TOK), n_tokens - t0);
    threadgroup const float4* xs4 = (threadgroup const float4*)xs;

    float acc[QB_ROWS][QB_TOK];
    for (uint r = 0; r < QB_ROWS; ++r)
        for (uint t = 0; t < QB_TOK; ++t) acc[r][t] = 0.0f;

    for (uint base = 0; base < in_dim; base += QB_XT) {
        const uint n = min(uint(QB_XT), in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = tid; i < QB_TOK * n; i += ntg) {
            const uint t = i / n;
            const uint c = i - t * n;
            xs[t * QB_XT + c] = t < nt ? x[(ulong)(t0 + t) * in_dim + base + c] : 0.0f;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = lane; k < n / 8; k += 32) {
            const uint kk = base / 8 + k;
            const uint g = kk / wpg;
            for (uint r = 0; r < QB_ROWS; ++r) {
                const uint row = first + r;
                if (row >= out_dim) continue;
                const uint word = w[(ulong)row * wpr + kk];
                const float s = float(scales[(ulong)row * gpr + g]);
                const float b = float(biases[(ulong)row * gpr + g]);
                const float4 wl = float4(float(word & 15u), float((word >> 4) & 15u),
                                         float((word >> 8) & 15u), float((word >> 12) & 15u)) * s + b;
                const float4 wh = float4(float((word >> 16) & 15u), float((word >> 20) & 15u),
                                         float((word >> 24) & 15u), float(word >> 28)) * s + b;
                for (uint t = 0; t < QB_TOK; ++t) {
                    const float4 xl = xs4[(t * QB_XT) / 4 + 2 * k];
                    const float4 xh = xs4[(t * QB_XT) / 4 + 2 * k + 1];
                    float a = acc[r][t];
                    a = fma(wl.x, xl.x, a); a = fma(wl.y, xl.y, a); a = fma(wl.z, xl.z, a); a = fma(wl.w, xl.w, a);
                    a = fma(wh.x, xh.x, a); a = fma(wh.y, xh.y, a); a = fma(wh.z, xh.z, a); a = fma(wh.w, xh.w, a);
                    acc[r][t] = a;
                }
            }
        }
    }
    for (uint r = 0; r < QB_ROWS; ++r) {
        for (uint t = 0; t < QB_TOK; ++t) {
            const float v = simd_sum(acc[r][t]);
            if (lane == 0 && first + r < out_dim && t < nt) y[(ulong)(t0 + t) * out_dim + first + r] = v;
        }
    }
}

// ---------------------------------------------------------------------------
// Fused gate + up (4-bit): y[r] = act(Σ Wg[r,i]·x[i]) · (Σ Wu[r,i]·x[i]).
//   buffer(0..2)  gate: w, scales, biases     buffer(3..5) up: w, scales, biases
//   buffer(6) x [in_dim]   buffer(7) y [out_dim]
//   buffer(8) out_dim  buffer(9) in_dim  buffer(10) group_size
//   buffer(11) act: 0 = SiLU g/(1+e^−g), 1 = GELU (tanh) 0.5·g·(1 + tanh(√(2/π)(g + 0.044715·g³)))
// Tiled like moe_qmv4_tiled_f32 with QG_ROWS rows per SIMD-group, both
// matrices read in the same pass over the cached x.
#define QG_ROWS 2

static inline float moe_act(float g, uint act) {
    if (act == 1u) {
        const float k = 0.7978845608028654f;  // √(2/π)
        return 0.5f * g * (1.0f + tanh(k * (g + 0.044715f * g * g * g)));
    }
    return g / (1.0f + exp(-g));
}

kernel void moe_qgate_up4_f32(
        device const uint*   wg         [[buffer(0)]],
        device const bfloat* sg_scales  [[buffer(1)]],
        device const bfloat* sg_biases  [[buffer(2)]],
        device const uint*   wu         [[buffer(3)]],
        device const bfloat* su_scales  [[buffer(4)]],
        device const bfloat* su_biases  [[buffer(5)]],
        device const float*  x          [[buffer(6)]],
        device float*        y          [[buffer(7)]],
        constant uint&       out_dim    [[buffer(8)]],
        constant uint&       in_dim     [[buffer(9)]],
        constant uint&       group_size [[buffer(10)]],
        constant uint&       act        [[buffer(11)]],
        threadgroup float*   xs         [[threadgroup(0)]],
        uint tg   [[threadgroup_position_in_grid]],
        uint tid  [[thread_index_in_threadgroup]],
        uint ntg  [[threads_per_threadgroup]],
        uint sgi  [[simdgroup_index_in_threadgroup]],
        uint lane [[thread_index_in_simdgroup]]) {
    const uint wpr = in_dim / 8;
    const uint gpr = in_dim / group_size;
    const uint wpg = group_size / 8;
    const uint first = (tg * QT_SG + sgi) * QG_ROWS;
    threadgroup const float4* xs4 = (threadgroup const float4*)xs;
    float ag[QG_ROWS];
    float au[QG_ROWS];
    for (uint r = 0; r < QG_ROWS; ++r) { ag[r] = 0.0f; au[r] = 0.0f; }

    for (uint base = 0; base < in_dim; base += QT_XT) {
        const uint n = min(uint(QT_XT), in_dim - base);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        qt_load_x<4>(xs, x, base, n, tid, ntg);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = lane; k < n / 8; k += 32) {
            const float4 lo = xs4[k];
            const float4 hi = xs4[QT_XT / 8 + k];
            const float xsum = hsum4(lo) + hsum4(hi);
            const uint kk = base / 8 + k;
            const uint g = kk / wpg;
            for (uint r = 0; r < QG_ROWS; ++r) {
                const uint row = first + r;
                if (row >= out_dim) continue;
                const ulong wi = (ulong)row * wpr + kk;
                const ulong gi = (ulong)row * gpr + g;
                ag[r] = fma(float(sg_scales[gi]), qdot4(wg[wi], lo, hi), fma(float(sg_biases[gi]), xsum, ag[r]));
                au[r] = fma(float(su_scales[gi]), qdot4(wu[wi], lo, hi), fma(float(su_biases[gi]), xsum, au[r]));
            }
        }
    }
    for (uint r = 0; r < QG_ROWS; ++r) {
        const float gate = simd_sum(ag[r]);
        const float up = simd_sum(au[r]);
        if (lane == 0 && first + r < out_dim) y[first + r] = moe_act(gate, act) * up;
    }
}
