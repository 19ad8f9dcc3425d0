// The CPU runtime: executes kernel modules with Metal's semantics (runtime.h).
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
// "Traps and the watchdog" in traps.cc.
//
// cpu_internal.h: what the pieces of the CPU runtime share (native/cpu/*.cc),
// not part of its interface (runtime.h). Pieces, in order of the data flow:
//   buffers.cc     aligned and guarded buffers (guard regions, canaries)
//   scheduler.cc   workers, fibers, the threadgroup scheduler (barriers, SIMD-groups)
//   traps.cc       signal handlers, the watchdog, fault reports, Worker::run
//   kernel_abi.cc  the runtime API that kernel modules call (MoeRuntimeApi)
//   pool.cc        the worker pool, launch validation and dispatch()
//   module.cc      loading kernel modules (dlopen) and finding their kernels
#ifndef MOE_CPU_INTERNAL_H
#define MOE_CPU_INTERNAL_H

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
namespace cpu {

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

std::string strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

inline uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

inline uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline size_t page_size() {
  static const size_t ps = [] {
    long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? size_t(v) : size_t(4096);
  }();
  return ps;
}

// PROT_NONE region below each fiber stack. Larger than a page so that a frame
// that jumps over the first page (code built without -fstack-clash-protection)
// still lands in it. Costs address space only.
inline size_t stack_guard_size() { return std::max<size_t>(page_size(), 64 * 1024); }

// How many memory mappings a process may have (Linux: vm.max_map_count). Each
// fiber stack costs two (stack + guard).
inline uint64_t max_map_count() {
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
// ---------------------------------------------------------------------------
// Dispatch and worker state
// ---------------------------------------------------------------------------

enum FiberState : uint8_t {
  kReady = 0,
  kRunning,
  kAtBarrier,
  kAtSimdExchange,
  kAtSimdBarrier,
  kDone,
};

inline const char *state_name(uint8_t s) {
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

// The abort flag that loops of kernel code poll (MoeRuntimeApi::abort_flag):
// set with Dispatch::abort, cleared when a dispatch begins (one dispatch runs
// at a time).
extern volatile uint32_t g_abort_word;
inline void set_abort_word(uint32_t v) { __atomic_store_n(&g_abort_word, v, __ATOMIC_RELAXED); }

// Where a loop of kernel code stopped at the watchdog's request (the first
// one to see the flag after the timeout).
struct LoopStop {
  bool seen = false;
  const char *file = nullptr;
  uint32_t line = 0;
  bool has_thread = false;
  MoeU3 tg{}, tid{};
};

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
  LoopStop loop_stop;  // under err_m

  void set_error(const std::string &msg) {
    {
      std::lock_guard<std::mutex> lk(err_m);
      if (error.empty()) error = msg;
    }
    abort.store(true, std::memory_order_relaxed);
    set_abort_word(1);
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

// Threadgroup storage against a guard page: `size` bytes at `ptr`, which ends
// where the PROT_NONE page at `guard` begins. Mapped once and kept (per
// worker, per threadgroup variable slot or [[threadgroup(n)]] index) while
// the storage fits.
struct TgRegion {
  void *map = nullptr;
  size_t map_len = 0;
  uint8_t *guard = nullptr;  // the PROT_NONE page, at the end of the mapping
  void *ptr = nullptr;
  uint64_t size = 0;
  uint64_t elem = 0;         // element size (0: unknown)
  const char *name = nullptr;  // the variable's name (owned by the module or the kernel)
  bool dyn = false;          // a [[threadgroup(n)]] buffer (index), else a threadgroup variable (slot)
  uint32_t index = 0;

  size_t usable() const { return map_len - (guard != nullptr ? page_size() : 0); }
  // (re)maps when `size` does not fit; the storage then ends at the guard
  void place(uint64_t bytes) {
    const size_t ps = page_size();
    const size_t need = size_t(round_up(std::max<uint64_t>(bytes, 1), ps));
    if (map == nullptr || usable() < need) {
      release();
      const size_t len = need + ps;
      void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error(strprintf("cannot map threadgroup memory: %s", std::strerror(errno)));
      uint8_t *g = static_cast<uint8_t *>(p) + need;
      if (mprotect(g, ps, PROT_NONE) != 0) {
        munmap(p, len);
        throw std::runtime_error(strprintf("cannot protect a threadgroup memory guard page: %s", std::strerror(errno)));
      }
      map = p;
      map_len = len;
      guard = g;
    }
    size = bytes;
    ptr = guard - bytes;
  }
  void release() {
    if (map != nullptr) munmap(map, map_len);
    map = nullptr;
    map_len = 0;
    guard = nullptr;
    ptr = nullptr;
  }
  bool contains(uintptr_t a) const {
    return map != nullptr && a >= reinterpret_cast<uintptr_t>(map) && a < reinterpret_cast<uintptr_t>(map) + map_len;
  }
};

constexpr uint32_t kMaxSimdGroups = (kMaxThreadsPerThreadgroup + MOE_SIMD_WIDTH - 1) / MOE_SIMD_WIDTH;
constexpr uint64_t kArenaCapacity = 2 * kMaxThreadgroupMemory;
constexpr uint32_t kMaxStaticSlot = 1u << 16;

struct Worker;
// Workers by pool index, for the signal handlers (which must not touch
// thread-local storage of a dlopen'ed library: its first use may allocate).
extern std::atomic<Worker *> g_workers[kMaxWorkers];  // scheduler.cc
extern std::atomic<uint32_t> g_n_workers;

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
    for (TgRegion &r : tg_regions) r.release();
    for (TgRegion &r : tg_dyn_regions) r.release();
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
  std::vector<TgRegion> tg_regions;      // guarded threadgroup variables, by slot (tg_array)
  std::vector<TgRegion> tg_dyn_regions;  // [[threadgroup(n)]] buffers, by index
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
    if (tg_dyn_regions.size() < nt) tg_dyn_regions.resize(nt);
    tg_dyn_ptrs.assign(nt, nullptr);
    const KernelDesc &K = *disp.kernel;
    for (uint32_t i = 0; i < nt; ++i) {
      TgRegion &r = tg_dyn_regions[i];
      r.dyn = true;
      r.index = i;
      r.name = i < K.tg_param_names.size() && !K.tg_param_names[i].empty() ? K.tg_param_names[i].c_str() : nullptr;
      r.elem = i < K.tg_param_elem.size() ? K.tg_param_elem[i] : 0;
      uint64_t want = disp.tg_mem[i];
      if (want == 0) {
        r.size = 0;
        continue;
      }
      // 16-byte multiples (Metal's rule for threadgroup memory lengths), so the buffer stays aligned
      r.place(round_up(want, 16));
      tg_dyn_ptrs[i] = r.ptr;
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

extern thread_local Worker *t_worker;
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

// Across the pieces (see the file that defines each).
[[noreturn]] void fail_current(const char *msg);
void install_handlers();
void watchdog_ensure();
void watchdog_begin(Dispatch *d);
void watchdog_end(Dispatch *d);
std::string buffer_label(const Dispatch &D, size_t i);
extern const MoeRuntimeApi g_api;

}  // namespace cpu
}  // namespace moe

#endif  // MOE_CPU_INTERNAL_H
