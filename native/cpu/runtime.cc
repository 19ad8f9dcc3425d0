// runtime.cc — executes kernel modules with Metal's semantics (see runtime.h).
//
// Threadgroups are taken from an atomic counter by a persistent pool of OS
// worker threads (the dispatching thread is worker 0). A kernel without
// synchronisation runs each threadgroup as a plain loop over its threads; a
// kernel with barriers or SIMD-group collectives runs each thread of the
// group as a fiber. Fibers run until they block (threadgroup_barrier,
// simdgroup_barrier, a SIMD exchange) or return, switching directly to the
// next runnable fiber. When none is runnable, the fiber that blocked last
// releases what can be released (SIMD-groups whose live lanes are all
// blocked, then the threadgroup barrier) and the released fibers run next in
// the order of the schedule (forward, reverse, seeded shuffle).
//
// Kernel code only ever runs on stacks of the runtime (fiber stacks, or one
// such stack per worker for the plain loop), each above a PROT_NONE guard,
// and buffers handed in through GuardedBuffer sit between guard regions. A
// fault (SIGSEGV/SIGBUS), a SIGFPE or a SIGILL raised by kernel code, and
// the watchdog's signal, are turned into errors of the dispatch: see
// "Traps and the watchdog" below.
#include "runtime.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__linux__)
#include <ucontext.h>  // (the fault's access kind; macOS wants _XOPEN_SOURCE for it, and we do not need it there)
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csetjmp>
#include <cstdarg>
#include <fstream>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "fiber.h"

