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
#include "runtime.h"

#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

// Shared by all workers of one dispatch.
struct Dispatch {
  const KernelDesc *kernel = nullptr;
  const RunOptions *opt = nullptr;
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
  std::mutex err_m;
  std::string error;

  void set_error(const std::string &msg) {
    {
      std::lock_guard<std::mutex> lk(err_m);
      if (error.empty()) error = msg;
    }
    abort.store(true, std::memory_order_relaxed);
  }
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

struct Worker {
  Worker() {
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
  }
  ~Worker() {
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
  // stack overflow recovery (guard page hit in a fiber)
  sigjmp_buf overflow_jb;
  volatile sig_atomic_t overflow_armed = 0;
  volatile int32_t overflow_fiber = -1;
  void *altstack = nullptr;  // this worker's signal stack
  size_t altstack_size = 0;
  // plain loop
  bool in_plain = false;
  MoeThreadCtx plain_t{};
  std::jmp_buf jb;

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
    if (disp.fibers) {
      uint32_t max_n = disp.tg[0] * disp.tg[1] * disp.tg[2];
      ensure_stacks(max_n, disp.opt->stack_size);
      if (stacks_dirty) {
        for (Stack &s : stacks) fiber_stack_reset(s.lo, s.size);
        stacks_dirty = false;
      }
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
              plain_t.tid = MoeU3{x, y, z};
              plain_t.index = i++;
              entry(&plain_t);
            }
      } else {
        for (uint32_t k = 0; k < n; ++k) {
          init_thread_ctx(plain_t, perm[k]);
          entry(&plain_t);
        }
      }
    }
  }

  void run_plain() {
    in_plain = true;
    if (setjmp(jb) == 0) {
      plain_groups();
    }
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
};

thread_local Worker *t_worker = nullptr;

void Worker::fiber_main(void *arg) {
  fiber_started();
  Fiber *f = static_cast<Fiber *>(arg);
  Worker *w = f->w;
  w->d->kernel->entry(&f->t);
  w->finish(f);
}

void Worker::finish(Fiber *f) {
  f->state = kDone;
  --n_live;
  ++n_done;
  FiberCtx *next = pick_next();
  fiber_exit(&f->ctx, next);
}

// The calling fiber waits (state says where) and returns `keep` once
// released. Fibers released by a phase keep their old state until they run
// and block again: states are only read when no fiber is runnable. Callers
// end with `return block(...)`, so that the switch is a tail call.
inline void *Worker::block(Fiber *f, uint8_t state, void *keep) {
  f->state = state;
  FiberCtx *next;
  if (rq_pos < rq_len) {
    cur = &fibers[rq[rq_pos++]];
    next = &cur->ctx;
  } else {
    next = release_phase();
    if (next == &f->ctx) return keep;
    if (next == &sched) fiber_exit(&f->ctx, next);  // the group was abandoned
  }
  return fiber_switch(&f->ctx, next, keep);
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
// Fiber stack overflow: a SIGSEGV/SIGBUS in the guard region of one of the
// current worker's fiber stacks fails the dispatch instead of killing the
// process. The handler runs on an alternate signal stack (the fiber's own is
// exhausted) and siglongjmps back to Worker::run_fibers_guarded on the
// worker's OS thread stack. Any other fault goes to the handler that was
// installed before ours.
// ---------------------------------------------------------------------------

struct sigaction g_prev_segv, g_prev_bus;
std::once_flag g_overflow_once;

void chain_signal(int sig, siginfo_t *si, void *uc) {
  struct sigaction *p = sig == SIGBUS ? &g_prev_bus : &g_prev_segv;
  if (p->sa_flags & SA_SIGINFO) {
    if (p->sa_sigaction != nullptr) {
      p->sa_sigaction(sig, si, uc);
      return;
    }
  } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN && p->sa_handler != nullptr) {
    p->sa_handler(sig);
    return;
  }
  // Default action: uninstall and let the faulting instruction fault again.
  signal(sig, SIG_DFL);
}

bool in_guard(const Stack &s, uintptr_t a) {
  return a >= reinterpret_cast<uintptr_t>(s.map) && a < reinterpret_cast<uintptr_t>(s.lo);
}

