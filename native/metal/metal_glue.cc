// metal_glue.cc — `addon.metal`: the Node surface of the Metal backend, in
// plain C++ over the C functions of native/metal/metal_c_api.h (nothing here
// knows Objective-C). Typed as NativeMetal in src/backend/addon-types.ts:
//
//   deviceInfo() -> { name, maxThreadsPerThreadgroup, recommendedWorkingSet,
//                     unifiedMemory, families, mslVersion, maxThreadgroupMemory }
//   compile(source, entry, { fastMath }?) -> pipeline
//                     { entry, execWidth, maxThreads, staticThreadgroupMemory }
//   run(pipeline, bindings, launch) -> Promise<void>
//   time(pipeline, bindings, launch, { warmup, perBatch, batches })
//                  -> Promise<Float64Array>  (GPU ns of each batch)
//
// bindings: [{ index, data: Uint8Array, bytes: boolean, name?: string }], as
// planned by src/backend/launch.ts (bytes: a setBytes param struct of 1..4096
// bytes; name: the buffer's name, for reports).
//
// Redzones (native/common/redzone.h): every buffer binding's host copy is
// [guard | the bytes | guard], the guards filled with their pattern here; the
// implementation makes one MTLBuffer of all of it, binds it past the first
// guard and copies all of it back (metal_c_api.h); the guards are scanned
// here after the dispatches, and a changed one rejects the promise with the
// out-of-bounds write. MOE_GPU_REDZONES=0 turns them off.
//
// Arguments are checked on the main thread (TypeError thrown at once); a
// launch that Metal would refuse — a threadgroup larger than the pipeline's
// maxTotalThreadsPerThreadgroup, a zero grid, threadgroup memory that is not
// a multiple of 16 or over the device's maximum — rejects the promise before
// anything is dispatched. The bytes are copied on the main thread, the
// dispatch runs on a libuv worker (Napi::AsyncWorker) under a mutex that
// serialises every dispatch of the process, and the buffers are copied back
// into their views when the promise settles.
#include "metal_glue.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../common/addon_args.h"
#include "../common/addon_worker.h"
#include "../common/redzone.h"
#include "metal_c_api.h"

