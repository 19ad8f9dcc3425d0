// Correct variant: bf16 as ushort words, widened and rounded to nearest even
// by hand, flat row index, sigmoid-form GELU.
#include <metal_stdlib>
using namespace metal;

struct SeqP { uint inter; uint k; uint t; };

static inline float widen(ushort h) { return as_type<float>(uint(h) << 16); }
static inline ushort narrow_rne(float f) {
    uint b = as_type<uint>(f);
    b += 0x7fffu + ((b >> 16) & 1u);
    return ushort(b >> 16);
}

kernel void moe_swiglu_seq_bf16(
        device const ushort* gu [[buffer(0)]],
        device ushort* o [[buffer(1)]],
        constant SeqP& p [[buffer(2)]],
        uint3 g [[thread_position_in_grid]]) {
    if (g.z >= p.t || g.y >= p.k || g.x >= p.inter) return;
    const uint r = g.z * p.k + g.y;
    device const ushort* row = gu + 2u * p.inter * r;
    const float x = widen(row[g.x]);
    const float z = 0.7978845608f * (x + 0.044715f * x * x * x);
    o[r * p.inter + g.x] = narrow_rne(widen(row[p.inter + g.x]) * (x / (1.0f + exp(-2.0f * z))));
}
