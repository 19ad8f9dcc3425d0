// addon_worker.h — what the dispatch workers of the addon's three surfaces
// (addon.cc: the CPU runtime, addon_cuda.cc, metal_glue.cc) share: a promise
// settled on the main thread once the dispatch ran on a worker thread, with
// undefined or, when timing, the times (ns) as a Float64Array; and the host
// copies written back into the caller's views on both outcomes, so that a
// failed kernel's partial outputs are still seen. Header-only.
#ifndef MOE_ADDON_WORKER_H
#define MOE_ADDON_WORKER_H

#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace moe_addon {

// Copies size bytes at src back into the view `ref` holds (nothing for an
// empty reference; a view whose buffer was detached meanwhile has length 0).
inline void copy_to_view(const Napi::Reference<Napi::Uint8Array> &ref, const uint8_t *src, size_t size) {
  if (ref.IsEmpty()) return;
  Napi::Uint8Array v = ref.Value();
  const size_t n = std::min(v.ByteLength(), size);
  if (n > 0 && v.Data() != nullptr) std::memcpy(v.Data(), src, n);
}

class DispatchWorkerBase : public Napi::AsyncWorker {
 public:
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  DispatchWorkerBase(Napi::Env env, const char *name, bool timing)
      : Napi::AsyncWorker(env, name), timing_(timing), deferred_(Napi::Promise::Deferred::New(env)) {}

  // Writes the host copies back into their views (main thread).
  virtual void CopyBack() = 0;

  void OnOK() override {
    Napi::Env env = Env();
    CopyBack();
    if (!timing_) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    Napi::Float64Array out = Napi::Float64Array::New(env, times_.size());
    for (size_t i = 0; i < times_.size(); ++i) out[i] = times_[i];
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error &e) override {
    CopyBack();
    deferred_.Reject(e.Value());
  }

  const bool timing_;
  std::vector<double> times_;  // filled by Execute when timing_

 private:
  Napi::Promise::Deferred deferred_;
};

}  // namespace moe_addon

#endif  // MOE_ADDON_WORKER_H