namespace moe {

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

static std::string strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static std::string strprintf(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return std::string();
  if (size_t(n) < sizeof buf) return std::string(buf, size_t(n));
  std::string s(size_t(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(&s[0], s.size(), fmt, ap);
  va_end(ap);
  s.resize(size_t(n));
  return s;
}

static inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static inline uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static size_t page_size() {
  static const size_t ps = [] {
    long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? size_t(v) : size_t(4096);
  }();
  return ps;
}

// PROT_NONE region below each fiber stack. Larger than a page so that a frame
// that jumps over the first page (code built without -fstack-clash-protection)
// still lands in it. Costs address space only.
static size_t stack_guard_size() { return std::max<size_t>(page_size(), 64 * 1024); }

// How many memory mappings a process may have (Linux: vm.max_map_count). Each
// fiber stack costs two (stack + guard).
static uint64_t max_map_count() {
  static const uint64_t v = [] {
    uint64_t n = 65530;
#if defined(__linux__)
    std::ifstream f("/proc/sys/vm/max_map_count");
    uint64_t x = 0;
    if (f >> x && x > 0) n = x;
#else
    n = 1u << 20;
#endif
    return n;
  }();
  return v;
}

unsigned hardware_concurrency() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

AlignedBuffer::AlignedBuffer(uint64_t size) : size_(size) {
  uint64_t alloc = round_up(size == 0 ? 1 : size, 64);
  void *p = nullptr;
  if (alloc > SIZE_MAX || posix_memalign(&p, 64, size_t(alloc)) != 0 || p == nullptr) {
    throw std::runtime_error(strprintf("out of memory allocating a buffer of %llu bytes", (unsigned long long)size));
  }
  data_ = static_cast<uint8_t *>(p);
  // Bytes past the end up to the 64-byte boundary are defined (zero).
  if (alloc > size) std::memset(data_ + size, 0, size_t(alloc - size));
}
AlignedBuffer::~AlignedBuffer() { std::free(data_); }
AlignedBuffer::AlignedBuffer(AlignedBuffer &&o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}
AlignedBuffer &AlignedBuffer::operator=(AlignedBuffer &&o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

// ---------------------------------------------------------------------------
// Guarded buffers (runtime.h). One mapping per buffer, reserved PROT_NONE
// with MAP_NORESERVE (address space only), then the data pages made
// readable and writable.
// ---------------------------------------------------------------------------

static constexpr size_t kLeadGuard = 64 * 1024;
static constexpr uint64_t kBigTrailGuard = uint64_t(64) << 30;  // 64 GiB of address space
static constexpr size_t kSmallTrailGuard = 64 * 1024;

// Canary of the slack bytes: BA at even addresses, 7F at odd ones (u32
// 0x7FBA7FBA, a NaN; bf16 and f16 0x7FBA are NaNs too).
static inline uint8_t canary_byte(const uint8_t *p) { return (reinterpret_cast<uintptr_t>(p) & 1) ? 0x7F : 0xBA; }

GuardedBuffer::GuardedBuffer(uint64_t size) : size_(size) {
  const size_t ps = page_size();
  const uint64_t size16 = round_up(size, 16);
  const uint64_t pages = std::max<uint64_t>(ps, round_up(size16, ps));
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
  flags |= MAP_NORESERVE;
#endif
  void *m = MAP_FAILED;
  size_t len = 0;
  if (size16 < size || pages > uint64_t(SIZE_MAX) / 2) {
    throw std::runtime_error(strprintf("cannot map a buffer of %llu bytes: too large", (unsigned long long)size));
  }
  for (uint64_t trail : {kBigTrailGuard, uint64_t(kSmallTrailGuard)}) {
    if (sizeof(void *) < 8 && trail > kSmallTrailGuard) continue;
    len = size_t(kLeadGuard + pages + trail);
    m = mmap(nullptr, len, PROT_NONE, flags, -1, 0);
    if (m != MAP_FAILED) break;
  }
  if (m == MAP_FAILED) {
    throw std::runtime_error(strprintf("cannot map a buffer of %llu bytes: %s", (unsigned long long)size,
                                       std::strerror(errno)));
  }
  uint8_t *lo = static_cast<uint8_t *>(m) + kLeadGuard;
  if (mprotect(lo, size_t(pages), PROT_READ | PROT_WRITE) != 0) {
    int e = errno;
    munmap(m, len);
    throw std::runtime_error(strprintf("cannot map a buffer of %llu bytes: %s", (unsigned long long)size,
                                       std::strerror(e)));
  }
  map_ = m;
  map_len_ = len;
  page_lo_ = lo;
  page_hi_ = lo + pages;
  data_ = page_hi_ - size16;
  reset_canary();
}

GuardedBuffer::~GuardedBuffer() {
  if (map_ != nullptr) munmap(map_, map_len_);
}

GuardedBuffer::GuardedBuffer(GuardedBuffer &&o) noexcept
    : map_(o.map_), map_len_(o.map_len_), page_lo_(o.page_lo_), page_hi_(o.page_hi_), data_(o.data_), size_(o.size_) {
  o.map_ = nullptr;
  o.map_len_ = 0;
  o.page_lo_ = o.page_hi_ = o.data_ = nullptr;
  o.size_ = 0;
}

GuardedBuffer &GuardedBuffer::operator=(GuardedBuffer &&o) noexcept {
  if (this != &o) {
    if (map_ != nullptr) munmap(map_, map_len_);
    map_ = o.map_;
    map_len_ = o.map_len_;
    page_lo_ = o.page_lo_;
    page_hi_ = o.page_hi_;
    data_ = o.data_;
    size_ = o.size_;
    o.map_ = nullptr;
    o.map_len_ = 0;
    o.page_lo_ = o.page_hi_ = o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

void GuardedBuffer::reset_canary() const {
  if (map_ == nullptr) return;
  for (uint8_t *p = page_lo_; p < data_; ++p) *p = canary_byte(p);
  for (uint8_t *p = data_ + size_; p < page_hi_; ++p) *p = canary_byte(p);
}

bool GuardedBuffer::canary_damage(int64_t *first, int64_t *last) const {
  if (map_ == nullptr) return false;
  bool hit = false;
  auto scan = [&](uint8_t *a, uint8_t *b) {
    for (uint8_t *p = a; p < b; ++p) {
      if (*p == canary_byte(p)) continue;
      int64_t off = int64_t(p - data_);
      if (!hit) *first = off;
      *last = off;
      hit = true;
    }
  };
  scan(page_lo_, data_);
  scan(data_ + size_, page_hi_);
  return hit;
}

// ---------------------------------------------------------------------------
// Dispatch and worker state
// ---------------------------------------------------------------------------

namespace {

enum FiberState : uint8_t {
  kReady = 0,
  kRunning,
  kAtBarrier,
  kAtSimdExchange,
  kAtSimdBarrier,
  kDone,
};

const char *state_name(uint8_t s) {
  switch (s) {
    case kReady: return "ready";
    case kRunning: return "running";
    case kAtBarrier: return "threadgroup_barrier";
    case kAtSimdExchange: return "SIMD-group collective";
    case kAtSimdBarrier: return "simdgroup_barrier";
    case kDone: return "returned";
  }
  return "?";
}

struct Worker;

struct Fiber {
  FiberCtx ctx;
  MoeThreadCtx t;
  Worker *w = nullptr;
  uint64_t *mask_out = nullptr;  // active-mask destination of a pending SIMD exchange
  uint8_t state = kDone;
};

// Exchange slots of one SIMD-group, double-buffered: a rendezvous fills
// slots[parity] and flips parity when it completes, so the slots a lane got
// stay intact while the next rendezvous fills the other half.
struct alignas(64) SimdGroup {
  uint8_t slots[2][MOE_SIMD_WIDTH][MOE_SIMD_SLOT_BYTES];
  uint32_t parity;
};

void watchdog_poke();

// Shared by all workers of one dispatch.
struct Dispatch {
  const KernelDesc *kernel = nullptr;
  const RunOptions *opt = nullptr;
  const std::vector<Binding> *bindings = nullptr;
  bool fibers = false;
  bool threads_mode = false;
  MoeDispatchCtx dctx{};
  uint32_t tgpg[3] = {1, 1, 1};
  uint32_t grid_threads[3] = {1, 1, 1};
  uint32_t tg[3] = {1, 1, 1};
  uint64_t n_groups = 0;
  const uint64_t *tg_mem = nullptr;
  uint32_t n_tg_mem = 0;
  uint64_t tg_dyn_total = 0;  // rounded to 16 bytes each

  std::atomic<uint64_t> next_group{0};
  std::atomic<bool> abort{false};
  // Watchdog: set (with abort) once the deadline has passed.
  std::atomic<bool> timed_out{false};
  bool has_deadline = false;
  std::chrono::steady_clock::time_point deadline;
  std::mutex err_m;
  std::string error;

  void set_error(const std::string &msg) {
    {
      std::lock_guard<std::mutex> lk(err_m);
      if (error.empty()) error = msg;
    }
    abort.store(true, std::memory_order_relaxed);
    watchdog_poke();  // interrupts the workers still running kernel code
  }
};

enum TrapKind : int {
  kTrapNone = 0,
  kTrapFault,    // SIGSEGV / SIGBUS
  kTrapArith,    // SIGFPE
  kTrapIllegal,  // SIGILL, SIGTRAP (__builtin_trap: ud2 on x86-64, brk on arm64)
  kTrapTimeout,  // the watchdog's signal, past the deadline
  kTrapCancel,   // the watchdog's signal, after another worker failed the dispatch
};

struct Stack {
  void *map = nullptr;
  size_t map_len = 0;
  char *lo = nullptr;  // usable region, above the guard page
  size_t size = 0;
};

struct StaticSlot {
  uint64_t gen = 0;
  void *ptr = nullptr;
  uint64_t size = 0;
};

constexpr uint32_t kMaxSimdGroups = (kMaxThreadsPerThreadgroup + MOE_SIMD_WIDTH - 1) / MOE_SIMD_WIDTH;
constexpr uint64_t kArenaCapacity = 2 * kMaxThreadgroupMemory;
constexpr uint32_t kMaxStaticSlot = 1u << 16;

struct Worker;
// Workers by pool index, for the signal handlers (which must not touch
// thread-local storage of a dlopen'ed library: its first use may allocate).
std::atomic<Worker *> g_workers[kMaxWorkers];
std::atomic<uint32_t> g_n_workers{0};

struct Worker {
  explicit Worker(uint32_t slot_index) : slot(slot_index) {
    fibers.reset(new Fiber[kMaxThreadsPerThreadgroup]);
    for (uint32_t i = 0; i < kMaxThreadsPerThreadgroup; ++i) fibers[i].w = this;
    void *p = nullptr;
    if (posix_memalign(&p, 64, sizeof(SimdGroup) * kMaxSimdGroups) != 0) throw std::bad_alloc();
    simd = static_cast<SimdGroup *>(p);
    for (uint32_t i = 0; i < kMaxSimdGroups; ++i) simd[i].parity = 0;
    if (posix_memalign(&p, 4096, kArenaCapacity) != 0) {
      std::free(simd);
      throw std::bad_alloc();
    }
    arena = static_cast<uint8_t *>(p);
    perm.resize(kMaxThreadsPerThreadgroup);
    scratch.resize(kMaxThreadsPerThreadgroup);
    g_workers[slot].store(this, std::memory_order_release);
    uint32_t n = g_n_workers.load(std::memory_order_relaxed);
    while (n < slot + 1 && !g_n_workers.compare_exchange_weak(n, slot + 1)) {
    }
  }
  ~Worker() {
    g_workers[slot].store(nullptr, std::memory_order_release);
    free_stacks();
    if (altstack != nullptr) munmap(altstack, altstack_size);
    std::free(simd);
    std::free(arena);
    for (void *b : tg_dyn_bufs) std::free(b);
  }
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  // --- per-worker resources
  std::unique_ptr<Fiber[]> fibers;
  std::vector<Stack> stacks;
  size_t stacks_size = 0;     // usable bytes of each stack in `stacks`
  bool stacks_dirty = false;  // fibers were abandoned mid-call on them
  SimdGroup *simd = nullptr;
  uint8_t *arena = nullptr;   // tg_static storage
  std::vector<StaticSlot> static_slots;
  std::vector<void *> tg_dyn_bufs;
  std::vector<uint64_t> tg_dyn_caps;
  std::vector<void *> tg_dyn_ptrs;
  std::vector<uint32_t> perm, scratch;

  // --- current dispatch / group
  Dispatch *d = nullptr;
  MoeGroupCtx g{};
  uint64_t group_linear = 0;
  uint32_t n = 0, n_live = 0, n_done = 0, n_barrier = 0;
  // Lanes waiting at a SIMD exchange / simdgroup_barrier, per SIMD-group, and
  // the SIMD-groups that have any (bit sg).
  uint32_t simd_exch[kMaxSimdGroups] = {};
  uint32_t simd_bar[kMaxSimdGroups] = {};
  uint32_t simd_waiting = 0;
  uint64_t released[kMaxThreadsPerThreadgroup / 64] = {};
  const uint32_t *rq = nullptr;
  uint32_t rq_len = 0, rq_pos = 0;
  Fiber *cur = nullptr;
  FiberCtx sched;
  bool group_failed = false;
  uint64_t gen = 0;
  uint64_t arena_used = 0, static_bytes = 0;
  // --- traps (see "Traps and the watchdog")
  const uint32_t slot;
  pthread_t thread{};                          // the OS thread running the current dispatch
  std::atomic<Dispatch *> running{nullptr};    // the dispatch this worker is in, for the watchdog
  sigjmp_buf trap_jb;                          // in run_guarded, on the OS thread's stack
  volatile sig_atomic_t armed = 0;             // a handler may siglongjmp to trap_jb
  volatile sig_atomic_t in_kernel = 0;         // kernel code runs (not runtime code): interruptible
  // What the handler saw (plain memory: read after the siglongjmp).
  volatile sig_atomic_t trap_kind = kTrapNone;
  int trap_sig = 0;
  int trap_code = 0;
  uintptr_t trap_addr = 0;
  int trap_access = 0;  // 0 unknown, 1 read, 2 write
  bool trap_has_thread = false;
  MoeThreadCtx trap_t{};
  MoeU3 trap_tg{};
  void *altstack = nullptr;  // this worker's signal stack
  size_t altstack_size = 0;
  // plain loop: runs on stacks[0] as one more fiber
  bool in_plain = false;
  MoeThreadCtx plain_t{};
  FiberCtx plain_ctx;

  void free_stacks() {
    for (Stack &s : stacks) munmap(s.map, s.map_len);
    stacks.clear();
  }

  void ensure_stacks(uint32_t count, size_t size) {
    if (size != stacks_size) {
      free_stacks();
      stacks_size = size;
      stacks_dirty = false;
    }
    const size_t guard = stack_guard_size();
    while (stacks.size() < count) {
      Stack s;
      s.map_len = guard + size;
      int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
      flags |= MAP_NORESERVE;
#endif
      s.map = mmap(nullptr, s.map_len, PROT_READ | PROT_WRITE, flags, -1, 0);
      if (s.map == MAP_FAILED) {
        throw std::runtime_error(strprintf("cannot map a fiber stack of %zu bytes: %s", size, std::strerror(errno)));
      }
      if (mprotect(s.map, guard, PROT_NONE) != 0) {
        munmap(s.map, s.map_len);
        throw std::runtime_error(strprintf("cannot protect a fiber stack guard page: %s", std::strerror(errno)));
      }
      s.lo = static_cast<char *>(s.map) + guard;
      s.size = size;
      stacks.push_back(s);
    }
  }

  void prepare_dispatch(Dispatch &disp) {
    d = &disp;
    uint32_t nt = disp.n_tg_mem;
    if (tg_dyn_bufs.size() < nt) {
      tg_dyn_bufs.resize(nt, nullptr);
      tg_dyn_caps.resize(nt, 0);
    }
    tg_dyn_ptrs.assign(nt, nullptr);
    for (uint32_t i = 0; i < nt; ++i) {
      uint64_t want = disp.tg_mem[i];
      if (want == 0) continue;
      if (tg_dyn_caps[i] < want) {
        std::free(tg_dyn_bufs[i]);
        tg_dyn_bufs[i] = nullptr;
        tg_dyn_caps[i] = 0;
        void *p = nullptr;
        uint64_t alloc = round_up(want, 64);
        if (posix_memalign(&p, 64, size_t(alloc)) != 0) throw std::bad_alloc();
        tg_dyn_bufs[i] = p;
        tg_dyn_caps[i] = alloc;
      }
      tg_dyn_ptrs[i] = tg_dyn_bufs[i];
    }
    g.tg_dyn = tg_dyn_ptrs.data();
    g.tg_dyn_sizes = disp.tg_mem;
    g.n_tg_dyn = nt;
    // Fibers: one stack per thread of a group; the plain loop: one.
    uint32_t max_n = disp.fibers ? disp.tg[0] * disp.tg[1] * disp.tg[2] : 1;
    ensure_stacks(max_n, disp.opt->stack_size);
    if (stacks_dirty) {
      for (Stack &s : stacks) fiber_stack_reset(s.lo, s.size);
      stacks_dirty = false;
    }
  }

  // Threadgroup `lin` (x fastest): geometry, schedule, tg_static reset.
  void setup_group(uint64_t lin) {
    group_linear = lin;
    const Dispatch &D = *d;
    uint64_t gx = D.tgpg[0], gy = D.tgpg[1];
    g.tg_pos.x = uint32_t(lin % gx);
    g.tg_pos.y = uint32_t((lin / gx) % gy);
    g.tg_pos.z = uint32_t(lin / (gx * gy));
    uint32_t pos[3] = {g.tg_pos.x, g.tg_pos.y, g.tg_pos.z};
    uint32_t sz[3];
    for (int k = 0; k < 3; ++k) {
      sz[k] = D.tg[k];
      if (D.threads_mode) {
        uint64_t start = uint64_t(pos[k]) * D.tg[k];
        uint64_t left = D.grid_threads[k] - start;
        if (left < sz[k]) sz[k] = uint32_t(left);
      }
    }
    g.tg_size = MoeU3{sz[0], sz[1], sz[2]};
    g.n_threads = sz[0] * sz[1] * sz[2];
    n = g.n_threads;
    ++gen;
    arena_used = 0;
    static_bytes = 0;
    build_perm();
  }

  void build_perm() {
    switch (d->opt->schedule) {
      case Schedule::Forward:
        for (uint32_t i = 0; i < n; ++i) perm[i] = i;
        break;
      case Schedule::Reverse:
        for (uint32_t i = 0; i < n; ++i) perm[i] = n - 1 - i;
        break;
      case Schedule::Shuffle: {
        uint64_t st = d->opt->seed ^ (group_linear * 0xD1B54A32D192ED03ull);
        splitmix64(st);
        for (uint32_t i = 0; i < n; ++i) perm[i] = i;
        for (uint32_t i = n; i > 1; --i) {
          uint32_t j = uint32_t(splitmix64(st) % i);
          std::swap(perm[i - 1], perm[j]);
        }
        break;
      }
    }
  }

  void init_thread_ctx(MoeThreadCtx &t, uint32_t i) const {
    t.d = &d->dctx;
    t.g = &g;
    uint32_t sx = g.tg_size.x, sy = g.tg_size.y;
    t.tid.x = i % sx;
    t.tid.y = (i / sx) % sy;
    t.tid.z = i / (sx * sy);
    t.index = i;
  }

  // --- plain loop -----------------------------------------------------------
  // Runs as one fiber on stacks[0] (guarded like every fiber stack), so that
  // a kernel's stack overflow is caught here too. The whole loop counts as
  // kernel code for the watchdog: it takes no lock and allocates nothing
  // (the runtime API calls it makes clear in_kernel while they run).

  __attribute__((noinline)) void plain_groups() {
    Dispatch &D = *d;
    const MoeKernelEntry entry = D.kernel->entry;
    const bool forward = D.opt->schedule == Schedule::Forward;
    for (;;) {
      if (D.abort.load(std::memory_order_relaxed)) return;
      uint64_t lin = D.next_group.fetch_add(1, std::memory_order_relaxed);
      if (lin >= D.n_groups) return;
      setup_group(lin);
      plain_t.d = &D.dctx;
      plain_t.g = &g;
      const uint32_t sx = g.tg_size.x, sy = g.tg_size.y;
      if (forward) {
        uint32_t i = 0;
        for (uint32_t z = 0; z < g.tg_size.z; ++z)
          for (uint32_t y = 0; y < sy; ++y)
            for (uint32_t x = 0; x < sx; ++x) {
              if (D.abort.load(std::memory_order_relaxed)) return;
              plain_t.tid = MoeU3{x, y, z};
              plain_t.index = i++;
              entry(&plain_t);
            }
      } else {
        for (uint32_t k = 0; k < n; ++k) {
          if (D.abort.load(std::memory_order_relaxed)) return;
          init_thread_ctx(plain_t, perm[k]);
          entry(&plain_t);
        }
      }
    }
  }

  static void plain_main(void *arg);

  void run_plain() {
    in_plain = true;
    group_failed = false;
    fiber_init(&plain_ctx, stacks[0].lo, stacks[0].size, &Worker::plain_main, this);
    fiber_switch(&sched, &plain_ctx);
    if (group_failed) stacks_dirty = true;
    in_plain = false;
  }

  // --- fibers ---------------------------------------------------------------

  static void fiber_main(void *arg);
  [[noreturn]] void finish(Fiber *f);
  inline void *block(Fiber *f, uint8_t state, void *keep) __attribute__((always_inline));
  FiberCtx *pick_next();
  FiberCtx *release_phase();
  FiberCtx *fail_group(const std::string &msg);
  std::string describe_waits() const;

  void run_fibers() {
    Dispatch &D = *d;
    const size_t stagger_unit = 64;
    for (;;) {
      if (D.abort.load(std::memory_order_relaxed)) return;
      uint64_t lin = D.next_group.fetch_add(1, std::memory_order_relaxed);
      if (lin >= D.n_groups) return;
      setup_group(lin);
      for (uint32_t i = 0; i < n; ++i) {
        Fiber &f = fibers[i];
        init_thread_ctx(f.t, i);
        f.state = kReady;
        // Stagger the stack tops so that the hot top-of-stack lines of the
        // fibers do not all map to the same cache sets.
        size_t stagger = (i % 61) * stagger_unit;
        fiber_init(&f.ctx, stacks[i].lo, stacks[i].size - stagger, &Worker::fiber_main, &f);
      }
      n_live = n;
      n_done = 0;
      n_barrier = 0;
      if (simd_waiting != 0) {  // (left over by an abandoned group)
        std::memset(simd_exch, 0, sizeof simd_exch);
        std::memset(simd_bar, 0, sizeof simd_bar);
        simd_waiting = 0;
      }
      group_failed = false;
      rq = perm.data();
      rq_len = n;
      rq_pos = 1;
      cur = &fibers[rq[0]];
      fiber_switch(&sched, &cur->ctx);
      cur = nullptr;
      if (group_failed) {
        stacks_dirty = true;
        return;
      }
    }
  }

  void run(Dispatch &disp);
  std::string describe_fault(const Dispatch &D, const std::string &where) const;
  void report_trap(Dispatch &D);
};

thread_local Worker *t_worker = nullptr;

// in_kernel changes: compiler barriers keep the stores where they are with
// respect to the code they bracket (the handlers read them on this thread).
inline void enter_kernel(Worker *w) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  w->in_kernel = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}
inline void leave_kernel(Worker *w) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  w->in_kernel = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

void Worker::fiber_main(void *arg) {
  fiber_started();
  Fiber *f = static_cast<Fiber *>(arg);
  Worker *w = f->w;
  enter_kernel(w);
  w->d->kernel->entry(&f->t);
  leave_kernel(w);
  w->finish(f);
}

void Worker::plain_main(void *arg) {
  fiber_started();
  Worker *w = static_cast<Worker *>(arg);
  enter_kernel(w);
  w->plain_groups();
  leave_kernel(w);
  fiber_exit(&w->plain_ctx, &w->sched);
}

void Worker::finish(Fiber *f) {
  f->state = kDone;
  --n_live;
  ++n_done;
  FiberCtx *next = pick_next();
#if !defined(MOE_FIBER_ASAN)
  if (next != &sched) enter_kernel(this);  // (a resumed fiber returns into the kernel)
#endif
  fiber_exit(&f->ctx, next);
}

// The calling fiber waits (state says where) and returns `keep` once
// released. Fibers released by a phase keep their old state until they run
// and block again: states are only read when no fiber is runnable. Callers
// end with `return block(...)`, so that the switch is a tail call.
//
// The switch itself counts as kernel code for the watchdog (in_kernel): it
// takes no lock and allocates nothing, and the fiber it resumes returns
// straight into the kernel.
inline void *Worker::block(Fiber *f, uint8_t state, void *keep) {
  f->state = state;
  FiberCtx *next;
  if (rq_pos < rq_len) {
    cur = &fibers[rq[rq_pos++]];
    next = &cur->ctx;
  } else {
    next = release_phase();
    if (next == &sched) fiber_exit(&f->ctx, next);  // the group was abandoned
    if (next == &f->ctx) {
      enter_kernel(this);
      return keep;
    }
  }
#if defined(MOE_FIBER_ASAN)
  // (Under AddressSanitizer a switch is announced to ASan in two calls that
  // a siglongjmp must not separate: kernel code again once it is over.)
  void *r = fiber_switch(&f->ctx, next, keep);
  enter_kernel(this);
  return r;
#else
  enter_kernel(this);
  return fiber_switch(&f->ctx, next, keep);
#endif
}

inline FiberCtx *Worker::pick_next() {
  if (rq_pos < rq_len) {
    cur = &fibers[rq[rq_pos++]];
    return &cur->ctx;
  }
  return release_phase();
}

FiberCtx *Worker::fail_group(const std::string &msg) {
  d->set_error(msg);
  group_failed = true;
  cur = nullptr;
  return &sched;
}

std::string Worker::describe_waits() const {
  uint32_t counts[kDone + 1] = {};
  for (uint32_t i = 0; i < n; ++i) counts[fibers[i].state]++;
  std::string s;
  for (uint8_t st = 0; st <= kDone; ++st) {
    if (counts[st] == 0) continue;
    if (!s.empty()) s += ", ";
    s += strprintf("%u at %s", counts[st], state_name(st));
  }
  return s;
}

// Called when no fiber of the group is runnable: every live thread is blocked.
FiberCtx *Worker::release_phase() {
  if (d->abort.load(std::memory_order_relaxed)) {
    // Another worker failed the dispatch: abandon this group.
    group_failed = true;
    cur = nullptr;
    return &sched;
  }
  if (n_live == 0) {
    cur = nullptr;
    return &sched;
  }
  if (simd_waiting != 0) {
    // Every SIMD-group with a lane at a SIMD operation is complete: all its
    // live lanes are blocked. Release its SIMD waiters, in schedule order.
    const uint32_t waiting = simd_waiting;
    simd_waiting = 0;
    const Schedule sched_kind = d->opt->schedule;
    uint32_t k = 0;
    for (uint32_t bits = waiting; bits != 0; bits &= bits - 1) {
      const uint32_t sg = uint32_t(__builtin_ctz(bits));
      SimdGroup &sgs = simd[sg];
      const uint32_t exch = simd_exch[sg];
      sgs.parity ^= 1u;
      for (uint32_t b = exch; b != 0; b &= b - 1) {
        Fiber &lf = fibers[sg * MOE_SIMD_WIDTH + uint32_t(__builtin_ctz(b))];
        if (lf.mask_out != nullptr) *lf.mask_out = exch;
      }
      const uint32_t lanes = simd_exch[sg] | simd_bar[sg];
      simd_exch[sg] = 0;
      simd_bar[sg] = 0;
      if (sched_kind == Schedule::Forward) {
        for (uint32_t b = lanes; b != 0; b &= b - 1) scratch[k++] = sg * MOE_SIMD_WIDTH + uint32_t(__builtin_ctz(b));
      } else {
        // (For Reverse the SIMD-groups are visited in order; the list is
        // reversed below. Shuffle goes through the permutation.)
        released[sg / 2] |= uint64_t(lanes) << (32 * (sg % 2));
        k += uint32_t(__builtin_popcount(lanes));
      }
    }
    if (sched_kind == Schedule::Reverse) {
      uint32_t j = 0;
      for (int32_t w = int32_t((n + 63) / 64) - 1; w >= 0; --w) {
        uint64_t b = released[w];
        released[w] = 0;
        while (b != 0) {
          uint32_t hi = 63u - uint32_t(__builtin_clzll(b));
          scratch[j++] = uint32_t(w) * 64 + hi;
          b &= ~(uint64_t(1) << hi);
        }
      }
    } else if (sched_kind == Schedule::Shuffle) {
      uint32_t j = 0;
      for (uint32_t i = 0; i < n && j < k; ++i) {
        uint32_t t = perm[i];
        uint64_t bit = uint64_t(1) << (t % 64);
        if (released[t / 64] & bit) {
          released[t / 64] &= ~bit;
          scratch[j++] = t;
        }
      }
    }
    if (k == 0) return fail_group("deadlock: internal error releasing SIMD-groups (" + describe_waits() + ")");
    rq = scratch.data();
    rq_len = k;
  } else {
    // Every live thread must be at the threadgroup barrier.
    if (n_barrier != n_live) {
      return fail_group(strprintf("deadlock in threadgroup (%u,%u,%u): %s", g.tg_pos.x, g.tg_pos.y, g.tg_pos.z,
                                  describe_waits().c_str()));
    }
    if (n_done > 0) {
      return fail_group(strprintf(
          "divergent threadgroup_barrier in threadgroup (%u,%u,%u): %u of %u threads returned before reaching it",
          g.tg_pos.x, g.tg_pos.y, g.tg_pos.z, n_done, n));
    }
    n_barrier = 0;
    rq = perm.data();
    rq_len = n;
  }
  rq_pos = 1;
  cur = &fibers[rq[0]];
  return &cur->ctx;
}

// ---------------------------------------------------------------------------
// Traps and the watchdog
//
// Kernel code can fault (an out-of-bounds access: into the guard of a buffer
// or of a stack, or anywhere else), trap (SIGFPE: integer division by zero on
// x86-64; SIGILL or SIGTRAP: __builtin_trap) or never return. None of it may take the process
// down, and the process goes on running dispatches afterwards:
//
// * One handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGTRAP runs on an alternate
//   signal stack per worker thread (the fiber's own may be exhausted). When
//   the signal was raised by the CPU on the thread of a worker that is inside
//   a dispatch (`armed`), the handler records what it saw (address, read or
//   write, the thread position) and siglongjmps to run_guarded, on the
//   worker's OS thread stack: the fibers of the group (or the plain loop,
//   itself a fiber) are abandoned, and Worker::report_trap builds the message
//   from the record (which buffer or stack the address belongs to, at which
//   offset). Every other signal goes on to the handler installed before ours
//   (V8 uses SIGSEGV for WebAssembly bounds checks; sanitizers report their
//   own).
// * A watchdog thread (one per process) sleeps until the deadline of the
//   dispatch in flight (RunOptions::timeout_ms). Past it, it marks the
//   dispatch timed out and aborted. The workers check the abort flag before
//   every group, every thread of the plain loop and in every runtime call
//   (barriers, SIMD-group operations, threadgroup variables), which ends
//   kernels that keep synchronising. A kernel in a loop that never calls the
//   runtime (`while (true) {}`) is interrupted: the watchdog sends a signal
//   (SIGRTMIN+4; SIGUSR2 where there are no real-time signals) to every
//   worker thread still in the dispatch, every 10 ms until all have left.
//   Its handler siglongjmps out like a fault, but only while the worker runs
//   kernel code (`in_kernel`): runtime code may hold a lock or be inside
//   malloc, so there the handler just returns and the worker leaves at its
//   next abort check, a few instructions later. When one worker fails the
//   dispatch (any error), the same interruption ends the others at once.
// ---------------------------------------------------------------------------

struct sigaction g_prev_segv, g_prev_bus, g_prev_fpe, g_prev_ill, g_prev_trap;
std::once_flag g_handlers_once;

struct sigaction *prev_action(int sig) {
  switch (sig) {
    case SIGBUS: return &g_prev_bus;
    case SIGFPE: return &g_prev_fpe;
    case SIGILL: return &g_prev_ill;
    case SIGTRAP: return &g_prev_trap;
    default: return &g_prev_segv;
  }
}

void chain_signal(int sig, siginfo_t *si, void *uc) {
  struct sigaction *p = prev_action(sig);
  if (p->sa_flags & SA_SIGINFO) {
    if (p->sa_sigaction != nullptr) {
      p->sa_sigaction(sig, si, uc);
      return;
    }
  } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN && p->sa_handler != nullptr) {
    p->sa_handler(sig);
    return;
  }
  // Default action: uninstall; a fault raised by the CPU happens again when
  // the instruction is retried, one sent with kill() is raised again.
  signal(sig, SIG_DFL);
  if (si == nullptr || si->si_code <= 0) raise(sig);
}

int watchdog_signal() {
#if defined(SIGRTMIN)
  return SIGRTMIN + 4;
#else
  return SIGUSR2;
#endif
}

// The worker whose dispatch runs on this thread, or nullptr. Async-signal-safe.
Worker *armed_worker_of_this_thread() {
  const pthread_t self = pthread_self();
  const uint32_t n = g_n_workers.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n && i < kMaxWorkers; ++i) {
    Worker *w = g_workers[i].load(std::memory_order_acquire);
    if (w != nullptr && w->armed && pthread_equal(w->thread, self)) return w;
  }
  return nullptr;
}

// 2 for a write, 1 for a read, 0 when the CPU does not say.
int access_kind(int sig, void *ucv) {
  if (sig != SIGSEGV || ucv == nullptr) return 0;
#if defined(__linux__) && defined(__x86_64__) && defined(REG_ERR)
  const ucontext_t *uc = static_cast<const ucontext_t *>(ucv);
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) ? 2 : 1;  // page-fault error code: bit 1 = write
#elif defined(__linux__) && defined(__aarch64__)
  // The ESR record among the context records of __reserved (ESR_MAGIC);
  // for a data abort (EC 0x24/0x25), ISS bit 6 (WnR) = write.
  const ucontext_t *uc = static_cast<const ucontext_t *>(ucv);
  const uint8_t *p = reinterpret_cast<const uint8_t *>(uc->uc_mcontext.__reserved);
  const size_t cap = sizeof uc->uc_mcontext.__reserved;
  for (size_t off = 0; off + 8 <= cap;) {
    uint32_t magic, size;
    std::memcpy(&magic, p + off, 4);
    std::memcpy(&size, p + off + 4, 4);
    if (magic == 0 || size < 8 || off + size > cap) break;
    if (magic == 0x45535201u && size >= 16) {
      uint64_t esr;
      std::memcpy(&esr, p + off + 8, 8);
      const uint32_t ec = uint32_t(esr >> 26) & 0x3F;
      if (ec == 0x24 || ec == 0x25) return (esr & (1u << 6)) ? 2 : 1;
      return 0;
    }
    off += size;
  }
  return 0;
#else
  return 0;
#endif
}

// Async-signal-safe: plain stores into the worker.
void capture_trap(Worker *w, int kind, int sig, const siginfo_t *si, void *uc) {
  w->in_kernel = 0;
  w->trap_sig = sig;
  w->trap_code = si != nullptr ? si->si_code : 0;
  w->trap_addr = si != nullptr ? reinterpret_cast<uintptr_t>(si->si_addr) : 0;
  w->trap_access = access_kind(sig, uc);
  const MoeThreadCtx *t = w->in_plain ? &w->plain_t : (w->cur != nullptr ? &w->cur->t : nullptr);
  w->trap_has_thread = t != nullptr;
  if (t != nullptr) w->trap_t = *t;
  w->trap_tg = w->g.tg_pos;
  w->trap_kind = kind;
  w->armed = 0;
}

void trap_handler(int sig, siginfo_t *si, void *uc) {
  const int saved_errno = errno;
  // si_code > 0: raised by the CPU (not sent with kill/raise).
  Worker *w = (si != nullptr && si->si_code > 0) ? armed_worker_of_this_thread() : nullptr;
  if (w == nullptr) {
    errno = saved_errno;
    chain_signal(sig, si, uc);
    return;
  }
  capture_trap(w, sig == SIGFPE ? kTrapArith : (sig == SIGILL || sig == SIGTRAP) ? kTrapIllegal : kTrapFault, sig, si,
               uc);
  siglongjmp(w->trap_jb, 1);
}

void watchdog_handler(int, siginfo_t *, void *) {
  const int saved_errno = errno;
  Worker *w = armed_worker_of_this_thread();
  if (w != nullptr && w->in_kernel && w->d != nullptr && w->d->abort.load(std::memory_order_relaxed)) {
    const int kind = w->d->timed_out.load(std::memory_order_relaxed) ? kTrapTimeout : kTrapCancel;
    capture_trap(w, kind, 0, nullptr, nullptr);
    siglongjmp(w->trap_jb, 1);
  }
  errno = saved_errno;
}

void install_handlers() {
  std::call_once(g_handlers_once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = trap_handler;
    // SA_NODEFER with an empty mask: the handler changes no signal mask, so
    // the siglongjmp out of it needs none restored (sigsetjmp(.., 0)).
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
    sigaction(SIGBUS, &sa, &g_prev_bus);
    sigaction(SIGFPE, &sa, &g_prev_fpe);
    sigaction(SIGILL, &sa, &g_prev_ill);
    sigaction(SIGTRAP, &sa, &g_prev_trap);
    struct sigaction wd;
    std::memset(&wd, 0, sizeof wd);
    wd.sa_sigaction = watchdog_handler;
    wd.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&wd.sa_mask);
    sigaction(watchdog_signal(), &wd, nullptr);
  });
}

bool in_guard(const Stack &s, uintptr_t a) {
  return a >= reinterpret_cast<uintptr_t>(s.map) && a < reinterpret_cast<uintptr_t>(s.lo);
}

// Makes sure the calling thread has an alternate signal stack while it runs
// the dispatch. The pool's own threads keep it; the dispatching thread (not
// ours) gets its previous state back.
class AltStackScope {
 public:
  AltStackScope(Worker &w, bool keep) {
    stack_t cur;
    if (sigaltstack(nullptr, &cur) != 0) return;
    if (!(cur.ss_flags & SS_DISABLE) && cur.ss_size >= 16384) return;  // the thread has one
    if (w.altstack == nullptr) {
      size_t sz = 64 * 1024;
      void *p = mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return;
      w.altstack = p;
      w.altstack_size = sz;
    }
    stack_t ns;
    std::memset(&ns, 0, sizeof ns);
    ns.ss_sp = w.altstack;
    ns.ss_size = w.altstack_size;
    if (sigaltstack(&ns, &old_) == 0) installed_ = !keep;
  }
  ~AltStackScope() {
    if (installed_) {
      stack_t off;
      std::memset(&off, 0, sizeof off);
      off.ss_flags = SS_DISABLE;
      sigaltstack(old_.ss_flags & SS_DISABLE ? &off : &old_, nullptr);
    }
  }
  AltStackScope(const AltStackScope &) = delete;
  AltStackScope &operator=(const AltStackScope &) = delete;

