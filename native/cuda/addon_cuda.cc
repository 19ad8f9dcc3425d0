// addon_cuda.cc — the Node surface of the CUDA backend: exports.cuda, typed in
// src/backend/addon-types.ts (NativeCuda):
//
//   probe() -> {available, reason, device?}
//   compile(source, name, options) -> Promise<{image, isCubin, arch, log}>   (NVRTC, on a worker thread)
//   loadModule(image) -> CudaModule (functionInfo(entry), close())
//   run(module, entry, buffers, launch, options) -> Promise<void>
//   time(module, entry, buffers, launch, options) -> Promise<Float64Array>  (ns per timed dispatch)
//
// options of run and time: timeoutMs, bufferNames (for the redzone reports),
// redzones (default: on unless MOE_GPU_REDZONES=0; see native/common/redzone.h).
//
// Arguments are checked on the main thread; buffers are copied into memory
// the worker owns, the dispatch runs on a libuv worker thread (the event loop
// goes on), and the results are copied back into the views when the promise
// settles. Nothing here needs CUDA at build time (cuda_runtime.cc dlopens it).
#include <napi.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../common/addon_launch.h"
#include "../common/addon_worker.h"
#include "../common/redzone.h"
#include "addon_cuda.h"
#include "cuda_runtime.h"

namespace {

using moe_addon::get_integer;
using moe_addon::throw_type;


// ------------------------------------------------------------------ CudaModule

class CudaModuleWrap : public Napi::ObjectWrap<CudaModuleWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CudaModule",
                       {InstanceMethod<&CudaModuleWrap::FunctionInfo>("functionInfo"),
                        InstanceMethod<&CudaModuleWrap::Close>("close")});
  }
  explicit CudaModuleWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<CudaModuleWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw_type(env, "loadModule: image must be a Uint8Array");
    }
    Napi::Uint8Array img = info[0].As<Napi::Uint8Array>();
    std::vector<uint8_t> bytes(img.Data(), img.Data() + img.ByteLength());
    try {
      module_ = moe::cuda::Module::load(std::move(bytes));
    } catch (const std::exception &e) {
      throw Napi::Error::New(env, e.what());
    }
  }
  std::shared_ptr<moe::cuda::Module> Get(Napi::Env env) const {
    if (!module_) throw Napi::Error::New(env, "the CUDA module is closed");
    return module_;
  }

 private:
  Napi::Value FunctionInfo(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "functionInfo(entry): entry must be a string");
    moe::cuda::FunctionInfo fi;
    try {
      fi = Get(env)->function(info[0].As<Napi::String>().Utf8Value());
    } catch (const Napi::Error &) {
      throw;
    } catch (const std::exception &e) {
      throw Napi::Error::New(env, e.what());
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("maxThreads", fi.max_threads);
    o.Set("staticShared", fi.static_shared);
    o.Set("registers", fi.registers);
    return o;
  }
  Napi::Value Close(const Napi::CallbackInfo &info) {
    module_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<moe::cuda::Module> module_;
};

struct CudaAddonData {
  Napi::FunctionReference module_ctor;
};

// ------------------------------------------------------------------ compile

class CompileWorker : public Napi::AsyncWorker {
 public:
  CompileWorker(Napi::Env env, std::string source, std::string name, std::vector<std::string> options)
      : Napi::AsyncWorker(env, "moe_native.cuda.compile"),
        deferred_(Napi::Promise::Deferred::New(env)),
        source_(std::move(source)),
        name_(std::move(name)),
        options_(std::move(options)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      result_ = moe::cuda::compile(source_, name_, options_);
    } catch (const moe::cuda::CompileError &e) {
      compile_error_ = true;
      SetError(e.what());
    } catch (const std::exception &e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Uint8Array img = Napi::Uint8Array::New(env, result_.image.size());
    if (!result_.image.empty()) std::memcpy(img.Data(), result_.image.data(), result_.image.size());
    o.Set("image", img);
    o.Set("isCubin", result_.is_cubin);
    o.Set("arch", result_.arch);
    o.Set("log", result_.log);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error &e) override {
    Napi::Object err = e.Value();
    err.Set("compileError", Napi::Boolean::New(Env(), compile_error_));
    deferred_.Reject(err);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string source_, name_;
  std::vector<std::string> options_;
  moe::cuda::CompileResult result_;
  bool compile_error_ = false;
};

Napi::Value Compile(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsArray()) {
    throw_type(env, "compile(source, name, options): a string, a string and an array of strings");
  }
  std::vector<std::string> opts;
  Napi::Array a = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    if (!a.Get(i).IsString()) throw_type(env, "compile: options[" + std::to_string(i) + "] must be a string");
    opts.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  auto *w = new CompileWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(), std::move(opts));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// ------------------------------------------------------------------ run / time