namespace moe_metal_glue {
namespace {

constexpr uint32_t kBufferIndices = 31;     // Metal's buffer argument table: [[buffer(0..30)]]
constexpr uint32_t kThreadgroupIndices = 31;
constexpr uint64_t kMaxSetBytes = 4096;     // setBytes:length:atIndex: is for data under 4 KB
constexpr uint32_t kThreadgroupGranule = 16;
constexpr size_t kErrLen = 4096;

// Marks the objects compile() returns, so run()/time() accept nothing else.
const napi_type_tag kPipelineTag = {0x6d6f656d74616c70ULL, 0x6970656c696e6531ULL};

std::mutex &dispatch_mutex() {
  static std::mutex m;
  return m;
}

using moe_addon::get_integer;
using moe_addon::throw_type;
[[noreturn]] void throw_error(Napi::Env env, const std::string &msg) { throw Napi::Error::New(env, msg); }

struct Pipeline {
  void *handle = nullptr;
  std::string entry;
  MoeMetalPipelineInfo info{};
  ~Pipeline() { moe_metal_release(handle); }
};

// The device (the implementation keeps the MTLDevice; its properties are cheap to read).
bool device_info(MoeMetalDeviceInfo *out, std::string *why) {
  char err[kErrLen] = {0};
  if (moe_metal_device_info(out, err, sizeof err) != 0) {
    *why = err[0] != '\0' ? err : "no Metal device";
    return false;
  }
  return true;
}

std::string get_string(Napi::Env env, Napi::Value v, const std::string &what) {
  if (!v.IsString()) throw_type(env, what + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty()) throw_type(env, what + " must not be empty");
  if (s.find('\0') != std::string::npos) throw_type(env, what + " contains a NUL character");
  return s;
}

struct ParsedLaunch {
  MoeMetalLaunch launch{};
  std::vector<uint32_t> tg_mem;
};

ParsedLaunch parse_launch(Napi::Env env, Napi::Value v) {
  moe_addon::LaunchArgs a = moe_addon::get_launch(env, v, kThreadgroupIndices, 4294967295.0, "[[threadgroup(n)]] indices");
  ParsedLaunch p;
  p.launch.mode = a.threadgroups ? 1 : 0;
  for (int i = 0; i < 3; ++i) {
    p.launch.grid[i] = a.grid[i];
    p.launch.tg[i] = a.threadgroup[i];
  }
  for (uint64_t bytes : a.tg_memory) p.tg_mem.push_back(uint32_t(bytes));
  return p;
}

// Why Metal would refuse this launch of this pipeline on this device, or "".
std::string launch_problem(const ParsedLaunch &p, const Pipeline &pl, const MoeMetalDeviceInfo &dev) {
  const uint32_t *g = p.launch.grid, *t = p.launch.tg;
  char buf[512];
  if (g[0] == 0 || g[1] == 0 || g[2] == 0) {
    std::snprintf(buf, sizeof buf, "grid (%u,%u,%u) has a zero dimension", g[0], g[1], g[2]);
    return buf;
  }
  if (t[0] == 0 || t[1] == 0 || t[2] == 0) {
    std::snprintf(buf, sizeof buf, "threadgroup (%u,%u,%u) has a zero dimension", t[0], t[1], t[2]);
    return buf;
  }
  uint64_t threads = uint64_t(t[0]) * t[1] * t[2];
  if (threads > pl.info.max_threads) {
    std::snprintf(buf, sizeof buf,
                  "a threadgroup of %u×%u×%u = %llu threads exceeds the pipeline's maxTotalThreadsPerThreadgroup "
                  "of %u",
                  t[0], t[1], t[2], (unsigned long long)threads, pl.info.max_threads);
    return buf;
  }
  if (p.launch.mode == 1) {
    for (int k = 0; k < 3; ++k) {
      if (uint64_t(g[k]) * t[k] > 0xFFFFFFFFull) {
        std::snprintf(buf, sizeof buf, "%u threadgroups of %u threads in dimension %c exceed 2^32-1 threads", g[k], t[k],
                      "xyz"[k]);
        return buf;
      }
    }
  }
  uint64_t total = pl.info.static_threadgroup_memory;
  for (size_t i = 0; i < p.tg_mem.size(); ++i) {
    if (p.tg_mem[i] % kThreadgroupGranule != 0) {
      std::snprintf(buf, sizeof buf, "threadgroup memory length %u at [[threadgroup(%zu)]] is not a multiple of 16 bytes",
                    p.tg_mem[i], i);
      return buf;
    }
    total += p.tg_mem[i];
  }
  if (total > dev.max_threadgroup_memory) {
    std::snprintf(buf, sizeof buf,
                  "threadgroup memory of %llu bytes (%u declared in the kernel) exceeds the device's "
                  "maxThreadgroupMemoryLength of %u",
                  (unsigned long long)total, pl.info.static_threadgroup_memory, dev.max_threadgroup_memory);
    return buf;
  }
  return "";
}

Pipeline *get_pipeline(Napi::Env env, Napi::Value v, const char *fn) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kPipelineTag)) {
    throw_type(env, std::string(fn) + ": pipeline must be an object returned by metal.compile");
  }
  Napi::Value h = v.As<Napi::Object>().Get("handle");
  return h.As<Napi::External<Pipeline>>().Data();
}

class DispatchWorker : public moe_addon::DispatchWorkerBase {
 public:
  DispatchWorker(Napi::Env env, bool timing, Napi::Object pipeline_obj, Pipeline *pipeline)
      : DispatchWorkerBase(env, "moe_metal.dispatch", timing), pipeline_ref_(Napi::Persistent(pipeline_obj)), pipeline_(pipeline) {}

