// module.cc: loading kernel modules (dlopen) and finding their kernels.
#include "cpu_internal.h"

namespace moe {

using namespace cpu;


// ---------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------

std::shared_ptr<Module> Module::load(const std::string &path) {
  dlerror();
  void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char *e = dlerror();
    throw std::runtime_error("cannot load kernel module " + path + ": " + (e ? e : "dlopen failed"));
  }
  std::shared_ptr<Module> m(new Module());
  m->path_ = path;
  m->handle_ = h;  // from here on, ~Module closes it
  dlerror();
  void *bind_sym = dlsym(h, "__moe_bind_runtime");
  if (bind_sym == nullptr) {
    const char *e = dlerror();
    throw std::runtime_error("kernel module " + path + " does not export __moe_bind_runtime: " +
                             (e ? e : "symbol not found"));
  }
  void *kern_sym = dlsym(h, "__moe_kernels");
  if (kern_sym == nullptr) {
    const char *e = dlerror();
    throw std::runtime_error("kernel module " + path + " does not export __moe_kernels: " +
                             (e ? e : "symbol not found"));
  }
  MoeBindRuntimeFn bind = reinterpret_cast<MoeBindRuntimeFn>(bind_sym);
  MoeKernelsFn list = reinterpret_cast<MoeKernelsFn>(kern_sym);
  int rc = bind(&g_api);
  if (rc != 0) {
    throw std::runtime_error(strprintf("kernel module %s rejected the runtime (ABI version %u, __moe_bind_runtime "
                                       "returned %d): it was built for another ABI; rebuild it",
                                       path.c_str(), MOE_ABI_VERSION, rc));
  }
  uint32_t count = 0;
  const MoeKernelInfo *infos = list(&count);
  if (count > 0 && infos == nullptr) throw std::runtime_error("kernel module " + path + ": __moe_kernels returned NULL");
  if (count > 100000) throw std::runtime_error("kernel module " + path + ": implausible kernel count");
  for (uint32_t i = 0; i < count; ++i) {
    if (infos[i].name == nullptr || infos[i].entry == nullptr) {
      throw std::runtime_error(strprintf("kernel module %s: kernel %u has no name or entry", path.c_str(), i));
    }
    KernelDesc k;
    k.name = infos[i].name;
    k.entry = infos[i].entry;
    k.uses_sync = infos[i].uses_sync != 0;
    if (infos[i].n_tg_params > MOE_MAX_TG_BUFFERS || (infos[i].n_tg_params > 0 && infos[i].tg_params == nullptr)) {
      throw std::runtime_error(strprintf("kernel module %s: kernel %u lists %u threadgroup parameters", path.c_str(), i,
                                         infos[i].n_tg_params));
    }
    for (uint32_t j = 0; j < infos[i].n_tg_params; ++j) {
      const MoeTgParamInfo &tp = infos[i].tg_params[j];
      if (tp.index >= MOE_MAX_TG_BUFFERS) continue;
      if (k.tg_param_names.size() <= tp.index) {
        k.tg_param_names.resize(tp.index + 1);
        k.tg_param_elem.resize(tp.index + 1, 0);
      }
      k.tg_param_names[tp.index] = tp.name != nullptr ? tp.name : "";
      k.tg_param_elem[tp.index] = tp.elem_size;
    }
    m->kernels_.push_back(std::move(k));
  }
  return m;
}

Module::~Module() {
  if (handle_ != nullptr) dlclose(handle_);
}

const KernelDesc *Module::find(const std::string &name) const {
  for (const KernelDesc &k : kernels_) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

}  // namespace moe
