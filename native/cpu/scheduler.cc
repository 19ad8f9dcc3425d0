// scheduler.cc: workers and the threadgroup scheduler of the CPU runtime:
// fibers run until they block at a barrier or SIMD-group rendezvous, and the
// last one to block releases the next phase (see the overview in cpu_internal.h).
#include "cpu_internal.h"

namespace moe {
namespace cpu {

std::atomic<Worker *> g_workers[kMaxWorkers];
std::atomic<uint32_t> g_n_workers{0};
thread_local Worker *t_worker = nullptr;


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


}  // namespace cpu

}  // namespace moe
