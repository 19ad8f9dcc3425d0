// CORRECT variant written differently: the packed words are read as bytes
// (little-endian: byte j of a word is element j), each weight is dequantized
// with fma(q, scale, bias), and the loop runs over elements, not words.
#include <metal_stdlib>
using namespace metal;

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
    device const uchar* bytes = (device const uchar*)(w + row * (in_dim / 4));
    device const bfloat* srow = scales + row * (in_dim / group_size);
    device const bfloat* brow = biases + row * (in_dim / group_size);
    float acc = 0.0f;
    for (uint i = 0; i < in_dim; ++i) {
        const uint g = i / group_size;
        const float wv = fma(float(bytes[i]), float(srow[g]), float(brow[g]));
        acc += wv * x[i];
    }
    y[row] = acc;
}
