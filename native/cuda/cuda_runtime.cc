// cuda_runtime.cc — see cuda_runtime.h.
#include "cuda_runtime.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "../include/msl_cuda/abi.h"
#include "cuda_api.h"
#include "redzone_check.h"

namespace moe {
namespace cuda {
namespace {

using namespace moe::cu;

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// ------------------------------------------------------------------ loading

struct Libs {
  DriverApi cu{};
  NvrtcApi rtc{};
  bool have_driver = false, have_nvrtc = false;
  std::string driver_path, nvrtc_path, why;
};

void *open_first(const std::vector<std::string> &names, std::string *opened, std::string *errors) {
  for (const std::string &n : names) {
    void *h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) {
      *opened = n;
      return h;
    }
    const char *e = dlerror();
    if (errors->empty() && e) *errors = e;
  }
  return nullptr;
}

template <typename F> bool sym(void *h, F *&out, const char *name, const char *alt = nullptr) {
  void *p = dlsym(h, name);
  if (!p && alt) p = dlsym(h, alt);
  out = reinterpret_cast<F *>(p);
  return p != nullptr;
}

Libs &libs() {
  static Libs L;
  static std::once_flag once;
  std::call_once(once, [] {
    std::string err;
    std::vector<std::string> drv;
    if (const char *p = std::getenv("MOE_CUDA_DRIVER_LIB")) drv.push_back(p);
    drv.insert(drv.end(), {"libcuda.so.1", "libcuda.so", "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                           "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib64/libcuda.so.1"});
    void *h = open_first(drv, &L.driver_path, &err);
    if (!h) {
      L.why = "the CUDA driver library (libcuda.so.1) was not found: " + err;
      return;
    }
    DriverApi &c = L.cu;
    bool ok = sym(h, c.cuInit, "cuInit") && sym(h, c.cuDriverGetVersion, "cuDriverGetVersion") &&
              sym(h, c.cuDeviceGetCount, "cuDeviceGetCount") && sym(h, c.cuDeviceGet, "cuDeviceGet") &&
              sym(h, c.cuDeviceGetName, "cuDeviceGetName") && sym(h, c.cuDeviceTotalMem, "cuDeviceTotalMem_v2") &&
              sym(h, c.cuDeviceGetAttribute, "cuDeviceGetAttribute") &&
              sym(h, c.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") &&
              sym(h, c.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease") &&
              sym(h, c.cuDevicePrimaryCtxReset, "cuDevicePrimaryCtxReset_v2", "cuDevicePrimaryCtxReset") &&
              sym(h, c.cuCtxSetCurrent, "cuCtxSetCurrent") && sym(h, c.cuCtxSynchronize, "cuCtxSynchronize") &&
              sym(h, c.cuMemGetInfo, "cuMemGetInfo_v2") && sym(h, c.cuModuleLoadDataEx, "cuModuleLoadDataEx") &&
              sym(h, c.cuModuleUnload, "cuModuleUnload") && sym(h, c.cuModuleGetFunction, "cuModuleGetFunction") &&
              sym(h, c.cuFuncGetAttribute, "cuFuncGetAttribute") && sym(h, c.cuFuncSetAttribute, "cuFuncSetAttribute") &&
              sym(h, c.cuMemAlloc, "cuMemAlloc_v2") && sym(h, c.cuMemFree, "cuMemFree_v2") &&
              sym(h, c.cuMemcpyHtoD, "cuMemcpyHtoD_v2") && sym(h, c.cuMemcpyDtoH, "cuMemcpyDtoH_v2") &&
              sym(h, c.cuMemcpyDtoD, "cuMemcpyDtoD_v2") &&
              sym(h, c.cuLaunchKernel, "cuLaunchKernel") && sym(h, c.cuEventCreate, "cuEventCreate") &&
              sym(h, c.cuEventDestroy, "cuEventDestroy_v2", "cuEventDestroy") && sym(h, c.cuEventRecord, "cuEventRecord") &&
              sym(h, c.cuEventQuery, "cuEventQuery") &&
              sym(h, c.cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime") &&
              sym(h, c.cuMemHostAlloc, "cuMemHostAlloc") && sym(h, c.cuMemFreeHost, "cuMemFreeHost") &&
              sym(h, c.cuMemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2", "cuMemHostGetDevicePointer") &&
              sym(h, c.cuGetErrorName, "cuGetErrorName") && sym(h, c.cuGetErrorString, "cuGetErrorString");
    if (!ok) {
      L.why = L.driver_path + " lacks a driver API function this backend needs (a driver older than CUDA 11?)";
      return;
    }
    L.have_driver = true;
    // optional: CUDA graphs (bench --graph), CUDA 11.4 and later
    if (!(sym(h, c.cuStreamCreate, "cuStreamCreate") && sym(h, c.cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy") &&
          sym(h, c.cuStreamBeginCapture, "cuStreamBeginCapture_v2", "cuStreamBeginCapture") &&
          sym(h, c.cuStreamEndCapture, "cuStreamEndCapture") &&
          sym(h, c.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags") && sym(h, c.cuGraphLaunch, "cuGraphLaunch") &&
          sym(h, c.cuGraphExecDestroy, "cuGraphExecDestroy") && sym(h, c.cuGraphDestroy, "cuGraphDestroy"))) {
      c.cuStreamCreate = nullptr;
    }

    std::vector<std::string> rtc;
    if (const char *p = std::getenv("MOE_NVRTC_LIB")) rtc.push_back(p);
    for (const char *base : {"", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/"}) {
      for (const char *v : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"}) {
        rtc.push_back(std::string(base) + v);
      }
    }
    err.clear();
    void *r = open_first(rtc, &L.nvrtc_path, &err);
    if (!r) {
      L.why = "NVRTC (libnvrtc.so) was not found: " + err + " (install the CUDA toolkit, or set MOE_NVRTC_LIB)";
      return;
    }
    NvrtcApi &n = L.rtc;
    ok = sym(r, n.nvrtcVersion, "nvrtcVersion") && sym(r, n.nvrtcCreateProgram, "nvrtcCreateProgram") &&
         sym(r, n.nvrtcCompileProgram, "nvrtcCompileProgram") && sym(r, n.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize") &&
         sym(r, n.nvrtcGetProgramLog, "nvrtcGetProgramLog") && sym(r, n.nvrtcGetPTXSize, "nvrtcGetPTXSize") &&
         sym(r, n.nvrtcGetPTX, "nvrtcGetPTX") && sym(r, n.nvrtcDestroyProgram, "nvrtcDestroyProgram") &&
         sym(r, n.nvrtcGetErrorString, "nvrtcGetErrorString");
    if (!ok) {
      L.why = L.nvrtc_path + " lacks an NVRTC function this backend needs";
      return;
    }
    sym(r, n.nvrtcGetCUBINSize, "nvrtcGetCUBINSize");
    sym(r, n.nvrtcGetCUBIN, "nvrtcGetCUBIN");
    sym(r, n.nvrtcGetNumSupportedArchs, "nvrtcGetNumSupportedArchs");
    sym(r, n.nvrtcGetSupportedArchs, "nvrtcGetSupportedArchs");
    L.have_nvrtc = true;
  });
  return L;
}

std::string cu_error(CUresult r) {
  const char *name = nullptr, *text = nullptr;
  Libs &L = libs();
  if (L.have_driver) {
    L.cu.cuGetErrorName(r, &name);
    L.cu.cuGetErrorString(r, &text);
  }
  return fmt("%s (%s, error %d)", text ? text : "unknown CUDA error", name ? name : "?", r);
}

// ------------------------------------------------------------------ the device

struct Device {
  std::mutex mu;  // one dispatch (or module load) at a time
  bool ready = false;
  std::string why;
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  uint64_t generation = 1;  // bumped by each context reset
  std::string poisoned;     // a kernel that never finished holds the GPU: why
  DeviceInfo info;
  // The blocking kernel of timed runs (see Blocker): its module, of this
  // context generation, and a counter in mapped host memory.
  std::shared_ptr<Module> blocker;
  volatile unsigned *release = nullptr;  // host view
  CUdeviceptr release_dev = 0;
  unsigned released = 0;
  bool blocker_failed = false;
  // The watchdog's cooperative stop (msl_cuda/rt.h, MOE_LOOP_POLL): words in
  // mapped host memory, [0] the abort flag, [1] the line of the loop that
  // stopped. Null where they could not be had (the loops then never stop).
  volatile unsigned *abort_host = nullptr;
  CUdeviceptr abort_dev = 0;
  bool abort_failed = false;
};

Device &device() {
  static Device D;
  static std::once_flag once;
  std::call_once(once, [] {
    Libs &L = libs();
    if (!L.have_driver || !L.have_nvrtc) {
      D.why = L.why;
      return;
    }
    const DriverApi &c = L.cu;
    CUresult r = c.cuInit(0);
    if (r != CUDA_SUCCESS) {
      D.why = "cuInit failed: " + cu_error(r) + " (no NVIDIA GPU or driver here)";
      return;
    }
    int n = 0;
    c.cuDeviceGetCount(&n);
    if (n <= 0) {
      D.why = "the CUDA driver found no GPU";
      return;
    }
    if ((r = c.cuDeviceGet(&D.dev, 0)) != CUDA_SUCCESS || (r = c.cuDevicePrimaryCtxRetain(&D.ctx, D.dev)) != CUDA_SUCCESS) {
      D.why = "cannot open GPU 0: " + cu_error(r);
      return;
    }
    DeviceInfo &I = D.info;
    char name[256] = {0};
    c.cuDeviceGetName(name, sizeof name - 1, D.dev);
    I.name = name;
    size_t mem = 0;
    c.cuDeviceTotalMem(&mem, D.dev);
    I.total_memory = mem;
    auto attr = [&](int a) {
      int v = 0;
      c.cuDeviceGetAttribute(&v, a, D.dev);
      return v;
    };
    I.cc_major = attr(ATTR_COMPUTE_CAPABILITY_MAJOR);
    I.cc_minor = attr(ATTR_COMPUTE_CAPABILITY_MINOR);
    I.multiprocessors = attr(ATTR_MULTIPROCESSOR_COUNT);
    I.l2_bytes = attr(ATTR_L2_CACHE_SIZE);
    I.max_threads_per_block = attr(ATTR_MAX_THREADS_PER_BLOCK);
    I.shared_per_block = attr(ATTR_MAX_SHARED_MEMORY_PER_BLOCK);
    I.shared_per_block_optin = attr(ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    I.clock_khz = attr(ATTR_CLOCK_RATE);
    I.memory_clock_khz = attr(ATTR_MEMORY_CLOCK_RATE);
    I.memory_bus_width = attr(ATTR_GLOBAL_MEMORY_BUS_WIDTH);
    c.cuDriverGetVersion(&I.driver_version);
    L.rtc.nvrtcVersion(&I.nvrtc_major, &I.nvrtc_minor);
    I.driver_library = L.driver_path;
    I.nvrtc_library = L.nvrtc_path;
    if (attr(ATTR_WARP_SIZE) != 32) {
      D.why = "this GPU's warp is not 32 lanes: Metal's SIMD-groups cannot be mapped onto it";
      return;
    }
    D.ready = true;
  });
  return D;
}

void make_current(Device &D) {
  CUresult r = libs().cu.cuCtxSetCurrent(D.ctx);
  if (r != CUDA_SUCCESS) throw std::runtime_error("cuCtxSetCurrent: " + cu_error(r));
}

// After a kernel fault the context is unusable: reset it (every module and
// allocation of it is gone; modules reload at their next use).
void reset_context(Device &D) {
  const DriverApi &c = libs().cu;
  c.cuDevicePrimaryCtxRelease(D.dev);
  c.cuDevicePrimaryCtxReset(D.dev);
  D.ctx = nullptr;
  c.cuDevicePrimaryCtxRetain(&D.ctx, D.dev);
  D.generation++;
  D.release = nullptr;  // (mapped memory of the old context)
  D.release_dev = 0;
  D.released = 0;
  D.abort_host = nullptr;
  D.abort_dev = 0;
}

Device &ready_device() {
  Device &D = device();
  if (!D.ready) throw std::runtime_error("CUDA is not available: " + D.why);
  if (!D.poisoned.empty()) throw std::runtime_error(D.poisoned);
  return D;
}

// A dispatch past the watchdog's limit: the kernel may still be running and
// nothing can stop it short of ending the process.
struct Timeout : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

bool probe(DeviceInfo *out, std::string *why) {
  Device &D = device();
  if (!D.ready) {
    if (why) *why = D.why;
    return false;
  }
  if (out) *out = D.info;
  return true;
}

// ------------------------------------------------------------------ compile

CompileResult compile(const std::string &source, const std::string &name, const std::vector<std::string> &options) {
  Device &D = ready_device();
  const NvrtcApi &n = libs().rtc;
  const int want = D.info.cc_major * 10 + D.info.cc_minor;
  // The newest architecture NVRTC supports, up to the device's: a cubin when
  // NVRTC knows the device's own (and can return cubins), else PTX for an older
  // one, which the driver compiles for the device.
  int best = 0;
  if (n.nvrtcGetNumSupportedArchs && n.nvrtcGetSupportedArchs) {
    int count = 0;
    if (n.nvrtcGetNumSupportedArchs(&count) == NVRTC_SUCCESS && count > 0) {
      std::vector<int> archs(size_t(count), 0);
      if (n.nvrtcGetSupportedArchs(archs.data()) == NVRTC_SUCCESS) {
        for (int a : archs)
          if (a <= want) best = std::max(best, a);
      }
    }
  } else {
    best = want;
  }
  if (best == 0) throw CompileError(fmt("NVRTC %d.%d supports no architecture up to this GPU's sm_%d", D.info.nvrtc_major, D.info.nvrtc_minor, want));
  CompileResult out;
  out.is_cubin = best == want && n.nvrtcGetCUBIN != nullptr && n.nvrtcGetCUBINSize != nullptr;
  out.arch = fmt("%s_%d", out.is_cubin ? "sm" : "compute", best);
  std::vector<std::string> all = options;
  all.push_back("--gpu-architecture=" + out.arch);
  std::vector<const char *> argv;
  for (const std::string &o : all) argv.push_back(o.c_str());

  nvrtcProgram prog = nullptr;
  nvrtcResult r = n.nvrtcCreateProgram(&prog, source.c_str(), name.c_str(), 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) throw std::runtime_error(std::string("nvrtcCreateProgram: ") + n.nvrtcGetErrorString(r));
  r = n.nvrtcCompileProgram(prog, int(argv.size()), argv.data());
  size_t log_size = 0;
  n.nvrtcGetProgramLogSize(prog, &log_size);
  std::string log(log_size, '\0');
  if (log_size > 0) n.nvrtcGetProgramLog(prog, &log[0]);
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  out.log = log;
  if (r != NVRTC_SUCCESS) {
    n.nvrtcDestroyProgram(&prog);
    throw CompileError(log.empty() ? std::string("NVRTC: ") + n.nvrtcGetErrorString(r) : log);
  }
  size_t size = 0;
  if (out.is_cubin) {
    n.nvrtcGetCUBINSize(prog, &size);
    out.image.resize(size);
    if (size) n.nvrtcGetCUBIN(prog, reinterpret_cast<char *>(out.image.data()));
  } else {
    n.nvrtcGetPTXSize(prog, &size);
    out.image.resize(size);
    if (size) n.nvrtcGetPTX(prog, reinterpret_cast<char *>(out.image.data()));
  }
  n.nvrtcDestroyProgram(&prog);
  return out;
}

// ------------------------------------------------------------------ modules

std::shared_ptr<Module> Module::load(std::vector<uint8_t> image) {
  if (image.empty()) throw std::invalid_argument("empty CUDA module image");
  std::shared_ptr<Module> m(new Module());
  m->image_ = std::move(image);
  Device &D = ready_device();
  std::lock_guard<std::mutex> lock(D.mu);
  make_current(D);
  m->ensure_loaded();
  return m;
}

Module::~Module() {
  Device &D = device();
  if (!module_ || !D.ready) return;
  std::lock_guard<std::mutex> lock(D.mu);
  if (generation_ == D.generation && libs().cu.cuCtxSetCurrent(D.ctx) == CUDA_SUCCESS) {
    libs().cu.cuModuleUnload(static_cast<CUmodule>(module_));
  }
}

// (D.mu held, context current)
void Module::ensure_loaded() {
  Device &D = device();
  if (module_ && generation_ == D.generation) return;
  char log[8192] = {0};
  CUjit_option opts[2] = {JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[2] = {log, reinterpret_cast<void *>(uintptr_t(sizeof log - 1))};
  CUmodule mod = nullptr;
  CUresult r = libs().cu.cuModuleLoadDataEx(&mod, image_.data(), 2, opts, vals);
  if (r != CUDA_SUCCESS) {
    throw std::runtime_error("cuModuleLoadDataEx: " + cu_error(r) + (log[0] ? std::string(": ") + log : std::string()));
  }
  module_ = mod;
  generation_ = D.generation;
}

void *Module::handle(const std::string &entry, FunctionInfo *info) {
  ensure_loaded();
  const DriverApi &c = libs().cu;
  CUfunction f = nullptr;
  CUresult r = c.cuModuleGetFunction(&f, static_cast<CUmodule>(module_), entry.c_str());
  if (r != CUDA_SUCCESS) throw std::runtime_error("no kernel entry '" + entry + "' in the module: " + cu_error(r));
  if (info) {
    c.cuFuncGetAttribute(&info->max_threads, FUNC_MAX_THREADS_PER_BLOCK, f);
    c.cuFuncGetAttribute(&info->static_shared, FUNC_SHARED_SIZE_BYTES, f);
    c.cuFuncGetAttribute(&info->registers, FUNC_NUM_REGS, f);
  }
  return f;
}

FunctionInfo Module::function(const std::string &entry) {
  Device &D = ready_device();
  std::lock_guard<std::mutex> lock(D.mu);
  make_current(D);
  FunctionInfo info;
  handle(entry, &info);
  return info;
}

// ------------------------------------------------------------------ dispatch
namespace {

// Device allocations, freed at the end of the dispatch.
struct DeviceBuffers {
  std::vector<CUdeviceptr> owned;
  ~DeviceBuffers() {
    for (CUdeviceptr p : owned) libs().cu.cuMemFree(p);
  }
};

// One launch of a (sub-)grid: CUDA grid and block sizes, and the threadgroup
// position of its first block.
struct SubLaunch {
  unsigned grid[3], block[3], origin[3];
};

std::vector<SubLaunch> split(const Launch &l, MoeCudaArgs *args) {
  const uint32_t *g = l.grid, *t = l.threadgroup;
  std::vector<SubLaunch> out;
  if (l.mode == LaunchMode::Threadgroups) {
    SubLaunch s{{g[0], g[1], g[2]}, {t[0], t[1], t[2]}, {0, 0, 0}};
    out.push_back(s);
    args->threads_per_grid = {g[0] * t[0], g[1] * t[1], g[2] * t[2]};
    args->threadgroups_per_grid = {g[0], g[1], g[2]};
    return out;
  }
  args->threads_per_grid = {g[0], g[1], g[2]};
  args->threadgroups_per_grid = {(g[0] + t[0] - 1) / t[0], (g[1] + t[1] - 1) / t[1], (g[2] + t[2] - 1) / t[2]};
  // per dimension: the full threadgroups, then the one smaller edge group
  struct Seg {
    unsigned count, size, origin;
  };
  std::vector<Seg> segs[3];
  for (int d = 0; d < 3; ++d) {
    const unsigned full = g[d] / t[d], rem = g[d] % t[d];
    if (full > 0) segs[d].push_back({full, t[d], 0});
    if (rem > 0) segs[d].push_back({1, rem, full});
  }
  for (const Seg &x : segs[0])
    for (const Seg &y : segs[1])
      for (const Seg &z : segs[2]) {
        out.push_back(SubLaunch{{x.count, y.count, z.count}, {x.size, y.size, z.size}, {x.origin, y.origin, z.origin}});
      }
  return out;
}

void check(CUresult r, const char *what) {
  if (r != CUDA_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cu_error(r));
}

// How long the kernels get to leave on their own once the abort flag is set.
constexpr uint64_t kLoopGraceMs = 2000;

// Waits for an event, polling, for at most timeout_ms (0: no limit). Past
// it, the watchdog sets the abort flag (`abort`, mapped host memory; may be
// null) and waits kLoopGraceMs more: kernels whose loops poll it leave, and
// the dispatch fails as a timeout naming the loop's line, the GPU still
// usable (a plain runtime_error). A kernel still running after that throws
// Timeout (the GPU is held).
void wait_event(CUevent e, uint64_t timeout_ms, volatile unsigned *abort, const std::string &entry) {
  const DriverApi &c = libs().cu;
  const auto t0 = std::chrono::steady_clock::now();
  bool stopping = false;
  for (unsigned spin = 0;; ++spin) {
    CUresult r = c.cuEventQuery(e);
    if (r == CUDA_SUCCESS && !stopping) return;
    if (r != CUDA_SUCCESS && r != CUDA_ERROR_NOT_READY) check(r, "kernel execution");
    const std::string limit =
        fmt("timed out: the dispatch ran longer than %llu ms (the watchdog's limit, --timeout)", (unsigned long long)timeout_ms);
    if (r == CUDA_SUCCESS) {  // stopped at the flag
      const unsigned line = abort[1];
      abort[0] = 0;
      if (line != 0) {
        throw std::runtime_error(limit + fmt("; kernel '%s' stopped by the watchdog at the loop of line %u", entry.c_str(), line));
      }
      throw std::runtime_error(limit + fmt("; kernel '%s' stopped by the watchdog", entry.c_str()));
    }
    if (timeout_ms > 0) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      if (!stopping && uint64_t(ms) > timeout_ms) {
        if (abort == nullptr) throw Timeout(limit);
        __atomic_store_n(const_cast<unsigned *>(abort), 1u, __ATOMIC_SEQ_CST);
        stopping = true;
      }
      if (stopping && uint64_t(ms) > timeout_ms + kLoopGraceMs) throw Timeout(limit);
    }
    if (spin > 64) std::this_thread::sleep_for(std::chrono::microseconds(spin > 4096 ? 500 : 20));
  }
}

// (D.mu held, context current) The abort words of the cooperative stop, cleared; null when they cannot be had.
volatile unsigned *abort_words(Device &D) {
  if (!D.abort_host && !D.abort_failed) {
    const DriverApi &c = libs().cu;
    void *host = nullptr;
    if (c.cuMemHostAlloc(&host, 64, MEMHOSTALLOC_PORTABLE | MEMHOSTALLOC_DEVICEMAP) == CUDA_SUCCESS &&
        c.cuMemHostGetDevicePointer(&D.abort_dev, host, 0) == CUDA_SUCCESS) {
      D.abort_host = static_cast<volatile unsigned *>(host);
    } else {
      D.abort_failed = true;
      D.abort_dev = 0;
    }
  }
  if (D.abort_host) {
    D.abort_host[0] = 0;
    D.abort_host[1] = 0;
  }
  return D.abort_host;
}

// The blocking kernel (as nvbench does): a timed series starts with one
// thread spinning on a counter in mapped host memory until the host has
// enqueued the whole series, so the dispatches run back to back on the GPU
// and the events between them time the GPU, not the host's launch rate. It
// gives up after 2 s whatever happens (a host that could not enqueue).
const char *kBlockerSource = R"(
extern "C" __global__ void moe_blocker(volatile unsigned* release, unsigned until) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  while (*release < until) {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    if (t - t0 > 2000000000ull) return;
  }
}
)";

// Buffers this small (scalars bound as `constant T&`, top-k ids, a few
// outputs) are not rotated with the rest: in an engine they are set with
// setBytes or were just written by the kernel before, so they sit in the
// cache, and a cold miss on them (about 1 µs, before any address that
// depends on them is known) would be charged to every short kernel.
constexpr uint64_t kSharedSmallBytes = 4096;

// (D.mu held, context current) The blocker's function, or null when it cannot be had.
CUfunction blocker_function(Device &D) {
  if (D.blocker_failed) return nullptr;
  const DriverApi &c = libs().cu;
  try {
    if (!D.release) {
      void *host = nullptr;
      check(c.cuMemHostAlloc(&host, 64, MEMHOSTALLOC_PORTABLE | MEMHOSTALLOC_DEVICEMAP), "cuMemHostAlloc");
      check(c.cuMemHostGetDevicePointer(&D.release_dev, host, 0), "cuMemHostGetDevicePointer");
      D.release = static_cast<volatile unsigned *>(host);
      *D.release = 0;
      D.released = 0;
    }
    if (!D.blocker) {
      D.mu.unlock();  // (compile and Module::load take the lock themselves)
      try {
        CompileResult r = compile(kBlockerSource, "moe_blocker.cu", {"--std=c++17"});
        D.blocker = Module::load(std::move(r.image));
      } catch (...) {
        D.mu.lock();
        throw;
      }
      D.mu.lock();
      make_current(D);
    }
    return static_cast<CUfunction>(D.blocker->handle("moe_blocker", nullptr));
  } catch (const std::exception &) {
    D.blocker_failed = true;  // time without it: the host's launch rate may then show in short kernels
    return nullptr;
  }
}

// A stream of our own and the graph captured on it (bench --graph).
struct Graph {
  CUstream stream = nullptr;
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  Graph() = default;
  Graph(const Graph &) = delete;
  Graph &operator=(const Graph &) = delete;
  ~Graph() {
    const DriverApi &c = libs().cu;
    if (exec) c.cuGraphExecDestroy(exec);
    if (graph) c.cuGraphDestroy(graph);
    if (stream) c.cuStreamDestroy(stream);
  }
};

struct Events {
  std::vector<CUevent> ev;
  ~Events() {
    for (CUevent e : ev)
      if (e) libs().cu.cuEventDestroy(e);
  }
};

}  // namespace

void dispatch(Module &module, const std::string &entry, std::vector<HostBuffer> &buffers, const Launch &launch,
              const DispatchOptions &options, std::vector<double> *times_ns) {
  validate_launch(launch);
  if (buffers.size() > MOE_CUDA_MAX_BUFFERS) {
    throw std::invalid_argument(fmt("%zu buffers exceed the maximum of %d", buffers.size(), MOE_CUDA_MAX_BUFFERS));
  }
  Device &D = ready_device();
  const DriverApi &c = libs().cu;
  std::lock_guard<std::mutex> lock(D.mu);
  make_current(D);
  FunctionInfo info;
  CUfunction fn = static_cast<CUfunction>(module.handle(entry, &info));
  const uint64_t threads = uint64_t(launch.threadgroup[0]) * launch.threadgroup[1] * launch.threadgroup[2];
  if (threads > uint64_t(info.max_threads)) {
    throw std::invalid_argument(fmt("threadgroup of %llu threads exceeds this kernel's maximum of %d on %s "
                                    "(its maxTotalThreadsPerThreadgroup: %d registers per thread)",
                                    (unsigned long long)threads, info.max_threads, D.info.name.c_str(), info.registers));
  }
  // Dynamic threadgroup memory: each [[threadgroup(i)]] at a 16-byte aligned offset.
  MoeCudaArgs base;
  std::memset(&base, 0, sizeof base);
  uint64_t dyn = 0;
  for (size_t i = 0; i < launch.tg_memory.size(); ++i) {
    base.tg_dyn_offset[i] = unsigned(dyn);
    dyn += (launch.tg_memory[i] + 15) & ~uint64_t(15);
  }
  base.n_tg_dyn = unsigned(launch.tg_memory.size());
  const uint64_t shared_total = dyn + uint64_t(info.static_shared);
  const uint64_t limit = uint64_t(std::max(D.info.shared_per_block_optin, D.info.shared_per_block));
  if (shared_total > limit) {
    throw std::invalid_argument(fmt("threadgroup memory of %llu bytes (%llu dynamic + %d declared) exceeds the %llu bytes of %s",
                                    (unsigned long long)shared_total, (unsigned long long)dyn, info.static_shared,
                                    (unsigned long long)limit, D.info.name.c_str()));
  }
  if (shared_total > uint64_t(D.info.shared_per_block)) {
    check(c.cuFuncSetAttribute(fn, FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES, int(dyn)), "cuFuncSetAttribute");
  }
  base.dispatch_tg_size = {launch.threadgroup[0], launch.threadgroup[1], launch.threadgroup[2]};
  volatile unsigned *abort = abort_words(D);
  base.abort_flag = abort ? reinterpret_cast<unsigned int *>(D.abort_dev) : nullptr;
  const std::vector<SubLaunch> subs = split(launch, &base);

  // Buffers: `copies` sets (rotation through the L2 when timing).
  uint64_t set_bytes = 0;
  for (const HostBuffer &b : buffers)
    if (b.data && b.alias < 0) set_bytes += std::max<uint64_t>(b.size, 1) + 2 * redzone_guard(options, b.size);
  // What one dispatch moves: its buffers, or less for a kernel that reads a
  // part of them (the caller's cost model says so).
  const uint64_t touched = options.touched_bytes > 0 ? std::min(set_bytes, options.touched_bytes) : set_bytes;
  unsigned copies = 1;
  if (options.timing && options.rotate_bytes > 0 && touched > 0 && touched < options.rotate_bytes) {
    copies = unsigned(std::min<uint64_t>(64, (options.rotate_bytes + touched - 1) / touched));
  }
  size_t free_mem = 0, total_mem = 0;
  c.cuMemGetInfo(&free_mem, &total_mem);
  while (copies > 1 && set_bytes * copies > free_mem / 2) copies--;
  if (set_bytes > free_mem) {
    throw std::runtime_error(fmt("the buffers need %llu bytes of GPU memory; %llu are free on %s", (unsigned long long)set_bytes,
                                 (unsigned long long)free_mem, D.info.name.c_str()));
  }
  DeviceBuffers mem;
  Redzones zones;
  std::vector<CUdeviceptr> ptrs(buffers.size() * copies, 0);
  try {
    std::vector<MoeCudaArgs> args(copies, base);
    for (unsigned k = 0; k < copies; ++k) {
      for (size_t i = 0; i < buffers.size(); ++i) {
        const HostBuffer &b = buffers[i];
        if (!b.data) continue;
        CUdeviceptr &p = ptrs[k * buffers.size() + i];
        if (b.alias >= 0) {
          p = ptrs[k * buffers.size() + size_t(b.alias)];
        } else if (k > 0 && b.size <= kSharedSmallBytes) {
          p = ptrs[i];  // one copy for all: see kSharedSmallBytes
        } else {
          const uint64_t guard = redzone_guard(options, b.size);
          CUdeviceptr base = 0;
          check(c.cuMemAlloc(&base, std::max<uint64_t>(b.size, 1) + 2 * guard), "cuMemAlloc");
          mem.owned.push_back(base);
          p = base + guard;
          if (guard > 0) zones.add(c, uint32_t(i), k, p, b.size, guard);
          if (b.size > 0 && k == 0) check(c.cuMemcpyHtoD(p, b.data, b.size), "cuMemcpyHtoD");
          if (b.size > 0 && k > 0) check(c.cuMemcpyDtoD(p, ptrs[i], b.size), "cuMemcpyDtoD");  // from the first copy
        }
        args[k].buffers[i] = reinterpret_cast<void *>(p);
      }
    }
    // Graph mode: the launches go to a stream of our own, captured once into
    // a graph per sample and replayed (see DispatchOptions::graph).
    const bool graph = options.timing && options.graph && options.iterations > 0;
    Graph g;
    if (graph) {
      if (!c.cuStreamCreate) throw std::runtime_error("--graph needs CUDA graphs (a driver of CUDA 11.4 or later)");
      check(c.cuStreamCreate(&g.stream, STREAM_NON_BLOCKING), "cuStreamCreate");
    }
    CUstream st = g.stream;  // null: the default stream
    auto launch_one = [&](unsigned k) {
      for (const SubLaunch &s : subs) {
        MoeCudaArgs a = args[k];
        a.origin = {s.origin[0], s.origin[1], s.origin[2]};
        void *params[] = {&a};
        check(c.cuLaunchKernel(fn, s.grid[0], s.grid[1], s.grid[2], s.block[0], s.block[1], s.block[2], unsigned(dyn), st,
                               params, nullptr),
              "cuLaunchKernel");
      }
    };
    const uint32_t timed = options.timing ? options.iterations : 0;
    const uint32_t plain = options.timing ? options.warmup : 1;
    Events events;
    unsigned next = 0;
    for (uint32_t i = 0; i < plain; ++i) launch_one(next++ % copies);
    // Dispatches per sample; a graph holds a whole number of rounds of the
    // buffer copies, so that every replay reads each copy as often.
    uint32_t per = std::max<uint32_t>(1, options.per_sample);
    if (graph && copies > 1) per = (per + copies - 1) / copies * copies;
    if (graph) {
      check(c.cuStreamBeginCapture(st, STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
      try {
        for (uint32_t d = 0; d < per; ++d) launch_one(d % copies);
      } catch (...) {
        CUgraph broken = nullptr;
        c.cuStreamEndCapture(st, &broken);
        if (broken) c.cuGraphDestroy(broken);
        throw;
      }
      check(c.cuStreamEndCapture(st, &g.graph), "cuStreamEndCapture");
      check(c.cuGraphInstantiateWithFlags(&g.exec, g.graph, 0), "cuGraphInstantiateWithFlags");
      check(c.cuGraphLaunch(g.exec, st), "cuGraphLaunch");  // upload and warm-up
    }
    // Timed: in chunks, each behind the blocking kernel (see kBlockerSource),
    // an event before the chunk and one after each sample (of per
    // dispatches, or one replay of the graph). A chunk holds about 120
    // launches at most, so that the host never waits for room in the launch
    // queue while the blocker holds it.
    struct Span {
      size_t from, to;
    };
    std::vector<Span> spans;  // event indices around each sample
    CUfunction blk = timed > 0 ? blocker_function(D) : nullptr;
    const uint32_t per_launches = graph ? 1u : uint32_t(subs.size()) * per;
    const uint32_t chunk = blk ? std::max<uint32_t>(1, 120 / (per_launches + 1)) : std::max<uint32_t>(timed, 1);
    auto record = [&]() {
      CUevent e = nullptr;
      check(c.cuEventCreate(&e, 0), "cuEventCreate");
      events.ev.push_back(e);
      check(c.cuEventRecord(e, st), "cuEventRecord");
      return events.ev.size() - 1;
    };
    for (uint32_t i = 0; i < timed;) {
      const uint32_t n_here = std::min(chunk, timed - i);
      unsigned until = D.released + 1;
      if (blk) {
        CUdeviceptr flag = D.release_dev;
        void *bp[] = {&flag, &until};
        check(c.cuLaunchKernel(blk, 1, 1, 1, 1, 1, 1, 0, st, bp, nullptr), "cuLaunchKernel (blocking kernel)");
      }
      size_t prev = record();
      for (uint32_t j = 0; j < n_here; ++j) {
        if (graph) {
          check(c.cuGraphLaunch(g.exec, st), "cuGraphLaunch");
        } else {
          for (uint32_t d = 0; d < per; ++d) launch_one(next++ % copies);
        }
        const size_t now = record();
        spans.push_back({prev, now});
        prev = now;
      }
      if (blk) {
        D.released = until;
        __atomic_store_n(const_cast<unsigned *>(D.release), until, __ATOMIC_SEQ_CST);
      }
      i += n_here;
    }
    const size_t last = record();
    const uint64_t budget =
        options.timeout_ms == 0 ? 0 : options.timeout_ms * std::max<uint64_t>(1, uint64_t(plain) + uint64_t(timed) * per);
    wait_event(events.ev[last], budget, abort, entry);
    if (times_ns) {
      times_ns->clear();
      for (const auto &sp : spans) {
        float ms = 0;
        check(c.cuEventElapsedTime(&ms, events.ev[sp.from], events.ev[sp.to]), "cuEventElapsedTime");
        times_ns->push_back(double(ms) * 1e6 / per);
      }
    }
    for (size_t i = 0; i < buffers.size(); ++i) {
      const HostBuffer &b = buffers[i];
      if (!b.data || b.alias >= 0 || b.size == 0) continue;
      check(c.cuMemcpyDtoH(b.data, ptrs[i], b.size), "cuMemcpyDtoH");
    }
    const std::string damage = zones.check(c, options.buffer_names);
    if (!damage.empty()) throw std::runtime_error(damage);
  } catch (const Timeout &e) {
    // The kernel may spin on: freeing its buffers or resetting the context
    // would wait for it. Leave both, and refuse further work with the reason.
    mem.owned.clear();
    D.poisoned = std::string("a kernel on ") + D.info.name + " " + e.what() +
                 " and may still be running; the GPU cannot be used again by this process";
    throw;
  } catch (...) {
    // A fault leaves the context unusable: reset it unless it still
    // synchronises cleanly (buffers of the old context are gone with it).
    if (c.cuCtxSynchronize() != CUDA_SUCCESS) {
      mem.owned.clear();
      reset_context(D);
    }
    throw;
  }
}

}  // namespace cuda
}  // namespace moe
