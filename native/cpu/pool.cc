// pool.cc: the worker pool of the CPU runtime, launch validation and
// dispatch().
#include "cpu_internal.h"

namespace moe {
namespace cpu {


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

}  // namespace cpu

using namespace cpu;


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
    watchdog_ensure();
    if (opt.timeout_ms > 0) {
      D.has_deadline = true;
      const uint64_t ms = std::min<uint64_t>(opt.timeout_ms, uint64_t(1) << 40);
      D.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    }
    struct End {
      Dispatch *d;
      ~End() { watchdog_end(d); }
    } end{&D};
    set_abort_word(0);
    watchdog_begin(&D);
    g_pool->run(D, workers);
  }
  if (D.timed_out.load() && D.loop_stop.seen) {
    // A loop saw the flag: its line, whatever the watchdog's signals ended meanwhile.
    const LoopStop &ls = D.loop_stop;
    std::string where = ls.has_thread ? strprintf(" in threadgroup (%u,%u,%u), thread (%u,%u,%u)", ls.tg.x, ls.tg.y,
                                                  ls.tg.z, ls.tid.x, ls.tid.y, ls.tid.z)
                                      : strprintf(" in threadgroup (%u,%u,%u)", ls.tg.x, ls.tg.y, ls.tg.z);
    const char *file = ls.file != nullptr ? ls.file : "?";
    const char *slash = std::strrchr(file, '/');
    D.error = strprintf("timed out: still running after %llu ms%s, abandoned by the watchdog in kernel '%s' at the loop "
                        "of %s:%u (an endless loop? if the kernel is only slow, raise the timeout: --timeout)",
                        (unsigned long long)opt.timeout_ms, where.c_str(), kernel.name.c_str(),
                        slash != nullptr ? slash + 1 : file, ls.line);
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
