// metal_glue.h — the Node surface of the Metal backend: an object `metal` on
// the addon's exports (typed as NativeMetal in src/backend/addon-types.ts).
// metal_glue.cc is plain C++ over the C functions of native/metal/metal_c_api.h;
// it is linked with the real implementation (metal_backend.mm, macOS) into
// moe_native.node, and with the recording fake (native/test/metal/fake_metal.cc)
// into the test-only addon moe_metal_fake.node.
#ifndef MOE_METAL_GLUE_H
#define MOE_METAL_GLUE_H

#include <napi.h>

namespace moe_metal_glue {

// Sets exports.metal = { deviceInfo, compile, run, time }.
void Register(Napi::Env env, Napi::Object exports);

}  // namespace moe_metal_glue

#endif