 private:
  stack_t old_{};
  bool installed_ = false;
};

// Runs the worker's share of the dispatch; returns normally, or after a
// handler's siglongjmp with trap_kind set.
__attribute__((noinline)) void run_guarded(Worker *w, bool fibers) {
  w->trap_kind = kTrapNone;
  if (sigsetjmp(w->trap_jb, 0) == 0) {
    w->armed = 1;
    if (fibers) {
      w->run_fibers();
    } else {
      w->run_plain();
    }
    w->armed = 0;
  } else {
    w->armed = 0;
    w->in_kernel = 0;
    fiber_landed(&w->sched);  // (AddressSanitizer: back on the OS thread's stack)
  }
}

// The watchdog (see above). One per process, never destroyed.
class Watchdog {
 public:
  void begin(Dispatch *d) {
    std::lock_guard<std::mutex> lk(m_);
    if (!started_) {
      std::thread t([this] { loop(); });
      t.detach();
      started_ = true;
    }
    cur_ = d;
    if (d->has_deadline && d->deadline < wake_) cv_.notify_one();
  }
  void end(Dispatch *d) {
    std::lock_guard<std::mutex> lk(m_);
    if (cur_ == d) cur_ = nullptr;
  }
  void poke() {
    std::lock_guard<std::mutex> lk(m_);
    cv_.notify_one();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void loop() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      Dispatch *d = cur_;
      if (d == nullptr) {
        wake_ = Clock::time_point::max();
        cv_.wait(lk);
        continue;
      }
      const Clock::time_point now = Clock::now();
      if (!d->abort.load() && d->has_deadline && now >= d->deadline) {
        d->timed_out.store(true);
        d->abort.store(true);
      }
      if (d->abort.load()) {
        interrupt(d);
        wake_ = now + std::chrono::milliseconds(10);
        cv_.wait_until(lk, wake_);
        continue;
      }
      if (d->has_deadline) {
        wake_ = d->deadline;
        cv_.wait_until(lk, wake_);
      } else {
        wake_ = Clock::time_point::max();
        cv_.wait(lk);
      }
    }
  }

