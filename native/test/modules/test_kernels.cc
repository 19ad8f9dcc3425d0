// test_kernels.cc — a hand-written kernel module for the runtime tests: what
// the MSL emitter would produce, written by hand. Each entry runs ONE thread.
#include <fenv.h>

#include "test_module.h"

// out[i] = in[i] * 2 + 1 for i < n (buffer 2 holds n). Plain loop.
static void k_copy(const MoeThreadCtx *t) {
  uint32_t i = gid_x(t);
  uint32_t n = *buf<uint32_t>(t, 2);
  if (i >= n) return;
  buf<float>(t, 1)[i] = buf<float>(t, 0)[i] * 2.0f + 1.0f;
}

// Tree reduction of uint32 in [[threadgroup(0)]] memory with barriers;
// out[group] = sum of the group's inputs. Group size must be a power of two.
static void k_reduce_tree(const MoeThreadCtx *t) {
  uint32_t *sh = static_cast<uint32_t *>(t->g->tg_dyn[0]);
  uint32_t i = t->index;
  uint32_t gid = gid_x(t);
  sh[i] = buf<uint32_t>(t, 0)[gid];
  rt->tg_barrier();
  for (uint32_t s = t->g->n_threads / 2; s > 0; s >>= 1) {
    if (i < s) sh[i] += sh[i + s];
    rt->tg_barrier();
  }
  if (i == 0) buf<uint32_t>(t, 1)[t->g->tg_pos.x] = sh[0];
}

// out[gid] = sum over the thread's SIMD-group of in[], masks[gid] = active mask,
// prefix[gid] = exclusive prefix sum by lane (checks slot order).
static void k_simd_sum(const MoeThreadCtx *t) {
  uint32_t gid = gid_x(t);
  uint32_t v = buf<uint32_t>(t, 0)[gid];
  uint64_t mask = 0;
  const uint8_t *slots = static_cast<const uint8_t *>(rt->simd_exchange(&v, sizeof v, &mask));
  uint32_t lane = t->index % MOE_SIMD_WIDTH;
  uint32_t sum = 0, prefix = 0;
  for (uint32_t l = 0; l < MOE_SIMD_WIDTH; ++l) {
    if (!(mask & (uint64_t(1) << l))) continue;
    uint32_t x;
    memcpy(&x, slots + l * MOE_SIMD_SLOT_BYTES, sizeof x);
    sum += x;
    if (l < lane) prefix += x;
  }
  // A second collective right after the first (double-buffered slots).
  uint32_t sum2 = simd_sum<uint32_t>(v * 3);
  buf<uint32_t>(t, 1)[gid] = sum;
  buf<uint64_t>(t, 2)[gid] = mask;
  buf<uint32_t>(t, 3)[gid] = prefix;
  if (sum2 != sum * 3) rt->fail("second simd_sum mismatch");
}

// Lanes 0..15 take part in a collective; everyone then meets at the barrier.
static void k_simd_partial(const MoeThreadCtx *t) {
  uint32_t gid = gid_x(t);
  uint32_t lane = t->index % MOE_SIMD_WIDTH;
  uint64_t mask = 0;
  uint32_t s = 0;
  if (lane < 16) s = simd_sum<uint32_t>(lane, &mask);
  rt->tg_barrier();
  buf<uint32_t>(t, 0)[gid] = s;
  buf<uint64_t>(t, 1)[gid] = mask;
}

// simdgroup_barrier: lane l writes, barrier, reads lane (l+1) of its SIMD-group.
static void k_simd_barrier(const MoeThreadCtx *t) {
  uint32_t *sh = static_cast<uint32_t *>(rt->tg_static(0, 4 * 1024, 4));
  uint32_t i = t->index;
  sh[i] = i * 7;
  rt->simd_barrier();
  uint32_t base = i / MOE_SIMD_WIDTH * MOE_SIMD_WIDTH;
  uint32_t lanes = t->g->n_threads - base < MOE_SIMD_WIDTH ? t->g->n_threads - base : MOE_SIMD_WIDTH;
  uint32_t nb = base + (i - base + 1) % lanes;
  buf<uint32_t>(t, 0)[gid_x(t)] = sh[nb];
}

