// A small kernel module as src/msl emits it (for compile checks and timing).
#include "msl_cpu.h"
#line 1 "sample.metal"
// #include <metal_stdlib>
using namespace metal;

struct Params { uint n; float scale; };

inline float gelu(float x) {
  return 0.5f * x * (1.0f + tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
}

void scale_rows(Params& p, const float* in, float* out, bfloat* outb,
                uint gid, uint3 tg) {
  if (gid >= p.n) return;
  float x = in[gid];
  float m = max(x, 0.0f);
  m = fmax(m, in[min(gid + 1u, p.n - 1u)]);
  float4 v = float4(x, m, 1.0f, 2.0f);
  v.xy() = v.yx() * p.scale;
  out[gid] = gelu(clamp(v.x + v.y + exp(x) + float(tg.x), -15.0f, 15.0f)) + dot(v, float4(1.0f));
  outb[gid] = out[gid];
}

extern "C" void __moe_entry_0(const MoeThreadCtx* __t) {
  scale_rows(*reinterpret_cast<Params*>(__t->d->buffers[0]),
             reinterpret_cast<const float*>(__t->d->buffers[1]),
             reinterpret_cast<float*>(__t->d->buffers[2]),
             reinterpret_cast<bfloat*>(__t->d->buffers[3]),
             ::moe_rt::builtin_as<uint>(::moe_rt::bi_thread_position_in_grid(__t)),
             ::moe_rt::builtin_as<uint3>(::moe_rt::bi_threadgroup_position_in_grid(__t)));
}
static const MoeKernelInfo __moe_kernel_table[] = { {"scale_rows", &__moe_entry_0, 0u, 0u} };
extern "C" __attribute__((visibility("default"))) const MoeKernelInfo* __moe_kernels(uint32_t* n) { *n = 1; return __moe_kernel_table; }
