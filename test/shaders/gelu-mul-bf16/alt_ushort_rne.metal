// Correct variant: bf16 taken as raw 16-bit words (ushort), widened and
// rounded to nearest even by hand; GELU in the sigmoid form.
#include <metal_stdlib>
using namespace metal;

struct FusedGeluMulParams { uint n_elements; };

static inline float widen(ushort h) { return as_type<float>(uint(h) << 16); }
static inline ushort narrow_rne(float f) {
    uint b = as_type<uint>(f);
    b += 0x7fffu + ((b >> 16) & 1u);
    return ushort(b >> 16);
}

kernel void fused_gelu_mul_bf16(
        device const ushort* g [[buffer(0)]],
        device const ushort* u [[buffer(1)]],
        device ushort* o [[buffer(2)]],
        constant FusedGeluMulParams& prm [[buffer(3)]],
        uint gid [[thread_position_in_grid]]) {
    if (gid >= prm.n_elements) return;
    const float x = widen(g[gid]);
    const float z = 0.7978845608f * x * (1.0f + 0.044715f * x * x);
    o[gid] = narrow_rne(widen(u[gid]) * (x / (1.0f + exp(-2.0f * z))));
}
