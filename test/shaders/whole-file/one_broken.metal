// A file of several kernels, three of them broken in different ways: the
// others must still compile and run, each broken one reported with its line.
#include <metal_stdlib>
using namespace metal;

constant uint TILE = 32;

struct ZP { uint n; };

inline float twice(float x) { return 2.0f * x; }

kernel void zero_buffer(
        device float* b [[buffer(0)]],
        constant ZP& p [[buffer(1)]],
        uint i [[thread_position_in_grid]]) {
    if (i < p.n) b[i] = 0.0f;
}

// broken: an identifier that is declared nowhere (the C++ compiler finds it)
kernel void broken_undeclared(
        device float* b [[buffer(0)]],
        uint i [[thread_position_in_grid]]) {
    b[i] = twice(b[i]) + not_declared_anywhere;
}

// broken: a comma missing between two parameters (the front end finds it)
kernel void broken_signature(
        device float* b [[buffer(0)]]
        uint i [[thread_position_in_grid]]) {
    b[i] = 1.0f;
}

kernel void double_it(
        device float* b [[buffer(0)]],
        uint i [[thread_position_in_grid]],
        uint l [[thread_index_in_threadgroup]]) {
    threadgroup float tile[TILE];
    tile[l % TILE] = b[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    b[i] = twice(tile[l % TILE]);
}

// broken: a texture, which no backend of ours supports
kernel void broken_texture(
        device float* b [[buffer(0)]],
        uint i [[thread_position_in_grid]]) {
    texture2d<float> t;
    b[i] = 0.0f;
}

// broken: a type error only its instantiation shows
template <typename T>
kernel void scale(device T* b [[buffer(0)]], uint i [[thread_position_in_grid]]) {
    b[i] = b[i] * T(3);
}
template [[host_name("scale_f32")]] kernel void scale<float>(device float* b [[buffer(0)]], uint i [[thread_position_in_grid]]);
template [[host_name("scale_bad")]] kernel void scale<ZP>(device ZP* b [[buffer(0)]], uint i [[thread_position_in_grid]]);