// Two `threadgroup` variables (slots 0 and 1): a rotation through slot 0 and a
// per-group counter in slot 1; every thread checks it got the same pointers.
static void k_tg_static(const MoeThreadCtx *t) {
  uint32_t n = t->g->n_threads;
  uint32_t *arr = static_cast<uint32_t *>(rt->tg_static(0, sizeof(uint32_t) * 1024, 16));
  uint32_t *ctr = static_cast<uint32_t *>(rt->tg_static(1, sizeof(uint32_t), 4));
  if (arr == ctr) rt->fail("two threadgroup variables share storage");
  if ((uintptr_t)arr % 16 != 0) rt->fail("threadgroup variable misaligned");
  uint32_t i = t->index;
  if (i == 0) *ctr = 0;
  arr[i] = i + 1000 * t->g->tg_pos.x;
  rt->tg_barrier();
  __atomic_fetch_add(ctr, 1u, __ATOMIC_RELAXED);
  uint32_t v = arr[(i + 1) % n];
  rt->tg_barrier();
  if (rt->tg_static(0, sizeof(uint32_t) * 1024, 16) != arr) rt->fail("tg_static pointer changed within the group");
  buf<uint32_t>(t, 0)[gid_x(t)] = v;
  if (i == 0) buf<uint32_t>(t, 1)[t->g->tg_pos.x] = *ctr;
}

// Asks for more threadgroup memory than Metal allows.
static void k_tg_static_overflow(const MoeThreadCtx *t) {
  uint32_t *a = static_cast<uint32_t *>(rt->tg_static(0, 20000, 16));
  uint32_t *b = static_cast<uint32_t *>(rt->tg_static(1, 20000, 16));
  a[t->index] = b[t->index] = 1;
}

// out[gid] = gid, but thread 100 of the grid calls fail(). Plain loop.
static void k_fail_plain(const MoeThreadCtx *t) {
  uint32_t gid = gid_x(t);
  if (gid == 100) rt->fail("boom (plain)");
  buf<uint32_t>(t, 0)[gid] = gid;
}

// Same with fibers, failing after a barrier.
static void k_fail_fibers(const MoeThreadCtx *t) {
  uint32_t gid = gid_x(t);
  rt->tg_barrier();
  if (gid == 100) rt->fail("boom (fibers)");
  rt->tg_barrier();
  buf<uint32_t>(t, 0)[gid] = gid;
}

// Threads 0..2 of every group return before the barrier.
static void k_divergent(const MoeThreadCtx *t) {
  if (t->index < 3) return;
  rt->tg_barrier();
  buf<uint32_t>(t, 0)[gid_x(t)] = 1;
}

// The whole group returns early (edge groups), others use barriers: fine.
static void k_whole_group_returns(const MoeThreadCtx *t) {
  if (t->g->tg_pos.x % 2 == 1) return;
  rt->tg_barrier();
  buf<uint32_t>(t, 0)[gid_x(t)] = 1;
}

// Coverage for dispatchThreads with a grid that is not a multiple of the
// threadgroup: counts[linear gid] += 1, sizes[linear gid] = actual tg size,
// and checks the builtins. Plain loop (and a fiber variant with a barrier).
static void coverage_body(const MoeThreadCtx *t) {
  const MoeU3 g = t->d->threads_per_grid;
  uint32_t x = gid_x(t), y = gid_y(t), z = gid_z(t);
  if (x >= g.x || y >= g.y || z >= g.z) rt->fail("thread outside the grid");
  const MoeU3 s = t->g->tg_size;
  if (t->index != t->tid.x + t->tid.y * s.x + t->tid.z * s.x * s.y) rt->fail("bad thread index");
  if (s.x * s.y * s.z != t->g->n_threads) rt->fail("bad n_threads");
  if (rt->current_thread() != t) rt->fail("current_thread mismatch");
  uint64_t lin = x + uint64_t(g.x) * (y + uint64_t(g.y) * z);
  __atomic_fetch_add(&buf<uint32_t>(t, 0)[lin], 1u, __ATOMIC_RELAXED);
  uint32_t *sz = buf<uint32_t>(t, 1) + 3 * lin;
  sz[0] = s.x;
  sz[1] = s.y;
  sz[2] = s.z;
}
static void k_coverage(const MoeThreadCtx *t) { coverage_body(t); }
static void k_coverage_sync(const MoeThreadCtx *t) {
  rt->tg_barrier();
  coverage_body(t);
  rt->tg_barrier();
}

// Records the order in which threads run between barriers: order[2*gid] and
// order[2*gid+1] get a per-group sequence number before / after a barrier.
static void k_order(const MoeThreadCtx *t) {
  uint32_t *seq = static_cast<uint32_t *>(rt->tg_static(0, 4, 4));
  if (t->index == 0) *seq = 0;  // read only after the barrier
  rt->tg_barrier();
  uint32_t gid = gid_x(t);
  uint32_t *o = buf<uint32_t>(t, 0);
  o[2 * gid] = (*seq)++;
  rt->tg_barrier();
  o[2 * gid + 1] = (*seq)++;
}