  // Signals every worker thread still inside `d`. A worker's thread stays
  // alive while it is (the pool's threads never exit during a dispatch, the
  // dispatching thread waits for the pool), and end(d) cannot complete while
  // this runs under m_.
  static void interrupt(Dispatch *d) {
    const int sig = watchdog_signal();
    const uint32_t n = g_n_workers.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < n && i < kMaxWorkers; ++i) {
      Worker *w = g_workers[i].load(std::memory_order_acquire);
      if (w != nullptr && w->running.load(std::memory_order_acquire) == d) pthread_kill(w->thread, sig);
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  Dispatch *cur_ = nullptr;
  bool started_ = false;
  Clock::time_point wake_ = Clock::time_point::max();
};

Watchdog *g_watchdog = nullptr;  // created by the first dispatch (under g_dispatch_mutex)

void watchdog_poke() {
  if (g_watchdog != nullptr) g_watchdog->poke();
}

std::string buffer_label(const Dispatch &D, size_t i) {
  const std::vector<std::string> &names = D.opt->buffer_names;
  if (i < names.size() && !names[i].empty()) return strprintf("buffer(%zu) '%s'", i, names[i].c_str());
  return strprintf("buffer(%zu)", i);
}

std::string Worker::describe_fault(const Dispatch &D, const std::string &where) const {
  const uintptr_t a = trap_addr;
  const char *acc = trap_access == 2 ? "write" : trap_access == 1 ? "read" : "access";
  const char *sig = trap_sig == SIGBUS ? "SIGBUS" : "SIGSEGV";
  for (const Stack &s : stacks) {
    if (in_guard(s, a)) {
      return strprintf("stack overflow%s: the stack of %zu bytes per thread is too small (raise it: --stack-size, "
                       "the stackSize run option)",
                       where.c_str(), D.opt->stack_size);
    }
  }
  const std::vector<Binding> &bs = *D.bindings;
  for (size_t i = 0; i < bs.size(); ++i) {
    const Binding &b = bs[i];
    if (b.ptr == nullptr || b.guard == nullptr || a < b.guard->map_lo() || a >= b.guard->map_hi()) continue;
    const int64_t off = int64_t(a - reinterpret_cast<uintptr_t>(b.ptr));
    std::string rel;
    if (off < 0) {
      rel = strprintf("%lld bytes before its start", (long long)-off);
    } else if (uint64_t(off) >= b.size) {
      rel = strprintf("%llu bytes past its end", (unsigned long long)(uint64_t(off) - b.size));
    } else {
      rel = "inside it";
    }
    return strprintf("out-of-bounds %s %s %s at byte offset %lld (%s; the buffer has %llu bytes)%s", acc,
                     trap_access == 2 ? "to" : "of", buffer_label(D, i).c_str(), (long long)off, rel.c_str(),
                     (unsigned long long)b.size, where.c_str());
  }
  if (a < 65536) {
    return strprintf("invalid memory %s at address 0x%llx (%s: a null pointer, e.g. an unbound [[buffer(n)]])%s", acc,
                     (unsigned long long)a, sig, where.c_str());
  }
  // Outside every guard: name the nearest buffer, for the offset.
  size_t best = SIZE_MAX;
  uint64_t best_dist = UINT64_MAX;
  for (size_t i = 0; i < bs.size(); ++i) {
    if (bs[i].ptr == nullptr) continue;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(bs[i].ptr), hi = lo + bs[i].size;
    const uint64_t dist = a < lo ? lo - a : a >= hi ? a - hi : 0;
    if (dist < best_dist) {
      best_dist = dist;
      best = i;
    }
  }
  std::string near;
  if (best != SIZE_MAX) {
    const long long off = (long long)(int64_t(a - reinterpret_cast<uintptr_t>(bs[best].ptr)));
    near = strprintf("; the nearest buffer is %s, at byte offset %lld of its %llu bytes", buffer_label(D, best).c_str(),
                     off, (unsigned long long)bs[best].size);
  }
  return strprintf("invalid memory %s at address 0x%llx (%s, outside every buffer%s)%s", acc, (unsigned long long)a, sig,
                   near.c_str(), where.c_str());
}

void Worker::report_trap(Dispatch &D) {
  std::string where;
  if (trap_has_thread) {
    where = strprintf(" in threadgroup (%u,%u,%u), thread (%u,%u,%u)", trap_tg.x, trap_tg.y, trap_tg.z, trap_t.tid.x,
                      trap_t.tid.y, trap_t.tid.z);
  } else {
    where = strprintf(" in threadgroup (%u,%u,%u)", trap_tg.x, trap_tg.y, trap_tg.z);
  }
  switch (int(trap_kind)) {
    case kTrapCancel:
      return;  // another worker's error stands
    case kTrapTimeout:
      D.set_error(strprintf("timed out: still running after %llu ms%s, abandoned by the watchdog (an endless loop? if "
                            "the kernel is only slow, raise the timeout: --timeout)",
                            (unsigned long long)D.opt->timeout_ms, where.c_str()));
      return;
    case kTrapArith:
      D.set_error(strprintf("arithmetic trap (SIGFPE: %s)%s; a GPU does not trap on it, the CPU does",
                            trap_code == FPE_INTDIV || trap_code == FPE_INTOVF ? "integer division by zero or overflow"
                                                                                 : "floating-point exception",
                            where.c_str()));
      return;
    case kTrapIllegal:
      D.set_error(strprintf("%s%s: the kernel reached a trap (__builtin_trap, or code the compiler proved "
                            "unreachable, such as the end of a non-void function without return)",
                            trap_sig == SIGTRAP ? "trap instruction (SIGTRAP)" : "illegal instruction (SIGILL)",
                            where.c_str()));
      return;
    default:
      D.set_error(describe_fault(D, where));
      return;
  }
}

void Worker::run(Dispatch &disp) {
  t_worker = this;
  thread = pthread_self();
  try {
    prepare_dispatch(disp);
    install_handlers();
    AltStackScope alt(*this, /*keep=*/slot != 0);
    running.store(&disp, std::memory_order_release);
    run_guarded(this, disp.fibers);
    running.store(nullptr, std::memory_order_release);
    if (trap_kind != kTrapNone) {
      stacks_dirty = true;
      cur = nullptr;
      in_plain = false;
      report_trap(disp);
    }
  } catch (const std::exception &e) {
    running.store(nullptr, std::memory_order_release);
    disp.set_error(e.what());
  }
  t_worker = nullptr;
  d = nullptr;
}

// ---------------------------------------------------------------------------
// The runtime API called by kernels
// ---------------------------------------------------------------------------

// Abort the dispatch from kernel code. Nothing with a destructor may be live
// on the caller's stack: the calling fiber (or the plain loop's) is abandoned.
[[noreturn]] void fail_current(const char *msg) {
  Worker *w = t_worker;
  if (w == nullptr || w->d == nullptr) {
    std::fprintf(stderr, "moe runtime: kernel failure outside a dispatch: %s\n", msg);
    std::abort();
  }
  if (w->in_plain) {
    w->d->set_error(msg);
    w->group_failed = true;
    fiber_exit(&w->plain_ctx, &w->sched);
  }
  Fiber *f = w->cur;
  FiberCtx *to = w->fail_group(msg);
  fiber_exit(&f->ctx, to);
}

// Leave the dispatch without an error of our own (it was aborted).
[[noreturn]] void abandon_current(Worker *w) {
  w->group_failed = true;
  if (w->in_plain) fiber_exit(&w->plain_ctx, &w->sched);
  Fiber *f = w->cur;
  w->cur = nullptr;
  fiber_exit(&f->ctx, &w->sched);
}

[[noreturn]] void fail_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void fail_fmt(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fail_current(buf);
}

[[noreturn]] void fail_sync_in_plain(Worker *w, const char *what) {
  fail_fmt("%s called by kernel '%s', which its module marks as not using synchronisation (uses_sync = 0)", what,
           w->d->kernel->name.c_str());
}

// Every runtime call that may block, allocate or fail starts here: the worker
// leaves kernel code (the watchdog's signal must not unwind the runtime) and
// leaves the dispatch at once when it was aborted (timeout, another worker's
// error). The call marks kernel code again before it returns to the kernel
// (blocking calls: in block(), right before the switch).
inline __attribute__((always_inline)) Worker *api_enter(const char *what) {
  Worker *w = t_worker;
  if (w == nullptr || w->d == nullptr) {
    std::fprintf(stderr, "moe runtime: %s called outside a kernel dispatch\n", what);
    std::abort();
  }
  leave_kernel(w);
  if (w->d->abort.load(std::memory_order_relaxed)) abandon_current(w);
  return w;
}

void api_tg_barrier() {
  Worker *w = api_enter("threadgroup_barrier");
  if (w->in_plain) fail_sync_in_plain(w, "threadgroup_barrier");
  ++w->n_barrier;
  w->block(w->cur, kAtBarrier, nullptr);
}

void api_simd_barrier() {
  Worker *w = api_enter("simdgroup_barrier");
  if (w->in_plain) fail_sync_in_plain(w, "simdgroup_barrier");
  const uint32_t idx = w->cur->t.index;
  w->simd_bar[idx / MOE_SIMD_WIDTH] |= 1u << (idx % MOE_SIMD_WIDTH);
  w->simd_waiting |= 1u << (idx / MOE_SIMD_WIDTH);
  w->block(w->cur, kAtSimdBarrier, nullptr);
}

const void *api_simd_exchange(const void *value, uint32_t size, uint64_t *active_mask) {
  Worker *w = api_enter("simd_exchange");
  if (w->in_plain) fail_sync_in_plain(w, "a SIMD-group collective");
  if (size > MOE_SIMD_SLOT_BYTES) {
    fail_fmt("SIMD-group exchange of %u bytes exceeds the maximum of %u", size, MOE_SIMD_SLOT_BYTES);
  }
  Fiber *f = w->cur;
  const uint32_t idx = f->t.index;
  const uint32_t sgi = idx / MOE_SIMD_WIDTH, lane = idx % MOE_SIMD_WIDTH;
  SimdGroup &sg = w->simd[sgi];
  const uint32_t p = sg.parity;
  if (size > 0) std::memcpy(sg.slots[p][lane], value, size);
  w->simd_exch[sgi] |= 1u << lane;
  w->simd_waiting |= 1u << sgi;
  f->mask_out = active_mask;  // written by the release (no code runs here after the switch)
  return w->block(f, kAtSimdExchange, sg.slots[p]);
}

void *tg_static_impl(Worker *w, uint32_t slot, uint64_t size, uint64_t align) {
  if (slot < w->static_slots.size()) {
    StaticSlot &s = w->static_slots[slot];
    if (s.gen == w->gen) {
      if (size > s.size) {
        fail_fmt("threadgroup variable slot %u requested with %llu bytes after %llu", slot, (unsigned long long)size,
                 (unsigned long long)s.size);
      }
      return s.ptr;
    }
  }
  if (slot >= kMaxStaticSlot) fail_fmt("threadgroup variable slot %u out of range", slot);
  if (align == 0) align = 1;
  if ((align & (align - 1)) != 0 || align > 4096) {
    fail_fmt("threadgroup variable alignment %llu is not a power of two up to 4096", (unsigned long long)align);
  }
  const uint64_t dyn = w->d->tg_dyn_total;
  const uint64_t rounded = round_up(std::min<uint64_t>(size, uint64_t(1) << 40), 16);
  if (dyn + w->static_bytes + rounded > kMaxThreadgroupMemory) {
    fail_fmt("threadgroup memory of %llu bytes exceeds the maximum of %llu (%llu dynamic + %llu in threadgroup "
             "variables)",
             (unsigned long long)(dyn + w->static_bytes + rounded), (unsigned long long)kMaxThreadgroupMemory,
             (unsigned long long)dyn, (unsigned long long)(w->static_bytes + rounded));
  }
  uint64_t off = round_up(w->arena_used, align);
  if (off + size > kArenaCapacity) {
    fail_current("threadgroup variables do not fit the threadgroup memory arena (alignment padding)");
  }
  w->arena_used = off + size;
  w->static_bytes += rounded;
  if (slot >= w->static_slots.size()) w->static_slots.resize(size_t(slot) + 1);
  StaticSlot &s = w->static_slots[slot];
  s.gen = w->gen;
  s.ptr = w->arena + off;
  s.size = size;
  return s.ptr;
}

void *api_tg_static(uint32_t slot, uint64_t size, uint64_t align) {
  Worker *w = api_enter("tg_static");
  void *p = tg_static_impl(w, slot, size, align);
  enter_kernel(w);
  return p;
}

void api_fail(const char *message) {
  Worker *w = api_enter("fail");
  const MoeThreadCtx *t = w->in_plain ? &w->plain_t : (w->cur ? &w->cur->t : nullptr);
  const char *m = message != nullptr ? message : "kernel failed";
  if (t == nullptr) fail_current(m);
  fail_fmt("%s (threadgroup (%u,%u,%u), thread (%u,%u,%u))", m, w->g.tg_pos.x, w->g.tg_pos.y, w->g.tg_pos.z, t->tid.x,
           t->tid.y, t->tid.z);
}

const MoeThreadCtx *api_current_thread() {
  Worker *w = t_worker;
  if (w == nullptr || w->d == nullptr) return nullptr;
  if (w->in_plain) return &w->plain_t;
  return w->cur != nullptr ? &w->cur->t : nullptr;
}

const MoeRuntimeApi g_api = {
    MOE_ABI_VERSION, api_tg_barrier, api_simd_barrier, api_simd_exchange, api_tg_static, api_fail, api_current_thread,
};

// ---------------------------------------------------------------------------
// Worker pool
// ---------------------------------------------------------------------------

class Pool {
 public:
  void run(Dispatch &disp, unsigned n_workers) {
    ensure(n_workers);
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &disp;
      job_n_ = n_workers;
      pending_ = n_workers - 1;
      ++gen_;
    }
    if (n_workers > 1) cv_work_.notify_all();
    workers_[0]->run(disp);
    std::unique_lock<std::mutex> lk(m_);
    cv_done_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (std::thread &t : threads_) t.join();
    threads_.clear();
    workers_.clear();
    stop_ = false;
  }

