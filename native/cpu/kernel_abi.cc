// kernel_abi.cc: the runtime API that kernel modules call (msl_cpu/abi.h):
// barriers, SIMD-group exchange, threadgroup variables, failure.
#include "cpu_internal.h"

namespace moe {
namespace cpu {


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

// The checks every threadgroup variable request passes (tg_static, tg_array).
// A slot this threadgroup placed already: that slot, when the request asks
// for no more bytes than it has. A new one: nullptr, once the slot is in
// range, the alignment (0 reads as 1) is a power of two up to 4096, and the
// variable's bytes (`rounded`, in 16-byte granules) fit the threadgroup
// memory limit beside the dynamic buffers and the variables placed so far.
const StaticSlot *check_tg_request(Worker *w, uint32_t slot, uint64_t size, uint64_t &align, uint64_t &rounded) {
  if (slot < w->static_slots.size()) {
    const StaticSlot &s = w->static_slots[slot];
    if (s.gen == w->gen) {
      if (size > s.size) {
        fail_fmt("threadgroup variable slot %u requested with %llu bytes after %llu", slot, (unsigned long long)size,
                 (unsigned long long)s.size);
      }
      return &s;
    }
  }
  if (slot >= kMaxStaticSlot) fail_fmt("threadgroup variable slot %u out of range", slot);
  if (align == 0) align = 1;
  if ((align & (align - 1)) != 0 || align > 4096) {
    fail_fmt("threadgroup variable alignment %llu is not a power of two up to 4096", (unsigned long long)align);
  }
  const uint64_t dyn = w->d->tg_dyn_total;
  rounded = round_up(std::min<uint64_t>(size, uint64_t(1) << 40), 16);
  if (dyn + w->static_bytes + rounded > kMaxThreadgroupMemory) {
    fail_fmt("threadgroup memory of %llu bytes exceeds the maximum of %llu (%llu dynamic + %llu in threadgroup "
             "variables)",
             (unsigned long long)(dyn + w->static_bytes + rounded), (unsigned long long)kMaxThreadgroupMemory,
             (unsigned long long)dyn, (unsigned long long)(w->static_bytes + rounded));
  }
  return nullptr;
}

// A new threadgroup variable placed at `ptr`: its bytes counted, its slot
// remembered for this threadgroup (check_tg_request's `rounded`).
void *record_tg_slot(Worker *w, uint32_t slot, void *ptr, uint64_t size, uint64_t rounded) {
  w->static_bytes += rounded;
  if (slot >= w->static_slots.size()) w->static_slots.resize(size_t(slot) + 1);
  StaticSlot &s = w->static_slots[slot];
  s.gen = w->gen;
  s.ptr = ptr;
  s.size = size;
  return ptr;
}

void *tg_static_impl(Worker *w, uint32_t slot, uint64_t size, uint64_t align) {
  uint64_t rounded = 0;
  if (const StaticSlot *s = check_tg_request(w, slot, size, align, rounded)) return s->ptr;
  uint64_t off = round_up(w->arena_used, align);
  if (off + size > kArenaCapacity) {
    fail_current("threadgroup variables do not fit the threadgroup memory arena (alignment padding)");
  }
  w->arena_used = off + size;
  return record_tg_slot(w, slot, w->arena + off, size, rounded);
}

void *api_tg_static(uint32_t slot, uint64_t size, uint64_t align) {
  Worker *w = api_enter("tg_static");
  void *p = tg_static_impl(w, slot, size, align);
  enter_kernel(w);
  return p;
}

// A threadgroup variable against a guard page (tg_array): the same rules and
// accounting as tg_static, its own mapping per slot.
void *api_tg_array(uint32_t slot, uint64_t size, uint64_t align, const char *name, uint64_t elem_size) {
  Worker *w = api_enter("tg_array");
  uint64_t rounded = 0;
  if (const StaticSlot *s = check_tg_request(w, slot, size, align, rounded)) {
    enter_kernel(w);
    return s->ptr;
  }
  if (slot >= w->tg_regions.size()) w->tg_regions.resize(size_t(slot) + 1);
  TgRegion &r = w->tg_regions[slot];
  // the end of the storage at the guard, its start aligned (sizeof is a multiple of alignof)
  // (failing after the handler: fail_current leaves the fiber, an exception must not stay caught)
  char why[256] = {0};
  try {
    r.place(round_up(size, align));
  } catch (const std::exception &e) {
    std::snprintf(why, sizeof why, "%s", e.what());
  }
  if (why[0] != 0) fail_current(why);
  r.name = name;
  r.elem = elem_size;
  r.dyn = false;
  r.index = slot;
  void *p = record_tg_slot(w, slot, r.ptr, size, rounded);
  enter_kernel(w);
  return p;
}

// A loop of kernel code saw the abort flag (MOE_LOOP_POLL): after the
// watchdog's timeout, the first one records where it was; every one leaves.
void api_loop_abort(const char *file, uint32_t line) {
  Worker *w = t_worker;
  if (w == nullptr || w->d == nullptr) return;  // (a stale flag outside a dispatch)
  leave_kernel(w);
  Dispatch &D = *w->d;
  if (!D.abort.load(std::memory_order_relaxed)) {  // stale: from the dispatch before
    enter_kernel(w);
    return;
  }
  if (D.timed_out.load(std::memory_order_relaxed)) {
    const MoeThreadCtx *t = w->in_plain ? &w->plain_t : (w->cur != nullptr ? &w->cur->t : nullptr);
    std::lock_guard<std::mutex> lk(D.err_m);
    if (!D.loop_stop.seen) {
      D.loop_stop.seen = true;
      D.loop_stop.file = file;
      D.loop_stop.line = line;
      D.loop_stop.has_thread = t != nullptr;
      if (t != nullptr) D.loop_stop.tid = t->tid;
      D.loop_stop.tg = w->g.tg_pos;
    }
  }
  abandon_current(w);
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

volatile uint32_t g_abort_word = 0;

const MoeRuntimeApi g_api = {
    MOE_ABI_VERSION, api_tg_barrier,    api_simd_barrier, api_simd_exchange, api_tg_static, api_fail,
    api_current_thread, &g_abort_word,  api_loop_abort,   api_tg_array,
};

}  // namespace cpu

using namespace cpu;

const MoeRuntimeApi *runtime_api() { return &g_api; }

}  // namespace moe
