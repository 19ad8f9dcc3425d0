// fake_addon.cc — the test-only addon build/Release/moe_metal_fake.node: the
// real Metal glue (native/metal/metal_glue.cc) over the recording fake of
// metal_c_api.h (fake_metal.cc), plus `fake`, its control:
//   fake.setProfile(name), fake.profile(), fake.calls() -> string[], fake.clearCalls()
// Built only where OS != 'mac' (binding.gyp); never part of the package's
// runtime: the Metal backend loads it only when MOE_METAL_ADDON names it.
#include <napi.h>

#include "fake_metal.h"
#include "../../metal/metal_glue.h"

namespace {

Napi::Value SetProfile(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "fake.setProfile(name): name must be a string");
  std::string why;
  if (!moe_fake_metal::set_profile(info[0].As<Napi::String>().Utf8Value(), &why)) throw Napi::Error::New(env, why);
  return env.Undefined();
}

Napi::Value Profile(const Napi::CallbackInfo &info) { return Napi::String::New(info.Env(), moe_fake_metal::profile()); }

Napi::Value Calls(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::vector<std::string> calls = moe_fake_metal::calls();
  Napi::Array out = Napi::Array::New(env, calls.size());
  for (uint32_t i = 0; i < calls.size(); ++i) out.Set(i, Napi::String::New(env, calls[i]));
  return out;
}

Napi::Value ClearCalls(const Napi::CallbackInfo &info) {
  moe_fake_metal::clear_calls();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  moe_metal_glue::Register(env, exports);
  Napi::Object fake = Napi::Object::New(env);
  fake.Set("setProfile", Napi::Function::New(env, SetProfile, "setProfile"));
  fake.Set("profile", Napi::Function::New(env, Profile, "profile"));
  fake.Set("calls", Napi::Function::New(env, Calls, "calls"));
  fake.Set("clearCalls", Napi::Function::New(env, ClearCalls, "clearCalls"));
  exports.Set("fake", fake);
  return exports;
}

}  // namespace

NODE_API_MODULE(moe_metal_fake, Init)