 private:
  void ensure(unsigned n) {
    while (workers_.size() < n) {
      workers_.emplace_back(new Worker(uint32_t(workers_.size())));
      size_t idx = workers_.size() - 1;
      if (idx == 0) continue;
      uint64_t seen;
      {
        std::lock_guard<std::mutex> lk(m_);
        seen = gen_;
      }
      try {
        threads_.emplace_back([this, idx, seen] { thread_main(unsigned(idx), seen); });
      } catch (...) {
        workers_.pop_back();
        throw;
      }
    }
  }

  void thread_main(unsigned idx, uint64_t seen) {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_work_.wait(lk, [&] { return stop_ || gen_ != seen; });
      if (stop_) return;
      seen = gen_;
      if (idx >= job_n_) continue;
      Dispatch *disp = job_;
      lk.unlock();
      workers_[idx]->run(*disp);
      lk.lock();
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }

  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  Dispatch *job_ = nullptr;
  unsigned job_n_ = 0;
  unsigned pending_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
};

// One dispatch at a time per process. The pool is never destroyed (worker
// threads may still be parked when the process exits).
std::mutex g_dispatch_mutex;
Pool *g_pool = nullptr;

}  // namespace

const MoeRuntimeApi *runtime_api() { return &g_api; }

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

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

static uint64_t tg_memory_total(const Launch &launch) {
  uint64_t total = 0;
  for (uint64_t b : launch.tg_memory) total += round_up(std::min<uint64_t>(b, uint64_t(1) << 40), 16);
  return total;
}