  // One entry per binding: the host copy, the view to copy it back into
  // (empty for setBytes and aliases), and the C binding pointing at the copy.
  std::vector<std::vector<uint8_t>> host;
  std::vector<Napi::Reference<Napi::Uint8Array>> views;
  std::vector<MoeMetalBinding> bindings;
  std::vector<std::string> names;  // per binding ("" unnamed)
  ParsedLaunch launch;
  uint32_t warmup = 0, per_batch = 1, batches = 1;

 protected:
  void Execute() override {
    static uint8_t empty = 0;
    for (size_t i = 0; i < bindings.size(); ++i) bindings[i].data = host[i].empty() ? &empty : host[i].data();
    launch.launch.tg_mem = launch.tg_mem.empty() ? nullptr : launch.tg_mem.data();
    launch.launch.n_tg_mem = uint32_t(launch.tg_mem.size());
    if (timing_) times_.assign(batches, 0.0);
    char err[kErrLen] = {0};
    int rc;
    {
      std::lock_guard<std::mutex> lock(dispatch_mutex());
      rc = moe_metal_dispatch(pipeline_->handle, bindings.data(), uint32_t(bindings.size()), &launch.launch,
                              timing_ ? warmup : 0, timing_ ? per_batch : 1, timing_ ? batches : 1,
                              timing_ ? times_.data() : nullptr, err, sizeof err);
    }
    if (rc != 0) {
      SetError(pipeline_->entry + ": " + (err[0] != '\0' ? err : "Metal dispatch failed"));
      return;
    }
    const std::string damage = check_redzones();
    if (!damage.empty()) SetError(pipeline_->entry + ": " + damage);
  }

  void CopyBack() override {
    for (size_t i = 0; i < views.size(); ++i) {
      const uint64_t g = bindings[i].guard;
      if (host[i].size() >= 2 * g) moe_addon::copy_to_view(views[i], host[i].data() + g, host[i].size() - 2 * g);
    }
  }

 private:
  // The report of the first buffer whose guards changed, or "".
  std::string check_redzones() const {
    for (size_t i = 0; i < bindings.size(); ++i) {
      const MoeMetalBinding &b = bindings[i];
      if (b.guard == 0 || b.is_bytes || b.alias >= 0) continue;
      const uint8_t *p = host[i].data();
      const moe_redzone::Damage before = moe_redzone::scan(p, b.guard, moe_redzone::seed_of(b.index, moe_redzone::kBefore));
      const moe_redzone::Damage after =
          moe_redzone::scan(p + b.guard + b.size, b.guard, moe_redzone::seed_of(b.index, moe_redzone::kAfter));
      std::string r = moe_redzone::describe(moe_redzone::label(b.index, names[i]), b.size, b.guard, before, after);
      if (!r.empty()) return r;
    }
    return "";
  }

 public:

 private:
  Napi::ObjectReference pipeline_ref_;  // keeps the pipeline (and its Metal object) alive
  Pipeline *pipeline_;
};

Napi::Value Reject(Napi::Env env, const std::string &msg) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Reject(Napi::Error::New(env, msg).Value());
  return d.Promise();
}

