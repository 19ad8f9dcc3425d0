// runtime.h — the CPU runtime that executes kernel modules (shared objects
// built from MSL, see native/include/msl_cpu/abi.h) with Metal's semantics.
//
// Used by the Node addon (addon.cc) and, without Node, by the test driver
// (native/test/runtime_test.cc).
#ifndef MOE_RUNTIME_H
#define MOE_RUNTIME_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../include/msl_cpu/abi.h"

namespace moe {

constexpr uint32_t kMaxThreadsPerThreadgroup = 1024;
constexpr uint64_t kMaxThreadgroupMemory = 32768;
constexpr size_t kDefaultStackSize = 256 * 1024;
constexpr size_t kMinStackSize = 16 * 1024;
constexpr size_t kMaxStackSize = 64 * 1024 * 1024;
constexpr unsigned kMaxWorkers = 1024;

struct KernelDesc {
  std::string name;
  MoeKernelEntry entry = nullptr;
  bool uses_sync = false;
  // [[threadgroup(n)]] parameters by index n: name ("" unknown) and element size (0 unknown), for reports.
  std::vector<std::string> tg_param_names;
  std::vector<uint32_t> tg_param_elem;
};

// A dlopen'ed kernel module. Shared ownership: a dispatch in flight keeps its
// module loaded. dlclose happens in the destructor.
class Module {
 public:
  // dlopen + bind the runtime API + list the kernels. Throws std::runtime_error
  // (with dlerror's text where there is one).
  static std::shared_ptr<Module> load(const std::string &path);
  ~Module();
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;

  const std::string &path() const { return path_; }
  const std::vector<KernelDesc> &kernels() const { return kernels_; }
  const KernelDesc *find(const std::string &name) const;

 private:
  Module() = default;
  std::string path_;
  void *handle_ = nullptr;
  std::vector<KernelDesc> kernels_;
};

enum class LaunchMode { Threads, Threadgroups };
enum class Schedule { Forward, Reverse, Shuffle };

struct Launch {
  LaunchMode mode = LaunchMode::Threads;
  uint32_t grid[3] = {1, 1, 1};         // threads (Threads) or threadgroups (Threadgroups)
  uint32_t threadgroup[3] = {1, 1, 1};  // nominal threads per threadgroup
  std::vector<uint64_t> tg_memory;      // bytes of [[threadgroup(i)]]
};

struct RunOptions {
  unsigned workers = 0;  // 0: hardware concurrency
  Schedule schedule = Schedule::Forward;
  uint64_t seed = 0;
  size_t stack_size = kDefaultStackSize;  // per kernel thread (each fiber; the plain loop runs on one such stack)
  bool force_fibers = false;
  // Watchdog: a dispatch still running after this many milliseconds is
  // abandoned with an error (0: no limit).
  uint64_t timeout_ms = 0;
  // Names of the [[buffer(n)]] bindings, index n, for error messages (may be
  // shorter than the bindings or hold empty strings).
  std::vector<std::string> buffer_names;
};

// One [[buffer(n)]] binding; ptr == nullptr means unbound. A binding made by
// GuardedBuffer::binding() also carries its mapping (guard pages included),
// so that faults in it are attributed to the buffer and its slack bytes are
// checked after every dispatch.
struct Binding {
  void *ptr = nullptr;
  uint64_t size = 0;
  const class GuardedBuffer *guard = nullptr;
};

// A buffer placed between inaccessible (PROT_NONE) guard regions, so that an
// out-of-bounds access by a kernel faults and becomes an error naming the
// buffer and the offset (see buffers.cc):
//
//   [lead guard 64 KiB][front slack | data (start 16-byte aligned) | tail slack][trail guard]
//
// The data ends as close to the trailing guard as 16-byte alignment allows:
// the tail slack is size rounded up to 16 minus size (0..15 bytes). The front
// slack fills the first data page up to the start. Both slacks hold a canary
// (bytes BA 7F: NaN as f32, bf16 and f16; a huge value as an index) that is
// checked after each dispatch, so a write into them is reported too; a read
// of them is not a fault, but feeds NaN into float results. The trailing
// guard is a large PROT_NONE reservation (64 GiB when the address space
// allows, else 64 KiB), so an index that wrapped below zero in 32-bit
// unsigned arithmetic (i - 1 with i = 0) still lands in it.
class GuardedBuffer {
 public:
  GuardedBuffer() = default;
  // Throws std::runtime_error when the mapping fails.
  explicit GuardedBuffer(uint64_t size);
  ~GuardedBuffer();
  GuardedBuffer(GuardedBuffer &&o) noexcept;
  GuardedBuffer &operator=(GuardedBuffer &&o) noexcept;
  GuardedBuffer(const GuardedBuffer &) = delete;
  GuardedBuffer &operator=(const GuardedBuffer &) = delete;

  uint8_t *data() const { return data_; }
  uint64_t size() const { return size_; }
  Binding binding() const { return Binding{data_, size_, this}; }
  // The whole mapping, guards included: [map_lo, map_hi).
  uintptr_t map_lo() const { return reinterpret_cast<uintptr_t>(map_); }
  uintptr_t map_hi() const { return reinterpret_cast<uintptr_t>(map_) + map_len_; }
  // Offsets (relative to data()) of the first and last slack bytes whose
  // canary was overwritten; false when the canary is intact.
  bool canary_damage(int64_t *first, int64_t *last) const;
  // Rewrites the canary (after a dispatch that damaged it).
  void reset_canary() const;

 private:
  void *map_ = nullptr;
  size_t map_len_ = 0;
  uint8_t *page_lo_ = nullptr;  // first data page
  uint8_t *page_hi_ = nullptr;  // end of the data pages (= start of the trailing guard)
  uint8_t *data_ = nullptr;
  uint64_t size_ = 0;
};

// Throws std::invalid_argument when Metal would refuse the launch.
void validate_launch(const Launch &launch);

// Runs one dispatch of `kernel` to completion on the worker pool. Throws
// std::invalid_argument for an invalid launch, std::runtime_error when the
// kernel fails (fail(), divergent barrier, deadlock, threadgroup memory over
// the limit, an access fault in a buffer or anywhere else, a stack overflow,
// a SIGFPE/SIGILL trap, the watchdog's timeout, a damaged buffer canary): the
// message does not name the kernel. The process survives all of them.
// Dispatches are serialised (one at a time per process); calling from several
// threads is safe.
void dispatch(const KernelDesc &kernel, const std::vector<Binding> &buffers, const Launch &launch,
              const RunOptions &options);

unsigned hardware_concurrency();

// Stops and joins the worker threads (tests; the addon never calls it).
void shutdown_pool();

// 64-byte aligned heap block owned by the runtime's caller (buffer copies).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(uint64_t size);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer &&o) noexcept;
  AlignedBuffer &operator=(AlignedBuffer &&o) noexcept;
  AlignedBuffer(const AlignedBuffer &) = delete;
  AlignedBuffer &operator=(const AlignedBuffer &) = delete;
  uint8_t *data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  uint8_t *data_ = nullptr;
  uint64_t size_ = 0;
};

// The function table handed to every module (exposed for tests).
const MoeRuntimeApi *runtime_api();

}  // namespace moe

#endif  // MOE_RUNTIME_H
