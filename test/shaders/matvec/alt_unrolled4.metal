// Correct variant: four partial sums over columns c ≡ 0..3 (mod 4), combined
// pairwise, then the tail — another reduction order.
#include <metal_stdlib>
using namespace metal;

struct MV { uint m; uint k; uint n; };

kernel void naive_matvec_f32(
        device const float* W [[buffer(0)]],
        device const float* x [[buffer(1)]],
        device float* y [[buffer(2)]],
        constant MV& p [[buffer(3)]],
        uint r [[thread_position_in_grid]]) {
    if (r >= p.n) return;
    device const float* row = W + r * p.k;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    uint c = 0;
    for (; c + 4 <= p.k; c += 4) {
        s0 += row[c] * x[c];
        s1 += row[c + 1] * x[c + 1];
        s2 += row[c + 2] * x[c + 2];
        s3 += row[c + 3] * x[c + 3];
    }
    float s = (s0 + s1) + (s2 + s3);
    for (; c < p.k; ++c) s += row[c] * x[c];
    y[r] = s;
}