Napi::Value Dispatch(const Napi::CallbackInfo &info, bool timing) {
  Napi::Env env = info.Env();
  const char *fn = timing ? "metal.time" : "metal.run";
  if (info.Length() < (timing ? 4u : 3u)) {
    throw_type(env, std::string(fn) + (timing ? "(pipeline, bindings, launch, options)" : "(pipeline, bindings, launch)") +
                        ": missing arguments");
  }
  Pipeline *pl = get_pipeline(env, info[0], fn);
  Napi::Object pipeline_obj = info[0].As<Napi::Object>();
  if (!info[1].IsArray()) throw_type(env, std::string(fn) + ": bindings must be an array of { index, data, bytes }");
  Napi::Array arr = info[1].As<Napi::Array>();
  if (arr.Length() > kBufferIndices) {
    throw_type(env, std::string(fn) + ": " + std::to_string(arr.Length()) + " bindings exceed the " +
                        std::to_string(kBufferIndices) + " [[buffer(n)]] indices");
  }
  ParsedLaunch launch = parse_launch(env, info[2]);
  uint32_t warmup = 0, per_batch = 1, batches = 1;
  if (timing) {
    if (!info[3].IsObject()) throw_type(env, "metal.time: options must be an object");
    Napi::Object o = info[3].As<Napi::Object>();
    warmup = uint32_t(get_integer(env, o.Get("warmup"), "options.warmup", 0, 1e6));
    per_batch = uint32_t(get_integer(env, o.Get("perBatch"), "options.perBatch", 1, 1e6));
    batches = uint32_t(get_integer(env, o.Get("batches"), "options.batches", 1, 1e6));
  }

  auto w = std::make_unique<DispatchWorker>(env, timing, pipeline_obj, pl);
  w->warmup = warmup;
  w->per_batch = per_batch;
  w->batches = batches;
  const bool redzones = moe_redzone::enabled_by_env();
  std::vector<bool> used(kBufferIndices, false);
  std::vector<Napi::Uint8Array> seen;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    std::string what = std::string(fn) + ": bindings[" + std::to_string(i) + "]";
    Napi::Value v = arr.Get(i);
    if (!v.IsObject() || v.IsArray()) throw_type(env, what + " must be an object { index, data, bytes }");
    Napi::Object b = v.As<Napi::Object>();
    uint32_t index = uint32_t(get_integer(env, b.Get("index"), what + ".index", 0, kBufferIndices - 1));
    if (used[index]) throw_type(env, what + ".index: buffer(" + std::to_string(index) + ") is bound twice");
    used[index] = true;
    Napi::Value d = b.Get("data");
    if (!d.IsTypedArray() || d.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw_type(env, what + ".data must be a Uint8Array");
    }
    Napi::Value by = b.Get("bytes");
    if (!by.IsBoolean()) throw_type(env, what + ".bytes must be a boolean");
    Napi::Uint8Array view = d.As<Napi::Uint8Array>();
    MoeMetalBinding mb{};
    mb.index = index;
    mb.size = view.ByteLength();
    mb.is_bytes = by.As<Napi::Boolean>().Value() ? 1u : 0u;
    mb.alias = -1;
    if (mb.is_bytes && (mb.size == 0 || mb.size > kMaxSetBytes)) {
      throw_type(env, what + ": a setBytes binding must have 1 to 4096 bytes, not " + std::to_string(mb.size));
    }
    if (!mb.is_bytes && mb.size > 0) {
      // The same memory bound at two indices is one MTLBuffer, as in the CPU backend.
      for (size_t j = 0; j < w->bindings.size() && mb.alias < 0; ++j) {
        const MoeMetalBinding &prev = w->bindings[j];
        if (!prev.is_bytes && prev.alias < 0 && prev.size == mb.size && seen[j].Data() == view.Data()) mb.alias = int32_t(j);
      }
    }
    std::string name;
    Napi::Value nm = b.Get("name");
    if (!nm.IsUndefined() && !nm.IsNull()) {
      if (!nm.IsString()) throw_type(env, what + ".name must be a string");
      name = nm.As<Napi::String>().Utf8Value();
    }
    std::vector<uint8_t> copy;
    if (!mb.is_bytes && mb.alias < 0 && redzones) {
      mb.guard = moe_redzone::guard_bytes(mb.size);
      copy.resize(mb.size + 2 * mb.guard);
      moe_redzone::fill(copy.data(), mb.guard, moe_redzone::seed_of(index, moe_redzone::kBefore));
      if (mb.size > 0) std::memcpy(copy.data() + mb.guard, view.Data(), mb.size);
      moe_redzone::fill(copy.data() + mb.guard + mb.size, mb.guard, moe_redzone::seed_of(index, moe_redzone::kAfter));
    } else if (mb.alias < 0 && mb.size > 0) {
      copy.assign(view.Data(), view.Data() + mb.size);
    }
    w->host.push_back(std::move(copy));
    w->names.push_back(std::move(name));
    w->views.push_back(mb.is_bytes || mb.alias >= 0 ? Napi::Reference<Napi::Uint8Array>() : Napi::Persistent(view));
    w->bindings.push_back(mb);
    seen.push_back(view);
  }
  MoeMetalDeviceInfo dev{};
  std::string why;
  if (!device_info(&dev, &why)) return Reject(env, pl->entry + ": " + why);
  std::string problem = launch_problem(launch, *pl, dev);
  if (!problem.empty()) return Reject(env, pl->entry + ": " + problem);
  w->launch = std::move(launch);
  Napi::Promise p = w->Promise();
  w.release()->Queue();  // the worker deletes itself when done
  return p;
}