void overflow_handler(int sig, siginfo_t *si, void *uc) {
  Worker *w = t_worker;
  if (w != nullptr && w->overflow_armed) {
    uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
    int32_t hit = -1;
    if (w->cur != nullptr) {
      uint32_t i = uint32_t(w->cur - w->fibers.get());
      if (i < w->stacks.size() && in_guard(w->stacks[i], a)) hit = int32_t(i);
    }
    for (size_t i = 0; hit < 0 && i < w->stacks.size(); ++i) {
      if (in_guard(w->stacks[i], a)) hit = int32_t(i);
    }
    if (hit >= 0) {
      w->overflow_fiber = hit;
      w->overflow_armed = 0;
      siglongjmp(w->overflow_jb, 1);
    }
  }
  chain_signal(sig, si, uc);
}

void install_overflow_handler() {
  std::call_once(g_overflow_once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = overflow_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
    sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

// Makes sure the calling thread has an alternate signal stack while it runs
// fibers; restores the previous state on destruction.
class AltStackScope {
 public:
  explicit AltStackScope(Worker &w) {
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
    if (sigaltstack(&ns, &old_) == 0) installed_ = true;
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

// Returns normally, or with overflow_fiber >= 0 after a guard-page hit.
__attribute__((noinline)) void run_fibers_guarded(Worker *w) {
  w->overflow_fiber = -1;
  if (sigsetjmp(w->overflow_jb, 1) == 0) {
    w->overflow_armed = 1;
    w->run_fibers();
  }
  w->overflow_armed = 0;
}

void Worker::run(Dispatch &disp) {
  t_worker = this;
  try {
    prepare_dispatch(disp);
    if (disp.fibers) {
      install_overflow_handler();
      AltStackScope alt(*this);
      run_fibers_guarded(this);
      if (overflow_fiber >= 0) {
        const Fiber &f = fibers[size_t(overflow_fiber)];
        stacks_dirty = true;
        cur = nullptr;
        disp.set_error(strprintf("stack overflow in threadgroup (%u,%u,%u), thread (%u,%u,%u): the fiber stack of "
                                 "%zu bytes is too small (raise the stackSize option)",
                                 g.tg_pos.x, g.tg_pos.y, g.tg_pos.z, f.t.tid.x, f.t.tid.y, f.t.tid.z,
                                 disp.opt->stack_size));
      }
    } else {
      run_plain();
    }
  } catch (const std::exception &e) {
    disp.set_error(e.what());
  }
  t_worker = nullptr;
  d = nullptr;
}

// ---------------------------------------------------------------------------
// The runtime API called by kernels
// ---------------------------------------------------------------------------

// Abort the dispatch from kernel code. Nothing with a destructor may be live
// on the caller's stack: the calling fiber is abandoned (or longjmp'ed over).
[[noreturn]] void fail_current(const char *msg) {
  Worker *w = t_worker;
  if (w == nullptr || w->d == nullptr) {
    std::fprintf(stderr, "moe runtime: kernel failure outside a dispatch: %s\n", msg);
    std::abort();
  }
  if (w->in_plain) {
    w->d->set_error(msg);
    w->group_failed = true;
    std::longjmp(w->jb, 1);
  }
  Fiber *f = w->cur;
  FiberCtx *to = w->fail_group(msg);
  fiber_exit(&f->ctx, to);
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

Worker *api_worker(const char *what) {
  Worker *w = t_worker;
  if (w == nullptr || w->d == nullptr) {
    std::fprintf(stderr, "moe runtime: %s called outside a kernel dispatch\n", what);
    std::abort();
  }
  return w;
}

void api_tg_barrier() {
  Worker *w = api_worker("threadgroup_barrier");
  if (w->in_plain) fail_sync_in_plain(w, "threadgroup_barrier");
  ++w->n_barrier;
  w->block(w->cur, kAtBarrier, nullptr);
}

void api_simd_barrier() {
  Worker *w = api_worker("simdgroup_barrier");
  if (w->in_plain) fail_sync_in_plain(w, "simdgroup_barrier");
  const uint32_t idx = w->cur->t.index;
  w->simd_bar[idx / MOE_SIMD_WIDTH] |= 1u << (idx % MOE_SIMD_WIDTH);
  w->simd_waiting |= 1u << (idx / MOE_SIMD_WIDTH);
  w->block(w->cur, kAtSimdBarrier, nullptr);
}

const void *api_simd_exchange(const void *value, uint32_t size, uint64_t *active_mask) {
  Worker *w = api_worker("simd_exchange");
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

void *api_tg_static(uint32_t slot, uint64_t size, uint64_t align) {
  Worker *w = api_worker("tg_static");
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

void api_fail(const char *message) {
  Worker *w = api_worker("fail");
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
      workers_.emplace_back(new Worker());
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
    g_pool->run(D, workers);
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