class DispatchWorker : public moe_addon::DispatchWorkerBase {
 public:
  DispatchWorker(Napi::Env env, bool timing, Napi::Object module_obj, std::shared_ptr<moe::cuda::Module> module,
                 std::string entry)
      : DispatchWorkerBase(env, "moe_native.cuda.dispatch", timing),
        module_ref_(Napi::Persistent(module_obj)),
        module_(std::move(module)),
        entry_(std::move(entry)) {}

  std::vector<std::vector<uint8_t>> copies;        // owned host copies
  std::vector<Napi::Reference<Napi::Uint8Array>> views;
  std::vector<int> copy_of;                          // buffer index -> copies index (-1 unbound)
  std::vector<moe::cuda::HostBuffer> buffers;
  moe::Launch launch;
  moe::cuda::DispatchOptions options;

 protected:
  void Execute() override {
    try {
      moe::cuda::dispatch(*module_, entry_, buffers, launch, options, &times_);
    } catch (const std::exception &e) {
      SetError(entry_ + ": " + e.what());
    }
  }
  void CopyBack() override {
    for (size_t i = 0; i < copies.size(); ++i) moe_addon::copy_to_view(views[i], copies[i].data(), copies[i].size());
  }

 private:
  Napi::ObjectReference module_ref_;
  std::shared_ptr<moe::cuda::Module> module_;
  std::string entry_;
};

Napi::Value Dispatch(const Napi::CallbackInfo &info, bool timing) {
  Napi::Env env = info.Env();
  const std::string fn = timing ? "cuda.time" : "cuda.run";
  CudaAddonData *data = static_cast<CudaAddonData *>(info.Data());
  if (info.Length() < 4) throw_type(env, fn + "(module, entry, buffers, launch, options) needs at least 4 arguments");
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(data->module_ctor.Value())) {
    throw_type(env, fn + ": module must be a CudaModule returned by cuda.loadModule");
  }
  Napi::Object module_obj = info[0].As<Napi::Object>();
  std::shared_ptr<moe::cuda::Module> module = CudaModuleWrap::Unwrap(module_obj)->Get(env);
  if (!info[1].IsString()) throw_type(env, fn + ": entry must be a string");
  if (!info[2].IsArray()) throw_type(env, fn + ": buffers must be an array of Uint8Array or null");
  Napi::Array bufs = info[2].As<Napi::Array>();
  if (bufs.Length() > MOE_MAX_BUFFERS) throw_type(env, fn + ": more buffers than [[buffer(n)]] indices");
  moe::Launch launch = moe_addon::get_runtime_launch(env, info[3]);
  moe::cuda::DispatchOptions opt;
  opt.timing = timing;
  opt.redzones = moe_redzone::enabled_by_env();
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Object o = info[4].As<Napi::Object>();
    if (!o.Get("redzones").IsUndefined()) {
      if (!o.Get("redzones").IsBoolean()) throw_type(env, fn + ": options.redzones must be a boolean");
      opt.redzones = o.Get("redzones").As<Napi::Boolean>().Value();
    }
    Napi::Value names = o.Get("bufferNames");
    if (!names.IsUndefined()) opt.buffer_names = moe_addon::get_buffer_names(env, names, fn + ": ", MOE_MAX_BUFFERS);
    if (!o.Get("timeoutMs").IsUndefined()) opt.timeout_ms = uint64_t(get_integer(env, o.Get("timeoutMs"), "options.timeoutMs", 0, 9007199254740991.0));
    if (timing) {
      opt.warmup = uint32_t(get_integer(env, o.Get("warmup"), "options.warmup", 0, 1e6));
      opt.iterations = uint32_t(get_integer(env, o.Get("iterations"), "options.iterations", 1, 1e7));
      if (!o.Get("rotateBytes").IsUndefined()) {
        opt.rotate_bytes = uint64_t(get_integer(env, o.Get("rotateBytes"), "options.rotateBytes", 0, 9007199254740991.0));
      }
      if (!o.Get("touchedBytes").IsUndefined()) {
        opt.touched_bytes = uint64_t(get_integer(env, o.Get("touchedBytes"), "options.touchedBytes", 0, 9007199254740991.0));
      }
      if (!o.Get("graph").IsUndefined()) {
        if (!o.Get("graph").IsBoolean()) throw_type(env, "cuda.time: options.graph must be a boolean");
        opt.graph = o.Get("graph").As<Napi::Boolean>().Value();
      }
      if (!o.Get("perSample").IsUndefined()) {
        opt.per_sample = uint32_t(get_integer(env, o.Get("perSample"), "options.perSample", 1, 100));
      }
    }
  } else if (timing) {
    throw_type(env, "cuda.time: options must be an object with warmup and iterations");
  }
  auto *w = new DispatchWorker(env, timing, module_obj, module, info[1].As<Napi::String>().Utf8Value());
  try {
    w->launch = std::move(launch);
    w->options = opt;
    w->buffers.resize(bufs.Length());
    w->copies.reserve(bufs.Length());
    for (uint32_t i = 0; i < bufs.Length(); ++i) {
      Napi::Value v = bufs.Get(i);
      if (v.IsNull() || v.IsUndefined()) continue;
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw_type(env, fn + ": buffers[" + std::to_string(i) + "] must be a Uint8Array or null");
      }
      Napi::Uint8Array view = v.As<Napi::Uint8Array>();
      // The same view bound at two indices is one buffer, as on the GPU.
      int alias = -1;
      for (uint32_t j = 0; j < i && alias < 0; ++j) {
        Napi::Value prev = bufs.Get(j);
        if (prev.IsTypedArray() && view.ByteLength() > 0 && prev.As<Napi::Uint8Array>().Data() == view.Data() &&
            prev.As<Napi::Uint8Array>().ByteLength() == view.ByteLength()) {
          alias = int(j);
        }
      }
      if (alias >= 0) {
        w->buffers[i] = w->buffers[size_t(alias)];
        w->buffers[i].alias = alias;
        continue;
      }
      w->copies.emplace_back(view.Data(), view.Data() + view.ByteLength());
      w->views.push_back(Napi::Persistent(view));
      w->buffers[i].data = w->copies.back().data();
      w->buffers[i].size = w->copies.back().size();
    }
    // (copies never reallocates: reserved for every buffer above)
  } catch (...) {
    delete w;
    throw;
  }
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Run(const Napi::CallbackInfo &info) { return Dispatch(info, false); }
Napi::Value Time(const Napi::CallbackInfo &info) { return Dispatch(info, true); }

