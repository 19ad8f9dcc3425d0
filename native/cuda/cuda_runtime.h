// cuda_runtime.h — the CUDA backend's runtime (DESIGN.md, "The CUDA backend"):
// the driver API and NVRTC opened with dlopen (so the addon builds and loads
// where CUDA is absent), one primary context on device 0, NVRTC compilation,
// modules, buffers, launches with dynamic shared memory, and CUDA events for
// per-dispatch device times. Used by the addon (addon_cuda.cc).
//
// Metal semantics kept here: a dispatchThreads grid that is not a multiple of
// the threadgroup is launched as up to 8 grids with exact block sizes (see
// msl_cuda/abi.h), so edge threadgroups are smaller and no extra thread runs;
// launches Metal would refuse are refused (validate_launch of the CPU runtime,
// and the function's own maximum threads per block, as a Metal pipeline's
// maxTotalThreadsPerThreadgroup).
#ifndef MOE_CUDA_RUNTIME_H
#define MOE_CUDA_RUNTIME_H

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cpu/runtime.h"

namespace moe {
namespace cuda {

struct DeviceInfo {
  std::string name;
  uint64_t total_memory = 0;
  int cc_major = 0, cc_minor = 0;
  int multiprocessors = 0;
  int l2_bytes = 0;
  int max_threads_per_block = 0;
  int shared_per_block = 0;
  int shared_per_block_optin = 0;
  int clock_khz = 0;
  int memory_clock_khz = 0;
  int memory_bus_width = 0;
  int driver_version = 0;  // 13000 = 13.0
  int nvrtc_major = 0, nvrtc_minor = 0;
  std::string driver_library, nvrtc_library;
};

// Opens the libraries and device 0 once per process. False, with the reason,
// when CUDA cannot be used here; never throws.
bool probe(DeviceInfo *out, std::string *why);

// A compile error: the NVRTC log.
struct CompileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CompileResult {
  std::vector<uint8_t> image;  // a cubin, or PTX text (NUL-terminated) for the driver to compile
  bool is_cubin = false;
  std::string arch;            // sm_90, or compute_90 for PTX
  std::string log;             // NVRTC's warnings
};

// NVRTC: `options` are passed as given, plus the target architecture of
// device 0 (the newest NVRTC supports). Throws CompileError with the log.
CompileResult compile(const std::string &source, const std::string &name, const std::vector<std::string> &options);

struct FunctionInfo {
  int max_threads = 0;     // CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK
  int static_shared = 0;   // bytes of __shared__ variables
  int registers = 0;
};

// A loaded module. Its image is kept: after a kernel fault the context is
// reset (a CUDA context is unusable after one) and the module reloads itself
// at its next use.
class Module {
 public:
  static std::shared_ptr<Module> load(std::vector<uint8_t> image);
  ~Module();
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;
  // Throws when there is no such entry.
  FunctionInfo function(const std::string &entry);
  // (internal) the CUfunction handle for entry, current generation; loads as needed.
  void *handle(const std::string &entry, FunctionInfo *info);

 private:
  Module() = default;
  void ensure_loaded();
  std::vector<uint8_t> image_;
  void *module_ = nullptr;  // CUmodule
  uint64_t generation_ = 0;
};

// One [[buffer(n)]]: host bytes copied to the device before the dispatches
// and back after them. `alias` >= 0: the same memory as that earlier index.
struct HostBuffer {
  uint8_t *data = nullptr;  // null: unbound
  uint64_t size = 0;
  int alias = -1;
};

struct DispatchOptions {
  bool timing = false;
  uint32_t warmup = 0;
  uint32_t iterations = 1;
  // Timing: run the dispatches over several copies of the buffers, in turn,
  // so that each reads memory not left in the L2 cache by the one before: as
  // many copies as make at least this many bytes (0: one copy, a warm cache).
  // Buffers of 4 KiB or less are shared by all copies (scalars, ids: in an
  // engine they are in the cache).
  uint64_t rotate_bytes = 0;
  // The bytes one dispatch actually reads and writes, when known and less
  // than its buffers hold (a kernel that gathers a few experts out of many):
  // the rotation counts these, not the buffers' sizes. 0: the buffers' sizes.
  uint64_t touched_bytes = 0;
  // Timing: dispatches per sample. Each of the `iterations` samples is then
  // the device time of this many back-to-back dispatches divided by their
  // number: throughput, with the gaps between kernels but without the cost
  // of an event pair per dispatch. 1: one sample per dispatch.
  uint32_t per_sample = 1;
  // Timing: capture each sample's dispatches in a CUDA graph (rounded up to
  // whole rounds of the buffer copies) and replay it, as engines run decode:
  // the GPU then launches the kernels itself, without the stream's
  // per-launch cost.
  bool graph = false;
  // Watchdog: a dispatch (or the timed series) still running after this
  // long is reported as a timeout (the context is then reset). 0: none.
  uint64_t timeout_ms = 0;
  // Redzones (native/common/redzone.h): guard bytes before and after every
  // buffer, checked after the dispatches (timing: after the whole series,
  // every rotated copy); a changed guard throws an out-of-bounds write.
  bool redzones = true;
  // Names of the buffers by [[buffer(n)]] index, for the redzone reports.
  std::vector<std::string> buffer_names;
};

// Runs the dispatches; fills times_ns (timing: one per timed dispatch, from
// CUDA events recorded before and after each; with options.per_sample > 1,
// the mean over that many dispatches between two events). Throws std::invalid_argument
// for a launch Metal would refuse, std::runtime_error for a CUDA failure (the
// kernel faulted: illegal address, trap, timeout...). Serialised per process.
void dispatch(Module &module, const std::string &entry, std::vector<HostBuffer> &buffers, const Launch &launch,
              const DispatchOptions &options, std::vector<double> *times_ns);

}  // namespace cuda
}  // namespace moe

#endif  // MOE_CUDA_RUNTIME_H
