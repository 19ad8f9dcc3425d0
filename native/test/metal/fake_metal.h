// fake_metal.h — control of the recording fake of metal_c_api.h (tests only).
//
// fake_metal.cc implements the C interface of native/metal/metal_c_api.h
// without Metal: it records every call (bindings in order, setBytes vs
// buffer, threadgroup memory lengths, dispatch mode and sizes, warm-up and
// batches), emulates a few tiny kernels on the host, and plays a device
// profile, chosen by MOE_FAKE_METAL or setProfile():
//
//   m2             an Apple7/Apple8/Mac2/Metal3 GPU with MSL 3.1 (the default)
//   paravirtual    "Apple Paravirtual device", Apple5 only; kernels have no effect
//   no-msl31       macOS 13: MSL 3.0, so a source using bfloat does not compile
//   broken-simd    SIMD-group sums over 16 lanes instead of 32
//   compile-error  every compile fails with a located error
//   cb-error       every command buffer fails (a GPU timeout)
//   no-device      no Metal device at all
//
// Emulated kernels: the self-test's, zero_buffer, moe_accumulate, and the
// planted bugs zero_buffer_oob_write / zero_buffer_oob_before
// (test/shaders/zero-buffer), which store one float past the end or before
// the start of buffer(0): into its redzone when the glue gave it one, and
// with MTL_SHADER_VALIDATION=1 in the environment their command buffer fails
// with a shader validation log instead, as metal_backend.mm reports it.
#ifndef MOE_FAKE_METAL_H
#define MOE_FAKE_METAL_H

#include <string>
#include <vector>

namespace moe_fake_metal {

// Switches the profile and clears the call log; false (with why) for an unknown name.
bool set_profile(const std::string &name, std::string *why);
std::string profile();
std::vector<std::string> calls();
void clear_calls();

}  // namespace moe_fake_metal

#endif
