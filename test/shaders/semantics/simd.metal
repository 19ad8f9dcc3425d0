// Each SIMD-group collective, per thread, into 20 slots. Launched with
// threadgroups of 48 threads: a full SIMD-group and a partial one of 16 lanes.
#include <metal_stdlib>
using namespace metal;

kernel void collectives(device const int* in [[buffer(0)]],
                        device int* out [[buffer(1)]],
                        uint gid  [[thread_position_in_grid]],
                        uint lane [[thread_index_in_simdgroup]]) {
    const int v = in[gid];
    device int* o = out + gid * 20;
    o[0] = simd_sum(v);
    o[1] = simd_max(v);
    o[2] = simd_min(v);
    o[3] = simd_prefix_inclusive_sum(v);
    o[4] = simd_prefix_exclusive_sum(v);
    o[5] = simd_shuffle(v, lane ^ 1);
    o[6] = simd_shuffle_down(v, 1);
    o[7] = simd_shuffle_up(v, 1);
    o[8] = simd_shuffle_xor(v, 2);
    o[9] = simd_broadcast(v, 3);
    o[10] = simd_broadcast_first(v);
    o[11] = simd_all(v > -1000) ? 1 : 0;
    o[12] = simd_any(v == 7) ? 1 : 0;
    o[13] = (int)(uint)(ulong)simd_ballot((v & 1) != 0);
    o[14] = simd_and(v | 0x100);
    o[15] = simd_or(v & 0xf);
    o[16] = simd_xor(v);
    o[17] = simd_product((v & 1) != 0 ? -1 : 1);
    o[18] = simd_is_first() ? 1 : 0;
    o[19] = (int)lane;
}
