#include <metal_stdlib>
using namespace metal;
#define TG 64
constant uint N = 128;
constexpr constant uint M = N / 2;
static constant constexpr int K = 4;
constant float scale = 0.5;
constant float table[4] = {1.0, 2.0, 3.0, 4.0};
template <uint S> inline float pick(threadgroup float* a) { return a[S - 1]; }
kernel void program_constants(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]], uint g [[threadgroup_position_in_grid]]) {
  threadgroup float a[N];
  threadgroup float b[M + K];
  threadgroup float c[TG];
  a[tid] = float(tid) * scale;
  if (tid < M + K) b[tid] = table[tid % 4];
  if (tid < TG) c[tid] = 1.0;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[g * N + tid] = a[N - 1 - tid] + pick<M + K>(b) + pick<TG>(c);
}