Napi::Value LoadModule(const Napi::CallbackInfo &info) {
  CudaAddonData *data = static_cast<CudaAddonData *>(info.Data());
  return data->module_ctor.New({info.Length() > 0 ? info[0] : info.Env().Undefined()});
}

Napi::Value Probe(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  moe::cuda::DeviceInfo d;
  std::string why;
  const bool ok = moe::cuda::probe(&d, &why);
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", ok);
  o.Set("reason", ok ? std::string("CUDA driver ") + std::to_string(d.driver_version / 1000) + "." +
                           std::to_string((d.driver_version % 1000) / 10) + ", NVRTC " + std::to_string(d.nvrtc_major) + "." +
                           std::to_string(d.nvrtc_minor)
                     : why);
  if (ok) {
    Napi::Object dev = Napi::Object::New(env);
    dev.Set("name", d.name);
    dev.Set("totalMemory", double(d.total_memory));
    dev.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
    dev.Set("multiprocessors", d.multiprocessors);
    dev.Set("l2Bytes", d.l2_bytes);
    dev.Set("maxThreadsPerBlock", d.max_threads_per_block);
    dev.Set("sharedPerBlock", d.shared_per_block);
    dev.Set("sharedPerBlockOptin", d.shared_per_block_optin);
    dev.Set("clockKHz", d.clock_khz);
    dev.Set("memoryClockKHz", d.memory_clock_khz);
    dev.Set("memoryBusWidth", d.memory_bus_width);
    dev.Set("driverVersion", d.driver_version);
    dev.Set("nvrtcVersion", std::to_string(d.nvrtc_major) + "." + std::to_string(d.nvrtc_minor));
    dev.Set("driverLibrary", d.driver_library);
    dev.Set("nvrtcLibrary", d.nvrtc_library);
    o.Set("device", dev);
  }
  return o;
}

}  // namespace

void InitCuda(Napi::Env env, Napi::Object exports) {
  // Owned by the environment's cleanup: freed with it.
  auto *data = new CudaAddonData();
  data->module_ctor = Napi::Persistent(CudaModuleWrap::Define(env));
  env.AddCleanupHook([data] { delete data; });
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("probe", Napi::Function::New(env, Probe, "probe"));
  cuda.Set("compile", Napi::Function::New(env, Compile, "compile"));
  cuda.Set("loadModule", Napi::Function::New(env, LoadModule, "loadModule", data));
  cuda.Set("run", Napi::Function::New(env, Run, "run", data));
  cuda.Set("time", Napi::Function::New(env, Time, "time", data));
  exports.Set("cuda", cuda);
}
