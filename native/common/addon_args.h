// addon_args.h — argument checks shared by the addon's surfaces (addon.cc for
// the CPU runtime, addon_cuda.cc, metal_glue.cc): integers in a range and the
// NativeLaunch object of src/backend/addon-types.ts. Each throws a TypeError
// naming the argument. Header-only, no dependency on any backend.
#ifndef MOE_ADDON_ARGS_H
#define MOE_ADDON_ARGS_H

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace moe_addon {

[[noreturn]] inline void throw_type(Napi::Env env, const std::string &msg) { throw Napi::TypeError::New(env, msg); }

// A JS number that is an integer in [lo, hi].
inline double get_integer(Napi::Env env, Napi::Value v, const std::string &what, double lo, double hi) {
  if (!v.IsNumber()) throw_type(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < lo || d > hi) {
    char buf[128];
    std::snprintf(buf, sizeof buf, " must be an integer in [%.0f, %.0f]", lo, hi);
    throw_type(env, what + buf);
  }
  return d;
}

inline void get_dim3(Napi::Env env, Napi::Object launch, const char *key, uint32_t out[3]) {
  std::string what = std::string("launch.") + key;
  Napi::Value v = launch.Get(key);
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 3) throw_type(env, what + " must be an array of 3 integers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < 3; ++i) {
    out[i] = uint32_t(get_integer(env, a.Get(i), what + "[" + std::to_string(i) + "]", 0, 4294967295.0));
  }
}

// options.bufferNames (the names redzone reports give buffers): an array of at
// most `max` strings or nulls (null: no name); `prefix` starts each message.
inline std::vector<std::string> get_buffer_names(Napi::Env env, Napi::Value v, const std::string &prefix, uint32_t max) {
  if (!v.IsArray()) throw_type(env, prefix + "options.bufferNames must be an array of strings (or null)");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > max) throw_type(env, prefix + "options.bufferNames has more entries than buffer indices");
  std::vector<std::string> names;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value n = a.Get(i);
    if (n.IsString()) {
      names.push_back(n.As<Napi::String>().Utf8Value());
    } else if (n.IsNull() || n.IsUndefined()) {
      names.emplace_back();
    } else {
      throw_type(env, prefix + "options.bufferNames[" + std::to_string(i) + "] must be a string or null");
    }
  }
  return names;
}

// A NativeLaunch, as each backend's own launch struct is filled from it.
struct LaunchArgs {
  bool threadgroups = false;  // mode 'threadgroups' (else 'threads')
  uint32_t grid[3] = {1, 1, 1};
  uint32_t threadgroup[3] = {1, 1, 1};
  std::vector<uint64_t> tg_memory;  // bytes of [[threadgroup(i)]]
};

// `max_indices`: [[threadgroup(n)]] indices there are; `max_bytes`: the largest
// byte count a backend's launch struct holds; `indices_name` words the limit.
inline LaunchArgs get_launch(Napi::Env env, Napi::Value v, uint32_t max_indices, double max_bytes, const char *indices_name) {
  if (!v.IsObject() || v.IsArray()) throw_type(env, "launch must be an object");
  Napi::Object o = v.As<Napi::Object>();
  LaunchArgs l;
  Napi::Value mode = o.Get("mode");
  std::string m = mode.IsString() ? mode.As<Napi::String>().Utf8Value() : std::string();
  if (m == "threadgroups") {
    l.threadgroups = true;
  } else if (m != "threads") {
    throw_type(env, "launch.mode must be 'threads' or 'threadgroups'");
  }
  get_dim3(env, o, "grid", l.grid);
  get_dim3(env, o, "threadgroup", l.threadgroup);
  Napi::Value tgm = o.Get("threadgroupMemory");
  if (!tgm.IsUndefined() && !tgm.IsNull()) {
    if (!tgm.IsArray()) throw_type(env, "launch.threadgroupMemory must be an array of byte counts");
    Napi::Array a = tgm.As<Napi::Array>();
    if (a.Length() > max_indices) {
      throw_type(env, "launch.threadgroupMemory has " + std::to_string(a.Length()) + " entries, more than the " +
                          std::to_string(max_indices) + " " + indices_name);
    }
    for (uint32_t i = 0; i < a.Length(); ++i) {
      l.tg_memory.push_back(uint64_t(get_integer(env, a.Get(i), "launch.threadgroupMemory[" + std::to_string(i) + "]", 0, max_bytes)));
    }
  }
  return l;
}

}  // namespace moe_addon

#endif  // MOE_ADDON_ARGS_H