void validate_launch(const Launch &launch) {
  const uint32_t *gr = launch.grid, *tg = launch.threadgroup;
  if (gr[0] == 0 || gr[1] == 0 || gr[2] == 0) {
    throw std::invalid_argument(strprintf("grid (%u,%u,%u) has a zero dimension", gr[0], gr[1], gr[2]));
  }
  if (tg[0] == 0 || tg[1] == 0 || tg[2] == 0) {
    throw std::invalid_argument(strprintf("threadgroup (%u,%u,%u) has a zero dimension", tg[0], tg[1], tg[2]));
  }
  uint64_t threads = uint64_t(tg[0]) * tg[1] * tg[2];
  if (threads > kMaxThreadsPerThreadgroup) {
    throw std::invalid_argument(strprintf("threadgroup of %llu threads exceeds the maximum of %u",
                                          (unsigned long long)threads, kMaxThreadsPerThreadgroup));
  }
  if (launch.mode == LaunchMode::Threadgroups) {
    for (int k = 0; k < 3; ++k) {
      if (uint64_t(gr[k]) * tg[k] > 0xFFFFFFFFull) {
        throw std::invalid_argument(strprintf("grid of %u threadgroups of %u threads in dimension %c exceeds 2^32-1 "
                                              "threads",
                                              gr[k], tg[k], "xyz"[k]));
      }
    }
  }
  if (launch.tg_memory.size() > MOE_MAX_TG_BUFFERS) {
    throw std::invalid_argument(strprintf("%zu threadgroup memory arguments exceed the maximum of %u",
                                          launch.tg_memory.size(), MOE_MAX_TG_BUFFERS));
  }
  uint64_t tgm = tg_memory_total(launch);
  if (tgm > kMaxThreadgroupMemory) {
    throw std::invalid_argument(strprintf("threadgroup memory of %llu bytes exceeds the maximum of %llu",
                                          (unsigned long long)tgm, (unsigned long long)kMaxThreadgroupMemory));
  }
}