Napi::Value Run(const Napi::CallbackInfo &info) { return Dispatch(info, false); }
Napi::Value Time(const Napi::CallbackInfo &info) { return Dispatch(info, true); }

Napi::Value DeviceInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  MoeMetalDeviceInfo d{};
  std::string why;
  if (!device_info(&d, &why)) throw_error(env, why);
  Napi::Object o = Napi::Object::New(env);
  d.name[sizeof d.name - 1] = '\0';
  o.Set("name", Napi::String::New(env, d.name));
  o.Set("maxThreadsPerThreadgroup", Napi::Number::New(env, d.max_threads_per_threadgroup));
  o.Set("recommendedWorkingSet", Napi::Number::New(env, double(d.recommended_working_set)));
  o.Set("unifiedMemory", Napi::Boolean::New(env, d.unified_memory != 0));
  o.Set("families", Napi::Number::New(env, d.families));
  o.Set("mslVersion", Napi::Number::New(env, d.msl_version));
  o.Set("maxThreadgroupMemory", Napi::Number::New(env, d.max_threadgroup_memory));
  return o;
}

Napi::Value Compile(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string source = get_string(env, info[0], "metal.compile: source");
  std::string entry = get_string(env, info[1], "metal.compile: entry");
  bool fast_math = false;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsObject()) throw_type(env, "metal.compile: options must be an object");
    Napi::Value f = info[2].As<Napi::Object>().Get("fastMath");
    if (!f.IsUndefined()) {
      if (!f.IsBoolean()) throw_type(env, "metal.compile: options.fastMath must be a boolean");
      fast_math = f.As<Napi::Boolean>().Value();
    }
  }
  auto pl = std::make_unique<Pipeline>();
  pl->entry = entry;
  char err[kErrLen] = {0};
  if (moe_metal_compile(source.c_str(), entry.c_str(), fast_math ? 1u : 0u, &pl->handle, &pl->info, err, sizeof err) != 0) {
    pl->handle = nullptr;
    throw_error(env, err[0] != '\0' ? err : "Metal compile failed");
  }
  Napi::Object o = Napi::Object::New(env);
  const MoeMetalPipelineInfo pi = pl->info;
  Napi::External<Pipeline> handle =
      Napi::External<Pipeline>::New(env, pl.release(), [](Napi::Env, Pipeline *p) { delete p; });
  o.DefineProperties({
      Napi::PropertyDescriptor::Value("entry", Napi::String::New(env, entry), napi_enumerable),
      Napi::PropertyDescriptor::Value("execWidth", Napi::Number::New(env, pi.exec_width), napi_enumerable),
      Napi::PropertyDescriptor::Value("maxThreads", Napi::Number::New(env, pi.max_threads), napi_enumerable),
      Napi::PropertyDescriptor::Value("staticThreadgroupMemory", Napi::Number::New(env, pi.static_threadgroup_memory),
                                      napi_enumerable),
      Napi::PropertyDescriptor::Value("handle", handle, napi_default),
  });
  o.TypeTag(&kPipelineTag);
  return o;
}

}  // namespace

void Register(Napi::Env env, Napi::Object exports) {
  Napi::Object metal = Napi::Object::New(env);
  metal.Set("deviceInfo", Napi::Function::New(env, DeviceInfo, "deviceInfo"));
  metal.Set("compile", Napi::Function::New(env, Compile, "compile"));
  metal.Set("run", Napi::Function::New(env, Run, "run"));
  metal.Set("time", Napi::Function::New(env, Time, "time"));
  exports.Set("metal", metal);
}

}  // namespace moe_metal_glue
