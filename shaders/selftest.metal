// Device self-test: tiny kernels whose outputs are known exactly. A device
// that gets any of them wrong is refused before any verify or bench, so a
// broken or emulated GPU can never turn into kernel PASS or FAIL rows.
#include <metal_stdlib>
using namespace metal;

// out[i] = in[i] for 1000 threads in groups of 64 (a partial last group).
kernel void selftest_copy(device const uint* in  [[buffer(0)]],
                          device uint*       out [[buffer(1)]],
                          uint i [[thread_position_in_grid]]) {
    out[i] = in[i] ^ 0x5a5a5a5au;
}

// Threadgroup-memory tree reduction with barriers: out[g] = Σ in[g*256 .. g*256+255].
kernel void selftest_barrier_sum(device const uint* in  [[buffer(0)]],
                                 device uint*       out [[buffer(1)]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint g   [[threadgroup_position_in_grid]]) {
    threadgroup uint buf[256];
    buf[tid] = in[g * 256 + tid];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = 128; s > 0; s >>= 1) {
        if (tid < s) buf[tid] += buf[tid + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (tid == 0) out[g] = buf[0];
}

// SIMD-group sum and broadcast: out[i] = (Σ lanes of its SIMD-group) * 1000 + lane of the first.
kernel void selftest_simd(device const uint* in  [[buffer(0)]],
                          device uint*       out [[buffer(1)]],
                          uint i    [[thread_position_in_grid]],
                          uint lane [[thread_index_in_simdgroup]]) {
    uint s = simd_sum(in[i]);
    uint f = simd_broadcast_first(lane);
    out[i] = s * 1000u + f;
}

// The bfloat round trip is in selftest_bfloat.metal: bfloat needs MSL 3.1, and
// one bfloat kernel here would keep this whole file from compiling on MSL 3.0.
