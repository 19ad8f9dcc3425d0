// addon.cc — the Node surface of the CPU runtime (build/Release/moe_native.node).
// The whole surface is typed in src/backend/addon-types.ts:
//
//   abiVersion, hardwareConcurrency(), loadModule(path) -> NativeModule
//   (path, kernels(), close()), run(...) -> Promise<void>,
//   time(...) -> Promise<Float64Array>, exitNow(code)
//
// Arguments are checked on the main thread (TypeError/Error thrown at once);
// buffers are copied into runtime-owned memory there (moe::GuardedBuffer: each
// between inaccessible guard pages, so that an out-of-bounds access by the
// kernel becomes an error naming the buffer and the offset), the
// dispatches run on a libuv worker thread (Napi::AsyncWorker) while the event
// loop keeps going, and every buffer is copied back into its view when the
// promise settles. Kernel failures and launches that Metal would refuse
// reject the promise with "<kernel>: <message>".
#include <napi.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "addon_launch.h"
#include "addon_worker.h"
#include "../cuda/addon_cuda.h"  // exports.cuda (the libraries are dlopen'ed: built everywhere)
#include "../cpu/runtime.h"
#ifdef MOE_WITH_METAL
#include "../metal/metal_glue.h"  // macOS only (binding.gyp): exports.metal
#endif

namespace {

struct AddonData {
  Napi::FunctionReference module_ctor;
};

using moe_addon::get_integer;
using moe_addon::throw_type;
[[noreturn]] void throw_error(Napi::Env env, const std::string &msg) { throw Napi::Error::New(env, msg); }

// ---------------------------------------------------------------------------
// NativeModule
// ---------------------------------------------------------------------------

class ModuleWrap : public Napi::ObjectWrap<ModuleWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModule",
                       {
                           InstanceAccessor<&ModuleWrap::Path>("path", napi_enumerable),
                           InstanceMethod<&ModuleWrap::Kernels>("kernels"),
                           InstanceMethod<&ModuleWrap::Close>("close"),
                       });
  }

  explicit ModuleWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<ModuleWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "loadModule: path must be a string");
    path_ = info[0].As<Napi::String>().Utf8Value();
    if (path_.empty()) throw_type(env, "loadModule: path must not be empty");
    if (path_.find('\0') != std::string::npos) throw_type(env, "loadModule: path contains a NUL character");
    try {
      module_ = moe::Module::load(path_);
    } catch (const std::exception &e) {
      throw_error(env, e.what());
    }
  }

  // The loaded module, or throws when closed.
  std::shared_ptr<moe::Module> Get(Napi::Env env, const char *what) const {
    if (!module_) throw_error(env, std::string(what) + ": module " + path_ + " is closed");
    return module_;
  }

 private:
  Napi::Value Path(const Napi::CallbackInfo &info) { return Napi::String::New(info.Env(), path_); }

  Napi::Value Kernels(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::shared_ptr<moe::Module> m = Get(env, "kernels()");
    Napi::Array out = Napi::Array::New(env, m->kernels().size());
    uint32_t i = 0;
    for (const moe::KernelDesc &k : m->kernels()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", Napi::String::New(env, k.name));
      o.Set("usesSync", Napi::Boolean::New(env, k.uses_sync));
      out.Set(i++, o);
    }
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    // A dispatch in flight holds its own reference: dlclose waits for it.
    module_.reset();
    return info.Env().Undefined();
  }

  std::string path_;
  std::shared_ptr<moe::Module> module_;
};

// ---------------------------------------------------------------------------
// Argument parsing
// ---------------------------------------------------------------------------