// Plain-loop order (schedule applies to the plain loop too).
static void k_order_plain(const MoeThreadCtx *t) {
  uint32_t *seq = buf<uint32_t>(t, 1);
  buf<uint32_t>(t, 0)[gid_x(t)] = __atomic_fetch_add(&seq[group_linear(t)], 1u, __ATOMIC_RELAXED);
}

// A kernel whose module wrongly says uses_sync = 0 but calls a barrier.
static void k_sync_in_plain(const MoeThreadCtx *t) {
  (void)t;
  rt->tg_barrier();
}

// An exchange larger than a slot.
static void k_simd_too_big(const MoeThreadCtx *t) {
  (void)t;
  uint8_t big[MOE_SIMD_SLOT_BYTES + 1] = {0};
  uint64_t m;
  rt->simd_exchange(big, sizeof big, &m);
}

// Benchmark: 16 barriers per thread, neighbours exchange through [[threadgroup(0)]].
static void k_bench_barrier(const MoeThreadCtx *t) {
  uint32_t *sh = static_cast<uint32_t *>(t->g->tg_dyn[0]);
  uint32_t i = t->index, n = t->g->n_threads;
  uint32_t next = i + 1 == n ? 0 : i + 1;
  uint32_t v = i;
  for (int r = 0; r < 8; ++r) {
    sh[i] = v;
    rt->tg_barrier();
    v += sh[next];
    rt->tg_barrier();
  }
  buf<uint32_t>(t, 0)[gid_x(t)] = v;
}

// Benchmark: 16 SIMD exchanges per thread (a simd_shuffle_xor(v, 1) each).
static void k_bench_simd(const MoeThreadCtx *t) {
  uint32_t v = t->index;
  uint32_t other = (t->index % MOE_SIMD_WIDTH) ^ 1u;
  for (int r = 0; r < 16; ++r) {
    uint64_t mask;
    const uint8_t *slots = static_cast<const uint8_t *>(rt->simd_exchange(&v, sizeof v, &mask));
    uint32_t x;
    memcpy(&x, slots + other * MOE_SIMD_SLOT_BYTES, sizeof x);
    v += x;
  }
  buf<uint32_t>(t, 0)[gid_x(t)] = v;
}

// Uses a lot of stack (for the stackSize option).
static void k_deep_stack(const MoeThreadCtx *t) {
  volatile uint8_t big[64 * 1024];
  for (uint32_t i = 0; i < sizeof big; i += 4096) big[i] = uint8_t(i);
  rt->tg_barrier();
  buf<uint32_t>(t, 0)[gid_x(t)] = big[4096];
}

// Thread 0 switches to rounding upward and never switches back: the
// floating-point control state is per fiber, so no other thread (and not the
// worker thread after the dispatch) sees it.
static void k_fpenv(const MoeThreadCtx *t) {
  if (t->index == 0) fesetround(FE_UPWARD);
  rt->tg_barrier();
  buf<uint32_t>(t, 0)[gid_x(t)] = fegetround() == FE_UPWARD ? 1u : 0u;
  rt->tg_barrier();
}

// --- hostile kernels (guard pages, traps, the watchdog) ---------------------

// Buffer 0: uint32_t[n] with n = threads. The last thread writes one element
// past the end.
static void k_oob_write_end(const MoeThreadCtx *t) {
  const uint32_t n = t->d->threads_per_grid.x;
  uint32_t i = gid_x(t);
  buf<volatile uint32_t>(t, 0)[i] = i;
  if (i == n - 1) buf<volatile uint32_t>(t, 0)[i + 1] = i;
}
static void k_oob_write_end_sync(const MoeThreadCtx *t) {
  rt->tg_barrier();
  k_oob_write_end(t);
  rt->tg_barrier();
}
// Buffer 0: input, buffer 1: output. out[i] = in[i - 1] as a signed index:
// thread 0 reads 4 bytes before the start.
static void k_oob_read_before(const MoeThreadCtx *t) {
  int32_t i = int32_t(gid_x(t));
  buf<uint32_t>(t, 1)[i] = buf<volatile uint32_t>(t, 0)[i - 1];
}
// The same with 32-bit unsigned arithmetic: i - 1 wraps to 2^32 - 1.
static void k_oob_read_wrap(const MoeThreadCtx *t) {
  uint32_t i = gid_x(t);
  buf<uint32_t>(t, 1)[i] = buf<volatile uint32_t>(t, 0)[i - 1u];
}
// Writes to buffer 1, which the test leaves unbound (nullptr), at element
// gid + 1 (address arithmetic in integers, so that UBSan's null check, which
// would end the sanitizer run, does not see a null pointer).
static void k_null_write(const MoeThreadCtx *t) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(t->d->buffers[1]);
  *reinterpret_cast<volatile uint32_t *>(base + 4 * (uintptr_t(gid_x(t)) + 1)) = 1;
}