void dispatch(const KernelDesc &kernel, const std::vector<Binding> &buffers, const Launch &launch,
              const RunOptions &options) {
  validate_launch(launch);
  if (buffers.size() > MOE_MAX_BUFFERS) {
    throw std::invalid_argument(
        strprintf("%zu buffers exceed the maximum of %u", buffers.size(), MOE_MAX_BUFFERS));
  }
  RunOptions opt = options;
  if (opt.stack_size < kMinStackSize) opt.stack_size = kMinStackSize;
  if (opt.stack_size > kMaxStackSize) opt.stack_size = kMaxStackSize;
  opt.stack_size = size_t(round_up(opt.stack_size, page_size()));

  std::vector<void *> ptrs(buffers.size());
  std::vector<uint64_t> sizes(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    ptrs[i] = buffers[i].ptr;
    sizes[i] = buffers[i].ptr != nullptr ? buffers[i].size : 0;
  }

  Dispatch D;
  D.kernel = &kernel;
  D.opt = &opt;
  D.bindings = &buffers;
  D.fibers = kernel.uses_sync || opt.force_fibers;
  D.threads_mode = launch.mode == LaunchMode::Threads;
  for (int k = 0; k < 3; ++k) {
    D.tg[k] = launch.threadgroup[k];
    if (D.threads_mode) {
      D.grid_threads[k] = launch.grid[k];
      D.tgpg[k] = uint32_t((uint64_t(launch.grid[k]) + launch.threadgroup[k] - 1) / launch.threadgroup[k]);
    } else {
      D.tgpg[k] = launch.grid[k];
      D.grid_threads[k] = uint32_t(uint64_t(launch.grid[k]) * launch.threadgroup[k]);
    }
  }
  D.n_groups = uint64_t(D.tgpg[0]) * D.tgpg[1] * D.tgpg[2];
  D.tg_mem = launch.tg_memory.data();
  D.n_tg_mem = uint32_t(launch.tg_memory.size());
  D.tg_dyn_total = tg_memory_total(launch);
  D.dctx.buffers = ptrs.data();
  D.dctx.buffer_sizes = sizes.data();
  D.dctx.n_buffers = uint32_t(ptrs.size());
  D.dctx.threads_per_grid = MoeU3{D.grid_threads[0], D.grid_threads[1], D.grid_threads[2]};
  D.dctx.threadgroups_per_grid = MoeU3{D.tgpg[0], D.tgpg[1], D.tgpg[2]};
  D.dctx.dispatch_tg_size = MoeU3{D.tg[0], D.tg[1], D.tg[2]};

  unsigned workers = opt.workers == 0 ? hardware_concurrency() : opt.workers;
  if (workers > kMaxWorkers) workers = kMaxWorkers;
  if (uint64_t(workers) > D.n_groups) workers = unsigned(D.n_groups);
  if (D.fibers) {
    // Every worker keeps a stack (two mappings) per thread of a group: stay
    // well inside the process's mapping limit.
    uint64_t per_worker = 2 * uint64_t(D.tg[0]) * D.tg[1] * D.tg[2] + 8;
    uint64_t cap = std::max<uint64_t>(1, max_map_count() / 2 / per_worker);
    if (workers > cap) workers = unsigned(cap);
  }
  if (workers == 0) workers = 1;

  {
    std::lock_guard<std::mutex> lk(g_dispatch_mutex);
    if (g_pool == nullptr) g_pool = new Pool();
    if (g_watchdog == nullptr) g_watchdog = new Watchdog();
    if (opt.timeout_ms > 0) {
      D.has_deadline = true;
      const uint64_t ms = std::min<uint64_t>(opt.timeout_ms, uint64_t(1) << 40);
      D.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    }
    struct End {
      Dispatch *d;
      ~End() { g_watchdog->end(d); }
    } end{&D};
    g_watchdog->begin(&D);
    g_pool->run(D, workers);
  }
  if (D.timed_out.load() && D.error.empty()) {
    D.error = strprintf("timed out: still running after %llu ms, abandoned by the watchdog (an endless loop? if the "
                        "kernel is only slow, raise the timeout: --timeout)",
                        (unsigned long long)opt.timeout_ms);
  }
  // The canary of every guarded buffer's slack bytes (writes just past the
  // end, or before the start, that the guard pages cannot see).
  for (size_t i = 0; i < buffers.size(); ++i) {
    const GuardedBuffer *g = buffers[i].guard;
    if (g == nullptr || buffers[i].ptr == nullptr) continue;
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = buffers[j].guard == g;
    if (seen) continue;
    int64_t first = 0, last = 0;
    if (!g->canary_damage(&first, &last)) continue;
    if (D.error.empty()) {
      const long long sz = (long long)buffers[i].size;
      const char *where = first < 0 && last >= sz ? "before the start and past the end of"
                          : first < 0            ? "before the start of"
                                                 : "past the end of";
      D.error = strprintf("out-of-bounds write %s %s: bytes at offsets %lld..%lld were overwritten (the buffer has "
                          "%lld bytes; found by the canary after the dispatch, so the thread is not known)",
                          where, buffer_label(D, i).c_str(), (long long)first, (long long)last, sz);
    }
    g->reset_canary();
  }
  if (!D.error.empty()) throw std::runtime_error(D.error);
}

void shutdown_pool() {
  std::lock_guard<std::mutex> lk(g_dispatch_mutex);
  if (g_pool != nullptr) {
    g_pool->shutdown();
    delete g_pool;
    g_pool = nullptr;
  }
}

}  // namespace moe
