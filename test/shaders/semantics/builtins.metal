// Every compute builtin, written out per thread: 20 uints per thread at its
// linear position in the grid. Used with both launch modes.
#include <metal_stdlib>
using namespace metal;

kernel void builtins(device uint* out [[buffer(0)]],
                     constant uint3& grid [[buffer(1)]],
                     uint3 tpg   [[thread_position_in_grid]],
                     uint3 tptg  [[thread_position_in_threadgroup]],
                     uint3 tgpg  [[threadgroup_position_in_grid]],
                     uint3 tptgs [[threads_per_threadgroup]],
                     uint3 tgspg [[threadgroups_per_grid]],
                     uint3 tspg  [[threads_per_grid]],
                     uint  tiitg [[thread_index_in_threadgroup]],
                     uint  tiisg [[thread_index_in_simdgroup]],
                     uint  sgitg [[simdgroup_index_in_threadgroup]],
                     uint  tpsg  [[threads_per_simdgroup]],
                     ushort2 tpg2 [[thread_position_in_grid]]) {
    if (tpg.x >= grid.x || tpg.y >= grid.y || tpg.z >= grid.z) return;
    const uint i = (tpg.z * grid.y + tpg.y) * grid.x + tpg.x;
    device uint* o = out + i * 20;
    o[0] = tpg.x;  o[1] = tpg.y;  o[2] = tpg.z;
    o[3] = tptg.x; o[4] = tptg.y; o[5] = tptg.z;
    o[6] = tgpg.x; o[7] = tgpg.y; o[8] = tgpg.z;
    o[9] = tptgs.x; o[10] = tptgs.y; o[11] = tptgs.z;
    o[12] = tgspg.x * 10000 + tgspg.y * 100 + tgspg.z;
    o[13] = tspg.x * 10000 + tspg.y * 100 + tspg.z;
    o[14] = tiitg; o[15] = tiisg; o[16] = sgitg; o[17] = tpsg;
    o[18] = tpg2.x + tpg2.y * 1000;
    o[19] = o[19] + 1;  // counts executions: the buffer starts at 0
}