moe::RunOptions parse_options(Napi::Env env, Napi::Value v, const char *fn) {
  moe::RunOptions opt;
  if (v.IsUndefined() || v.IsNull()) return opt;
  if (!v.IsObject() || v.IsArray()) throw_type(env, std::string(fn) + ": options must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value x = o.Get("workers");
  if (!x.IsUndefined()) opt.workers = unsigned(get_integer(env, x, "options.workers", 1, moe::kMaxWorkers));
  x = o.Get("schedule");
  if (!x.IsUndefined()) {
    std::string s = x.IsString() ? x.As<Napi::String>().Utf8Value() : std::string();
    if (s == "forward") {
      opt.schedule = moe::Schedule::Forward;
    } else if (s == "reverse") {
      opt.schedule = moe::Schedule::Reverse;
    } else if (s == "shuffle") {
      opt.schedule = moe::Schedule::Shuffle;
    } else {
      throw_type(env, "options.schedule must be 'forward', 'reverse' or 'shuffle'");
    }
  }
  x = o.Get("scheduleSeed");
  if (!x.IsUndefined()) {
    double d = get_integer(env, x, "options.scheduleSeed", -9007199254740991.0, 9007199254740991.0);
    opt.seed = uint64_t(int64_t(d));
  }
  x = o.Get("stackSize");
  if (!x.IsUndefined()) {
    opt.stack_size = size_t(get_integer(env, x, "options.stackSize", double(moe::kMinStackSize),
                                        double(moe::kMaxStackSize)));
  }
  x = o.Get("forceFibers");
  if (!x.IsUndefined()) {
    if (!x.IsBoolean()) throw_type(env, "options.forceFibers must be a boolean");
    opt.force_fibers = x.As<Napi::Boolean>().Value();
  }
  x = o.Get("timeoutMs");
  if (!x.IsUndefined()) opt.timeout_ms = uint64_t(get_integer(env, x, "options.timeoutMs", 0, 9007199254740991.0));
  x = o.Get("bufferNames");
  if (!x.IsUndefined()) opt.buffer_names = moe_addon::get_buffer_names(env, x, "", MOE_MAX_BUFFERS);
  return opt;
}

// ---------------------------------------------------------------------------
// run / time
// ---------------------------------------------------------------------------

struct BufferCopy {
  Napi::Reference<Napi::Uint8Array> view;  // keeps the view alive
  moe::GuardedBuffer mem;
};

class DispatchWorker : public moe_addon::DispatchWorkerBase {
 public:
  DispatchWorker(Napi::Env env, bool timing, Napi::Object module_obj, std::shared_ptr<moe::Module> module,
                 const moe::KernelDesc *kernel)
      : DispatchWorkerBase(env, "moe_native.dispatch", timing),
        module_ref_(Napi::Persistent(module_obj)),
        module_(std::move(module)),
        kernel_(kernel) {}

  std::vector<BufferCopy> copies;
  std::vector<moe::Binding> bindings;
  moe::Launch launch;
  moe::RunOptions options;
  uint32_t warmup = 0, iterations = 1;

 protected:
  void Execute() override {
    try {
      moe::validate_launch(launch);
      if (!timing_) {
        moe::dispatch(*kernel_, bindings, launch, options);
        return;
      }
      for (uint32_t i = 0; i < warmup; ++i) moe::dispatch(*kernel_, bindings, launch, options);
      times_.reserve(iterations);
      for (uint32_t i = 0; i < iterations; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        moe::dispatch(*kernel_, bindings, launch, options);
        auto t1 = std::chrono::steady_clock::now();
        times_.push_back(double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
      }
    } catch (const std::exception &e) {
      SetError(kernel_->name + ": " + e.what());
    } catch (...) {
      SetError(kernel_->name + ": unknown native error");
    }
  }

  void CopyBack() override {
    // (a second binding of the same view has an empty reference)
    for (BufferCopy &c : copies) moe_addon::copy_to_view(c.view, c.mem.data(), size_t(c.mem.size()));
  }

 private:
  Napi::ObjectReference module_ref_;     // keeps the JS module object alive
  std::shared_ptr<moe::Module> module_;  // keeps the shared object loaded
  const moe::KernelDesc *kernel_;
};

Napi::Value Dispatch(const Napi::CallbackInfo &info, bool timing) {
  Napi::Env env = info.Env();
  const char *fn = timing ? "time" : "run";
  AddonData *data = env.GetInstanceData<AddonData>();
  if (info.Length() < 4) {
    throw_type(env, std::string(fn) + "(module, kernel, buffers, launch, options) needs at least 4 arguments");
  }
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(data->module_ctor.Value())) {
    throw_type(env, std::string(fn) + ": module must be a NativeModule returned by loadModule");
  }
  Napi::Object module_obj = info[0].As<Napi::Object>();
  ModuleWrap *wrap = ModuleWrap::Unwrap(module_obj);
  std::shared_ptr<moe::Module> module = wrap->Get(env, fn);

  if (!info[1].IsString()) throw_type(env, std::string(fn) + ": kernel must be a string");
  std::string kname = info[1].As<Napi::String>().Utf8Value();
  const moe::KernelDesc *kernel = module->find(kname);
  if (kernel == nullptr) {
    std::string names;
    for (const moe::KernelDesc &k : module->kernels()) names += (names.empty() ? "" : ", ") + k.name;
    throw_error(env, std::string(fn) + ": no kernel named '" + kname + "' in " + module->path() + " (kernels: " +
                         (names.empty() ? "none" : names) + ")");
  }

  if (!info[2].IsArray()) throw_type(env, std::string(fn) + ": buffers must be an array of Uint8Array or null");
  Napi::Array bufs = info[2].As<Napi::Array>();
  if (bufs.Length() > MOE_MAX_BUFFERS) {
    throw_type(env, std::string(fn) + ": " + std::to_string(bufs.Length()) + " buffers exceed the maximum of " +
                        std::to_string(MOE_MAX_BUFFERS) + " [[buffer(n)]] indices");
  }
  moe::Launch launch = moe_addon::get_runtime_launch(env, info[3]);
  moe::RunOptions options = parse_options(env, info.Length() > 4 ? info[4] : env.Undefined(), fn);
  uint32_t warmup = 0, iterations = 1;
  if (timing) {
    if (info.Length() < 5 || !info[4].IsObject()) throw_type(env, "time: options must be an object");
    Napi::Object o = info[4].As<Napi::Object>();
    warmup = uint32_t(get_integer(env, o.Get("warmup"), "options.warmup", 0, 1e6));
    iterations = uint32_t(get_integer(env, o.Get("iterations"), "options.iterations", 1, 1e7));
  }

  DispatchWorker *w = new DispatchWorker(env, timing, module_obj, module, kernel);
  try {
    w->launch = std::move(launch);
    w->options = options;
    w->warmup = warmup;
    w->iterations = iterations;
    w->copies.reserve(bufs.Length());
    w->bindings.resize(bufs.Length());
    for (uint32_t i = 0; i < bufs.Length(); ++i) {
      Napi::Value v = bufs.Get(i);
      if (v.IsNull() || v.IsUndefined()) continue;  // unbound
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw_type(env, std::string(fn) + ": buffers[" + std::to_string(i) + "] must be a Uint8Array or null");
      }
      Napi::Uint8Array view = v.As<Napi::Uint8Array>();
      const uint8_t *src = view.Data();
      size_t len = view.ByteLength();
      // The same view bound at two indices is one buffer, as on the GPU.
      bool shared = false;
      for (uint32_t j = 0; j < i && !shared; ++j) {
        if (w->bindings[j].ptr == nullptr || w->bindings[j].size != len) continue;
        Napi::Value prev = bufs.Get(j);
        if (prev.IsTypedArray() && prev.As<Napi::Uint8Array>().Data() == src && len > 0) {
          w->bindings[i] = w->bindings[j];
          shared = true;
        }
      }
      if (shared) continue;
      BufferCopy c;
      c.mem = moe::GuardedBuffer(len);
      if (len > 0) std::memcpy(c.mem.data(), src, len);
      c.view = Napi::Persistent(view);
      w->copies.push_back(std::move(c));
      w->bindings[i] = w->copies.back().mem.binding();
    }
  } catch (const Napi::Error &) {
    delete w;
    throw;
  } catch (const std::exception &e) {
    delete w;
    throw_error(env, std::string(fn) + ": " + e.what());
  }
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Run(const Napi::CallbackInfo &info) { return Dispatch(info, false); }
Napi::Value Time(const Napi::CallbackInfo &info) { return Dispatch(info, true); }

Napi::Value LoadModule(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "loadModule: path must be a string");
  AddonData *data = env.GetInstanceData<AddonData>();
  return data->module_ctor.New({info[0]});
}

