// traps.cc: signals, the watchdog and fault reports of the CPU runtime, and
// Worker::run, which runs a worker's share of a dispatch under them.
#include "cpu_internal.h"

namespace moe {
namespace cpu {

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
  static constexpr int kLoopGraceMs = 50;

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
        set_abort_word(1);
        // The loops of kernel code poll the flag and leave on their own,
        // naming their line: give them a moment before the signals.
        wake_ = now + std::chrono::milliseconds(kLoopGraceMs);
        cv_.wait_until(lk, wake_);
        continue;
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

// Called by dispatch() under g_dispatch_mutex (pool.cc).
void watchdog_ensure() {
  if (g_watchdog == nullptr) g_watchdog = new Watchdog();
}
void watchdog_begin(Dispatch *d) { g_watchdog->begin(d); }
void watchdog_end(Dispatch *d) { g_watchdog->end(d); }

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
  // Threadgroup memory: variables (their slot in use by this group) and [[threadgroup(n)]] buffers.
  auto tg_report = [&](const TgRegion &r) -> std::string {
    const int64_t off = int64_t(a - reinterpret_cast<uintptr_t>(r.ptr));
    std::string what = r.dyn ? (r.name != nullptr ? strprintf("threadgroup(%u) buffer '%s'", r.index, r.name)
                                                  : strprintf("threadgroup(%u) buffer", r.index))
                             : strprintf("threadgroup array '%s'", r.name != nullptr ? r.name : "?");
    std::string idx;
    if (r.elem > 0) {
      const int64_t e = int64_t(r.elem);
      idx = strprintf(", index %lld", (long long)(off >= 0 ? off / e : -((-off + e - 1) / e)));
    }
    std::string rel;
    if (off < 0) {
      rel = strprintf("%lld bytes before its start", (long long)-off);
    } else if (uint64_t(off) >= r.size) {
      rel = strprintf("%llu bytes past its end", (unsigned long long)(uint64_t(off) - r.size));
    } else {
      rel = "inside it";
    }
    std::string sz = r.elem > 0 ? strprintf("%llu bytes: %llu elements of %llu bytes", (unsigned long long)r.size,
                                            (unsigned long long)(r.size / r.elem), (unsigned long long)r.elem)
                                : strprintf("%llu bytes", (unsigned long long)r.size);
    return strprintf("out-of-bounds %s %s %s at byte offset %lld%s (%s; the %s has %s)%s", acc, trap_access == 2 ? "to" : "of",
                     what.c_str(), (long long)off, idx.c_str(), rel.c_str(), r.dyn ? "buffer" : "array", sz.c_str(),
                     where.c_str());
  };
  for (size_t i = 0; i < tg_regions.size(); ++i) {
    const TgRegion &r = tg_regions[i];
    if (!r.contains(a) || i >= static_slots.size() || static_slots[i].gen != gen || static_slots[i].ptr != r.ptr) continue;
    return tg_report(r);
  }
  for (size_t i = 0; i < tg_dyn_regions.size() && i < D.n_tg_mem; ++i) {
    const TgRegion &r = tg_dyn_regions[i];
    if (r.size > 0 && r.contains(a)) return tg_report(r);
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

}  // namespace cpu

}  // namespace moe