static volatile uint32_t g_forever = 1;
// Thread 3 of group 1 never returns (no runtime call in the loop).
static void k_spin(const MoeThreadCtx *t) {
  if (t->g->tg_pos.x == 1 && t->index == 3) {
    while (g_forever) {
    }
  }
  buf<uint32_t>(t, 0)[gid_x(t)] = 1;
}
static void k_spin_sync(const MoeThreadCtx *t) {
  rt->tg_barrier();
  k_spin(t);
  rt->tg_barrier();
}
// Every thread synchronises forever.
static void k_spin_barrier(const MoeThreadCtx *) {
  while (g_forever) rt->tg_barrier();
}
// Group 0 fails at once; the others never return: the failure must end them.
static void k_fail_or_spin(const MoeThreadCtx *t) {
  if (t->g->tg_pos.x == 0) rt->fail("boom (fail_or_spin)");
  while (g_forever) {
  }
}
static volatile uint32_t g_zero = 0;
// (no_sanitize: under -fsanitize=undefined the division would be reported
// and end the run before the CPU traps.)
__attribute__((no_sanitize("undefined"))) static void k_div_zero(const MoeThreadCtx *t) { buf<uint32_t>(t, 0)[gid_x(t)] = 7u / (gid_x(t) == 5 ? g_zero : 1u); }
static void k_trap(const MoeThreadCtx *t) {
  if (gid_x(t) == 2) __builtin_trap();
  buf<uint32_t>(t, 0)[gid_x(t)] = 1;
}
// deep_stack without synchronisation: runs in the plain loop.
static void k_deep_stack_plain(const MoeThreadCtx *t) {
  volatile uint8_t big[64 * 1024];
  for (uint32_t i = 0; i < sizeof big; i += 4096) big[i] = uint8_t(i);
  buf<uint32_t>(t, 0)[gid_x(t)] = big[4096];
}

static const MoeKernelInfo kKernels[] = {
    {"oob_write_end", k_oob_write_end, 0, 0},
    {"oob_write_end_sync", k_oob_write_end_sync, 1, 0},
    {"oob_read_before", k_oob_read_before, 0, 0},
    {"oob_read_wrap", k_oob_read_wrap, 0, 0},
    {"null_write", k_null_write, 0, 0},
    {"spin", k_spin, 0, 0},
    {"spin_sync", k_spin_sync, 1, 0},
    {"spin_barrier", k_spin_barrier, 1, 0},
    {"fail_or_spin", k_fail_or_spin, 0, 0},
    {"div_zero", k_div_zero, 0, 0},
    {"trap", k_trap, 0, 0},
    {"deep_stack_plain", k_deep_stack_plain, 0, 0},
    {"fpenv", k_fpenv, 1, 0},
    {"copy", k_copy, 0, 0},
    {"reduce_tree", k_reduce_tree, 1, 0},
    {"simd_sum", k_simd_sum, 1, 0},
    {"simd_partial", k_simd_partial, 1, 0},
    {"simd_barrier", k_simd_barrier, 1, 0},
    {"tg_static", k_tg_static, 1, 0},
    {"tg_static_overflow", k_tg_static_overflow, 0, 0},
    {"fail_plain", k_fail_plain, 0, 0},
    {"fail_fibers", k_fail_fibers, 1, 0},
    {"divergent", k_divergent, 1, 0},
    {"whole_group_returns", k_whole_group_returns, 1, 0},
    {"coverage", k_coverage, 0, 0},
    {"coverage_sync", k_coverage_sync, 1, 0},
    {"order", k_order, 1, 0},
    {"order_plain", k_order_plain, 0, 0},
    {"sync_in_plain", k_sync_in_plain, 0, 0},
    {"simd_too_big", k_simd_too_big, 1, 0},
    {"bench_barrier", k_bench_barrier, 1, 0},
    {"bench_simd", k_bench_simd, 1, 0},
    {"deep_stack", k_deep_stack, 1, 0},
};

MOE_EXPORT const MoeKernelInfo *__moe_kernels(uint32_t *count) {
  *count = sizeof kKernels / sizeof kKernels[0];
  return kKernels;
}