Napi::Value HardwareConcurrency(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), double(moe::hardware_concurrency()));
}

// Ends the process at once with `code`: no exit handlers, no destructors, no
// cleanup hooks, any of which may wait for native work that never ends (a
// kernel thread stuck in a loop, a GPU kernel still running). The caller has
// flushed what it wrote.
Napi::Value ExitNow(const Napi::CallbackInfo &info) {
  int code = 0;
  if (info.Length() >= 1 && info[0].IsNumber()) code = info[0].As<Napi::Number>().Int32Value();
  _exit(code & 0xff);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData *data = new AddonData();
  data->module_ctor = Napi::Persistent(ModuleWrap::Define(env));
  env.SetInstanceData<AddonData>(data);
  exports.DefineProperties({
      Napi::PropertyDescriptor::Value("abiVersion", Napi::Number::New(env, double(MOE_ABI_VERSION)), napi_enumerable),
  });
  exports.Set("hardwareConcurrency", Napi::Function::New(env, HardwareConcurrency, "hardwareConcurrency"));
  exports.Set("loadModule", Napi::Function::New(env, LoadModule, "loadModule"));
  exports.Set("run", Napi::Function::New(env, Run, "run"));
  exports.Set("time", Napi::Function::New(env, Time, "time"));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow, "exitNow"));
  InitCuda(env, exports);
#ifdef MOE_WITH_METAL
  moe_metal_glue::Register(env, exports);
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(moe_native, Init)
