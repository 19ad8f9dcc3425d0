// bad_abi.cc — a module that rejects the runtime (as one built for another ABI would).
#include "msl_cpu/abi.h"

#define MOE_EXPORT extern "C" __attribute__((visibility("default")))

MOE_EXPORT int __moe_bind_runtime(const MoeRuntimeApi *api) { return api->abi_version == MOE_ABI_VERSION + 1 ? 0 : 1; }

MOE_EXPORT const MoeKernelInfo *__moe_kernels(uint32_t *count) {
  *count = 0;
  return nullptr;
}
