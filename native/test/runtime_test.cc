// runtime_test.cc — tests and micro-benchmarks of the CPU runtime, without
// Node: links the CPU runtime (native/cpu/*.cc) directly and runs the
// hand-written kernel modules of native/test/modules.
//
//   runtime_test MODULE_DIR [--no-bench] [--quick]
//
// MODULE_DIR holds test_kernels.so, bad_abi.so and no_symbols.so.
#include <signal.h>

#include <algorithm>
#include <cfenv>
#include <chrono>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../cpu/fiber.h"
#include "../cpu/runtime.h"

using namespace moe;

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                                \
  do {                                                                             \
    ++g_checks;                                                                    \
    if (!(cond)) {                                                                 \
      ++g_failures;                                                                \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                              \
  } while (0)

#define CHECK_MSG(cond, ...)                                                     \
  do {                                                                           \
    ++g_checks;                                                                  \
    if (!(cond)) {                                                               \
      ++g_failures;                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                         \
      std::fputc('\n', stderr);                                                  \
    }                                                                            \
  } while (0)

static bool contains(const std::string &s, const std::string &sub) { return s.find(sub) != std::string::npos; }

// Whether a fault was a read or a write comes from the CPU's fault record
// (x86-64: the page-fault error code; arm64: ESR, which qemu-user does not
// pass on): where it is missing the runtime says "access".
static std::string without_access_kind(std::string s) {
  for (const char *k : {"write to ", "read of "}) {
    size_t p = s.find(k);
    if (p != std::string::npos) s.replace(p, std::strlen(k), "access of ");
  }
  for (const char *k : {"memory write ", "memory read "}) {
    size_t p = s.find(k);
    if (p != std::string::npos) s.replace(p, std::strlen(k), "memory access ");
  }
  return s;
}
static bool same_fault(const std::string &got, const std::string &want) {
  return got == want || got == without_access_kind(want);
}

// Buffers of the test, as runtime-owned aligned copies.
struct Bufs {
  std::vector<AlignedBuffer> mem;
  std::vector<Binding> bind;
  template <typename T>
  T *add(size_t count, T fill = T()) {
    mem.emplace_back(count * sizeof(T));
    T *p = reinterpret_cast<T *>(mem.back().data());
    for (size_t i = 0; i < count; ++i) p[i] = fill;
    bind.push_back(Binding{p, count * sizeof(T)});
    return p;
  }
};

// Buffers of the test as the addon makes them: guard pages around each.
struct GBufs {
  std::vector<GuardedBuffer> mem;
  std::vector<Binding> bind;
  template <typename T>
  T *add(size_t count, T fill = T()) {
    mem.emplace_back(count * sizeof(T));
    T *p = reinterpret_cast<T *>(mem.back().data());
    for (size_t i = 0; i < count; ++i) p[i] = fill;
    bind.clear();
    for (const GuardedBuffer &g : mem) bind.push_back(g.binding());
    return p;
  }
};

static Launch threads(uint32_t gx, uint32_t gy, uint32_t gz, uint32_t tx, uint32_t ty, uint32_t tz,
                      std::vector<uint64_t> tgm = {}) {
  Launch l;
  l.mode = LaunchMode::Threads;
  l.grid[0] = gx, l.grid[1] = gy, l.grid[2] = gz;
  l.threadgroup[0] = tx, l.threadgroup[1] = ty, l.threadgroup[2] = tz;
  l.tg_memory = std::move(tgm);
  return l;
}
static Launch groups(uint32_t gx, uint32_t gy, uint32_t gz, uint32_t tx, uint32_t ty, uint32_t tz,
                     std::vector<uint64_t> tgm = {}) {
  Launch l = threads(gx, gy, gz, tx, ty, tz, std::move(tgm));
  l.mode = LaunchMode::Threadgroups;
  return l;
}

static RunOptions opts(unsigned workers = 0, Schedule s = Schedule::Forward, uint64_t seed = 0, bool force = false) {
  RunOptions o;
  o.workers = workers;
  o.schedule = s;
  o.seed = seed;
  o.force_fibers = force;
  return o;
}

// Runs; returns "" on success or the error message.
static std::string run(const Module &m, const char *kernel, Bufs &b, const Launch &l, const RunOptions &o) {
  const KernelDesc *k = m.find(kernel);
  if (k == nullptr) return std::string("no kernel ") + kernel;
  try {
    dispatch(*k, b.bind, l, o);
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}

static std::string run(const Module &m, const char *kernel, GBufs &b, const Launch &l, const RunOptions &o) {
  const KernelDesc *k = m.find(kernel);
  if (k == nullptr) return std::string("no kernel ") + kernel;
  try {
    dispatch(*k, b.bind, l, o);
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}

static const Schedule kSchedules[] = {Schedule::Forward, Schedule::Reverse, Schedule::Shuffle};

// ---------------------------------------------------------------------------

static void test_load(const std::string &dir) {
  auto m = Module::load(dir + "/test_kernels.so");
  CHECK(m->kernels().size() >= 15);
  CHECK(m->find("copy") && !m->find("copy")->uses_sync);
  CHECK(m->find("reduce_tree") && m->find("reduce_tree")->uses_sync);
  CHECK(m->find("nope") == nullptr);

  std::string err;
  try {
    Module::load(dir + "/does_not_exist.so");
  } catch (const std::exception &e) {
    err = e.what();
  }
  CHECK_MSG(contains(err, "cannot load kernel module") && contains(err, "does_not_exist.so"), "%s", err.c_str());
  err.clear();
  try {
    Module::load(dir + "/no_symbols.so");
  } catch (const std::exception &e) {
    err = e.what();
  }
  CHECK_MSG(contains(err, "does not export __moe_bind_runtime"), "%s", err.c_str());
  err.clear();
  try {
    Module::load(dir + "/bad_abi.so");
  } catch (const std::exception &e) {
    err = e.what();
  }
  CHECK_MSG(contains(err, "rejected the runtime"), "%s", err.c_str());
}

static void test_copy(const Module &m) {
  for (unsigned w : {1u, 2u, 3u}) {
    for (bool force : {false, true}) {
      Bufs b;
      const uint32_t n = 1000;
      float *in = b.add<float>(n);
      float *out = b.add<float>(n, -1.0f);
      *b.add<uint32_t>(1) = n;
      for (uint32_t i = 0; i < n; ++i) in[i] = float(i);
      std::string e = run(m, "copy", b, threads(n, 1, 1, 64, 1, 1), opts(w, Schedule::Forward, 0, force));
      CHECK_MSG(e.empty(), "%s", e.c_str());
      bool ok = true;
      for (uint32_t i = 0; i < n; ++i) ok &= out[i] == float(i) * 2 + 1;
      CHECK(ok);
    }
  }
}

static void test_reduce(const Module &m) {
  for (Schedule s : kSchedules) {
    for (unsigned w : {1u, 2u}) {
      Bufs b;
      const uint32_t G = 64, T = 128;
      uint32_t *in = b.add<uint32_t>(G * T);
      uint32_t *out = b.add<uint32_t>(G, 0);
      for (uint32_t i = 0; i < G * T; ++i) in[i] = i * 2654435761u >> 7;
      std::string e = run(m, "reduce_tree", b, groups(G, 1, 1, T, 1, 1, {T * 4}), opts(w, s, 42));
      CHECK_MSG(e.empty(), "%s", e.c_str());
      bool ok = true;
      for (uint32_t g = 0; g < G; ++g) {
        uint32_t want = 0;
        for (uint32_t i = 0; i < T; ++i) want += in[g * T + i];
        ok &= out[g] == want;
      }
      CHECK(ok);
    }
  }
}

static void test_simd(const Module &m) {
  // Threadgroups of 48 threads: one full and one partial (16-lane) SIMD-group;
  // dispatchThreads grid 500 leaves an edge group of 20 threads.
  for (Schedule s : kSchedules) {
    Bufs b;
    const uint32_t n = 500, T = 48;
    uint32_t *in = b.add<uint32_t>(n);
    uint32_t *sum = b.add<uint32_t>(n, 0);
    uint64_t *mask = b.add<uint64_t>(n, 0);
    uint32_t *prefix = b.add<uint32_t>(n, 0);
    for (uint32_t i = 0; i < n; ++i) in[i] = (i * 37u) % 101u;
    std::string e = run(m, "simd_sum", b, threads(n, 1, 1, T, 1, 1), opts(2, s, 7));
    CHECK_MSG(e.empty(), "%s", e.c_str());
    bool ok = true;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t g = i / T, gsize = std::min(T, n - g * T), idx = i - g * T;
      uint32_t base = idx / 32 * 32, lanes = std::min(32u, gsize - base);
      uint32_t want = 0, wp = 0;
      for (uint32_t l = 0; l < lanes; ++l) {
        want += in[g * T + base + l];
        if (l < idx - base) wp += in[g * T + base + l];
      }
      uint64_t wm = lanes == 64 ? ~0ull : ((1ull << lanes) - 1);
      if (sum[i] != want || mask[i] != wm || prefix[i] != wp) {
        if (ok) std::fprintf(stderr, "simd_sum thread %u: sum %u/%u mask %llx/%llx prefix %u/%u\n", i, sum[i], want,
                             (unsigned long long)mask[i], (unsigned long long)wm, prefix[i], wp);
        ok = false;
      }
    }
    CHECK(ok);
  }
  {
    Bufs b;
    const uint32_t n = 256;
    uint32_t *s = b.add<uint32_t>(n, 0);
    uint64_t *mask = b.add<uint64_t>(n, 7);
    std::string e = run(m, "simd_partial", b, threads(n, 1, 1, 64, 1, 1), opts(1));
    CHECK_MSG(e.empty(), "%s", e.c_str());
    bool ok = true;
    for (uint32_t i = 0; i < n; ++i) {
      bool in_branch = i % 32 < 16;
      ok &= s[i] == (in_branch ? 120u : 0u);
      ok &= mask[i] == (in_branch ? 0xFFFFull : 0ull);
    }
    CHECK(ok);
  }
  {
    Bufs b;
    const uint32_t n = 300, T = 100;
    uint32_t *out = b.add<uint32_t>(n, 0);
    std::string e = run(m, "simd_barrier", b, threads(n, 1, 1, T, 1, 1), opts(2, Schedule::Reverse));
    CHECK_MSG(e.empty(), "%s", e.c_str());
    bool ok = true;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t idx = i % T, base = idx / 32 * 32, lanes = std::min(32u, T - base);
      uint32_t nb = base + (idx - base + 1) % lanes;
      ok &= out[i] == nb * 7;
    }
    CHECK(ok);
  }
  {
    Bufs b;
    b.add<uint32_t>(64);
    std::string e = run(m, "simd_too_big", b, threads(64, 1, 1, 64, 1, 1), opts(1));
    CHECK_MSG(contains(e, "exceeds the maximum of 64"), "%s", e.c_str());
  }
}

static void test_tg_static(const Module &m) {
  for (Schedule s : kSchedules) {
    Bufs b;
    const uint32_t G = 8, T = 96;
    uint32_t *out = b.add<uint32_t>(G * T, 0);
    uint32_t *ctr = b.add<uint32_t>(G, 0);
    std::string e = run(m, "tg_static", b, groups(G, 1, 1, T, 1, 1), opts(2, s, 3));
    CHECK_MSG(e.empty(), "%s", e.c_str());
    bool ok = true;
    for (uint32_t g = 0; g < G; ++g) {
      ok &= ctr[g] == T;
      for (uint32_t i = 0; i < T; ++i) ok &= out[g * T + i] == (i + 1) % T + 1000 * g;
    }
    CHECK(ok);
  }
  {
    Bufs b;
    b.add<uint32_t>(64);
    std::string e = run(m, "tg_static_overflow", b, threads(64, 1, 1, 64, 1, 1), opts(1));
    CHECK_MSG(contains(e, "exceeds the maximum of 32768"), "%s", e.c_str());
  }
  {
    // 30000 dynamic bytes + 4 KiB of threadgroup variables.
    Bufs b;
    b.add<uint32_t>(64);
    b.add<uint32_t>(1);
    std::string e = run(m, "tg_static", b, groups(1, 1, 1, 64, 1, 1, {30000}), opts(1));
    CHECK_MSG(contains(e, "exceeds the maximum of 32768") && contains(e, "30000 dynamic"), "%s", e.c_str());
  }
}

static void test_validation(const Module &m) {
  Bufs b;
  b.add<uint32_t>(16);
  std::string e = run(m, "coverage", b, threads(0, 1, 1, 8, 1, 1), opts(1));
  CHECK_MSG(contains(e, "zero dimension"), "%s", e.c_str());
  e = run(m, "coverage", b, threads(8, 1, 1, 8, 0, 1), opts(1));
  CHECK_MSG(contains(e, "zero dimension"), "%s", e.c_str());
  e = run(m, "coverage", b, threads(2048, 1, 1, 32, 33, 1), opts(1));
  CHECK_MSG(e == "threadgroup of 1056 threads exceeds the maximum of 1024", "%s", e.c_str());
  e = run(m, "coverage", b, threads(64, 1, 1, 64, 1, 1, {40000}), opts(1));
  CHECK_MSG(contains(e, "threadgroup memory of 40000 bytes exceeds the maximum of 32768"), "%s", e.c_str());
  e = run(m, "coverage", b, threads(64, 1, 1, 64, 1, 1, {16384, 16385}), opts(1));
  CHECK_MSG(contains(e, "exceeds the maximum of 32768"), "%s", e.c_str());
  e = run(m, "coverage", b, groups(0x10000000, 1, 1, 64, 1, 1), opts(1));
  CHECK_MSG(contains(e, "exceeds 2^32-1"), "%s", e.c_str());
  e = run(m, "sync_in_plain", b, threads(4, 1, 1, 4, 1, 1), opts(1));
  CHECK_MSG(contains(e, "uses_sync = 0"), "%s", e.c_str());
}

static void test_fail(const Module &m) {
  for (const char *k : {"fail_plain", "fail_fibers"}) {
    Bufs b;
    const uint32_t n = 1024;
    uint32_t *out = b.add<uint32_t>(n, 0xFFFFFFFFu);
    std::string e = run(m, k, b, threads(n, 1, 1, 64, 1, 1), opts(1));
    CHECK_MSG(contains(e, "boom") && contains(e, "threadgroup (1,0,0), thread (36,0,0)"), "%s: %s", k, e.c_str());
    // One worker: groups after the failing one never start.
    bool untouched = true;
    for (uint32_t i = 128; i < n; ++i) untouched &= out[i] == 0xFFFFFFFFu;
    CHECK_MSG(untouched, "%s ran groups after the failure", k);
    bool first = true;
    for (uint32_t i = 0; i < 64; ++i) first &= out[i] == i;
    CHECK(first);
  }
  // Many failures in a row, with several workers, then normal dispatches.
  for (int r = 0; r < 50; ++r) {
    Bufs b;
    b.add<uint32_t>(4096, 0);
    std::string e = run(m, r % 2 ? "fail_fibers" : "fail_plain", b, threads(4096, 1, 1, 128, 1, 1), opts(2));
    CHECK(contains(e, "boom"));
  }
  test_reduce(m);
  test_copy(m);
}

static void test_divergent(const Module &m) {
  Bufs b;
  b.add<uint32_t>(512, 0);
  std::string e = run(m, "divergent", b, threads(512, 1, 1, 128, 1, 1), opts(1));
  CHECK_MSG(e == "divergent threadgroup_barrier in threadgroup (0,0,0): 3 of 128 threads returned before reaching it",
            "%s", e.c_str());
  Bufs b2;
  uint32_t *out = b2.add<uint32_t>(512, 0);
  e = run(m, "whole_group_returns", b2, threads(512, 1, 1, 64, 1, 1), opts(2));
  CHECK_MSG(e.empty(), "%s", e.c_str());
  bool ok = true;
  for (uint32_t i = 0; i < 512; ++i) ok &= out[i] == ((i / 64) % 2 == 0 ? 1u : 0u);
  CHECK(ok);
  test_reduce(m);
}

static void test_coverage(const Module &m) {
  struct Case {
    Launch l;
  };
  std::vector<Launch> cases = {threads(37, 5, 3, 8, 4, 2), threads(1000, 1, 1, 96, 1, 1), threads(7, 7, 7, 4, 4, 4),
                               threads(1, 1, 1, 32, 32, 1), groups(3, 2, 2, 5, 3, 1), threads(65, 33, 1, 16, 16, 1)};
  for (const char *k : {"coverage", "coverage_sync"}) {
    for (const Launch &l : cases) {
      for (unsigned w : {1u, 2u}) {
        uint32_t gt[3];
        for (int d = 0; d < 3; ++d) gt[d] = l.mode == LaunchMode::Threads ? l.grid[d] : l.grid[d] * l.threadgroup[d];
        size_t total = size_t(gt[0]) * gt[1] * gt[2];
        Bufs b;
        uint32_t *cnt = b.add<uint32_t>(total, 0);
        uint32_t *sz = b.add<uint32_t>(3 * total, 0);
        std::string e = run(m, k, b, l, opts(w, Schedule::Shuffle, 9));
        CHECK_MSG(e.empty(), "%s", e.c_str());
        bool ok = true;
        for (uint32_t z = 0; z < gt[2]; ++z)
          for (uint32_t y = 0; y < gt[1]; ++y)
            for (uint32_t x = 0; x < gt[0]; ++x) {
              size_t lin = x + size_t(gt[0]) * (y + size_t(gt[1]) * z);
              uint32_t c[3] = {x, y, z};
              ok &= cnt[lin] == 1;
              for (int d = 0; d < 3; ++d) {
                uint32_t tg = l.threadgroup[d];
                uint32_t want = std::min(tg, gt[d] - c[d] / tg * tg);
                ok &= sz[3 * lin + d] == want;
              }
            }
        CHECK_MSG(ok, "%s grid (%u,%u,%u) tg (%u,%u,%u)", k, l.grid[0], l.grid[1], l.grid[2], l.threadgroup[0],
                  l.threadgroup[1], l.threadgroup[2]);
      }
    }
  }
}

static std::vector<uint32_t> order_of(const Module &m, const char *k, Schedule s, uint64_t seed, uint32_t n) {
  Bufs b;
  uint32_t *o = b.add<uint32_t>(2 * n, 0);
  b.add<uint32_t>(4, 0);
  std::string e = run(m, k, b, threads(n, 1, 1, n, 1, 1), opts(1, s, seed));
  CHECK_MSG(e.empty(), "%s", e.c_str());
  return std::vector<uint32_t>(o, o + 2 * n);
}

static void test_schedules(const Module &m) {
  const uint32_t n = 40;
  auto f = order_of(m, "order", Schedule::Forward, 0, n);
  auto r = order_of(m, "order", Schedule::Reverse, 0, n);
  auto s1 = order_of(m, "order", Schedule::Shuffle, 1, n);
  auto s1b = order_of(m, "order", Schedule::Shuffle, 1, n);
  auto s2 = order_of(m, "order", Schedule::Shuffle, 2, n);
  bool ok = true;
  for (uint32_t i = 0; i < n; ++i) {
    ok &= f[2 * i] == i && f[2 * i + 1] == n + i;
    ok &= r[2 * i] == n - 1 - i && r[2 * i + 1] == 2 * n - 1 - i;
  }
  CHECK(ok);
  CHECK(s1 == s1b);
  CHECK(s1 != s2);
  CHECK(s1 != f);
  std::vector<uint32_t> firsts;
  for (uint32_t i = 0; i < n; ++i) firsts.push_back(s1[2 * i]);
  std::sort(firsts.begin(), firsts.end());
  bool perm = true;
  for (uint32_t i = 0; i < n; ++i) perm &= firsts[i] == i;
  CHECK(perm);
  auto pf = order_of(m, "order_plain", Schedule::Forward, 0, n);
  auto pr = order_of(m, "order_plain", Schedule::Reverse, 0, n);
  bool pok = true;
  for (uint32_t i = 0; i < n; ++i) pok &= pf[i] == i && pr[i] == n - 1 - i;
  CHECK(pok);
}

static void test_concurrent(const Module &m) {
  std::vector<std::thread> ts;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int r = 0; r < 10; ++r) {
        Bufs b;
        const uint32_t G = 32, T = 64;
        uint32_t *in = b.add<uint32_t>(G * T);
        uint32_t *out = b.add<uint32_t>(G, 0);
        for (uint32_t i = 0; i < G * T; ++i) in[i] = i + uint32_t(t);
        const char *k = (r + t) % 3 == 0 ? "fail_fibers" : "reduce_tree";
        std::string e = run(m, k, b, groups(G, 1, 1, T, 1, 1, {T * 4}), opts(2));
        if (k[0] == 'f') {
          bad[t] += !contains(e, "boom");
          continue;
        }
        bad[t] += !e.empty();
        for (uint32_t g = 0; g < G; ++g) {
          uint32_t want = 0;
          for (uint32_t i = 0; i < T; ++i) want += in[g * T + i];
          bad[t] += out[g] != want;
        }
      }
    });
  }
  for (auto &t : ts) t.join();
  for (int t = 0; t < 4; ++t) CHECK(bad[t] == 0);
}

static void test_deep_stack(const Module &m) {
  Bufs b;
  uint32_t *out = b.add<uint32_t>(256, 0);
  std::string e = run(m, "deep_stack", b, threads(256, 1, 1, 128, 1, 1), opts(2));
  CHECK_MSG(e.empty(), "%s", e.c_str());
  CHECK(out[0] == 0 && out[255] == 0);  // big[4096] = uint8_t(4096) = 0
  // 64 KiB of locals on a 16 KiB fiber stack: a guard-page hit fails the
  // dispatch (instead of killing the process), then everything still works.
  for (unsigned w : {1u, 2u}) {
    RunOptions o = opts(w);
    o.stack_size = 16 * 1024;
    std::string e = run(m, "deep_stack", b, threads(256, 1, 1, 128, 1, 1), o);
    CHECK_MSG(contains(e, "stack overflow in threadgroup") && contains(e, "16384 bytes"), "%s", e.c_str());
  }
  e = run(m, "deep_stack", b, threads(256, 1, 1, 128, 1, 1), opts(2));
  CHECK_MSG(e.empty(), "%s", e.c_str());
  test_reduce(m);
}


// --- hostile kernels --------------------------------------------------------

static void test_guarded_buffer() {
  for (uint64_t size : {0ull, 1ull, 40ull, 48ull, 4096ull, 5000ull}) {
    GuardedBuffer g(size);
    CHECK(reinterpret_cast<uintptr_t>(g.data()) % 16 == 0);
    CHECK(g.size() == size);
    CHECK(g.map_lo() < reinterpret_cast<uintptr_t>(g.data()));
    CHECK(g.map_hi() > reinterpret_cast<uintptr_t>(g.data()) + size);
    for (uint64_t i = 0; i < size; ++i) g.data()[i] = uint8_t(i);
    int64_t a = 0, b = 0;
    CHECK(!g.canary_damage(&a, &b));
    if (size % 16 != 0) {
      g.data()[size] = 0;  // the tail slack
      CHECK(g.canary_damage(&a, &b) && a == int64_t(size) && b == int64_t(size));
      g.reset_canary();
      CHECK(!g.canary_damage(&a, &b));
    }
    if (size % 4096 != 0) {
      g.data()[-2] = 0;  // the front slack
      CHECK(g.canary_damage(&a, &b) && a == -2 && b == -2);
      g.reset_canary();
    }
    GuardedBuffer moved(std::move(g));
    CHECK(moved.size() == size && g.data() == nullptr);
  }
}

static void test_guard(const Module &m) {
  test_guarded_buffer();
  for (const char *k : {"oob_write_end", "oob_write_end_sync"}) {
    for (unsigned w : {1u, 2u}) {
      GBufs b;
      b.add<uint32_t>(256, 0);  // 1024 bytes: the end is the guard page
      RunOptions o = opts(w);
      o.buffer_names = {"out"};
      std::string e = run(m, k, b, threads(256, 1, 1, 64, 1, 1), o);
      CHECK_MSG(same_fault(e, "out-of-bounds write to buffer(0) 'out' at byte offset 1024 (0 bytes past its end; the "
                              "buffer has 1024 bytes) in threadgroup (3,0,0), thread (63,0,0)"),
                "%s", e.c_str());
    }
  }
  {
    GBufs b;
    b.add<uint32_t>(1024, 1);  // one page: the start is the leading guard
    b.add<uint32_t>(1024, 0);
    RunOptions o = opts(2);
    o.buffer_names = {"in", "out"};
    std::string e = run(m, "oob_read_before", b, threads(1024, 1, 1, 128, 1, 1), o);
    CHECK_MSG(same_fault(e, "out-of-bounds read of buffer(0) 'in' at byte offset -4 (4 bytes before its start; the "
                            "buffer has 4096 bytes) in threadgroup (0,0,0), thread (0,0,0)"),
              "%s", e.c_str());
    e = run(m, "oob_read_wrap", b, threads(1024, 1, 1, 128, 1, 1), o);
    CHECK_MSG(contains(without_access_kind(e), "out-of-bounds access of buffer(0) 'in' at byte offset 17179869180 "
                                               "(17179865084 bytes past its end") ||
                  contains(e, "outside every buffer; the nearest buffer is buffer(0) 'in', at byte offset 17179869180"),
              "%s", e.c_str());
    CHECK(contains(e, "in threadgroup (0,0,0), thread (0,0,0)"));
  }
  {
    // 10 elements: 40 bytes, the tail slack (8 bytes) takes the write past
    // the end; the canary finds it after the run.
    GBufs b;
    b.add<uint32_t>(10, 0);
    RunOptions o = opts(1);
    o.buffer_names = {"out"};
    std::string e = run(m, "oob_write_end", b, threads(10, 1, 1, 10, 1, 1), o);
    CHECK_MSG(e == "out-of-bounds write past the end of buffer(0) 'out': bytes at offsets 40..43 were overwritten (the "
                   "buffer has 40 bytes; found by the canary after the dispatch, so the thread is not known)",
              "%s", e.c_str());
    // The canary was restored: a correct kernel now passes on the same buffer
    // ("spin" only spins in threadgroup 1; here there is one).
    e = run(m, "spin", b, threads(10, 1, 1, 10, 1, 1), opts(1));
    CHECK_MSG(e.empty(), "%s", e.c_str());
  }
  {
    GBufs b;
    b.add<uint32_t>(64, 0);
    b.bind.push_back(Binding{});  // buffer(1) unbound
    std::string e = run(m, "null_write", b, threads(64, 1, 1, 64, 1, 1), opts(1));
    CHECK_MSG(contains(without_access_kind(e), "invalid memory access at address 0x") && contains(e, "a null pointer") &&
                  contains(e, "in threadgroup (0,0,0), thread (0,0,0)"),
              "%s", e.c_str());
  }
  test_copy(m);
  test_reduce(m);
}

static double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

static void test_watchdog(const Module &m) {
  for (const char *k : {"spin", "spin_sync"}) {
    for (unsigned w : {1u, 2u}) {
      Bufs b;
      b.add<uint32_t>(512, 0);
      RunOptions o = opts(w);
      o.timeout_ms = 150;
      auto t0 = std::chrono::steady_clock::now();
      std::string e = run(m, k, b, threads(512, 1, 1, 64, 1, 1), o);
      double ms = ms_since(t0);
      CHECK_MSG(e == "timed out: still running after 150 ms in threadgroup (1,0,0), thread (3,0,0), abandoned by the "
                     "watchdog (an endless loop? if the kernel is only slow, raise the timeout: --timeout)",
                "%s: %s", k, e.c_str());
      CHECK_MSG(ms >= 140 && ms < 3000, "%s took %.0f ms", k, ms);
    }
  }
  {
    Bufs b;
    b.add<uint32_t>(64, 0);
    RunOptions o = opts(2);
    o.timeout_ms = 100;
    std::string e = run(m, "spin_barrier", b, groups(4, 1, 1, 64, 1, 1), o);
    CHECK_MSG(contains(e, "timed out: still running after 100 ms"), "%s", e.c_str());
  }
  {
    // No timeout: the failure of group 0 ends the workers spinning in the others.
    Bufs b;
    b.add<uint32_t>(64, 0);
    auto t0 = std::chrono::steady_clock::now();
    std::string e = run(m, "fail_or_spin", b, groups(8, 1, 1, 16, 1, 1), opts(2));
    CHECK_MSG(contains(e, "boom (fail_or_spin)"), "%s", e.c_str());
    CHECK_MSG(ms_since(t0) < 3000, "fail_or_spin took %.0f ms", ms_since(t0));
  }
  // Many short dispatches under a deadline: no spurious timeout.
  for (int r = 0; r < 200; ++r) {
    Bufs c;
    const uint32_t n = 4096;
    c.add<float>(n, 1.0f);
    c.add<float>(n, 0.0f);
    *c.add<uint32_t>(1) = n;
    RunOptions o = opts(r % 2 + 1);
    o.timeout_ms = 1000;
    std::string e = run(m, r % 3 ? "copy" : "reduce_tree", c, threads(n, 1, 1, 64, 1, 1, {256}), o);
    if (!e.empty()) {
      CHECK_MSG(e.empty(), "%s", e.c_str());
      break;
    }
  }
  test_copy(m);
  test_reduce(m);
}

static void test_traps(const Module &m) {
  Bufs b;
  b.add<uint32_t>(64, 0);
  std::string e = run(m, "div_zero", b, threads(64, 1, 1, 32, 1, 1), opts(1));
#if defined(__x86_64__)
  CHECK_MSG(e == "arithmetic trap (SIGFPE: integer division by zero or overflow) in threadgroup (0,0,0), thread "
                 "(5,0,0); a GPU does not trap on it, the CPU does",
            "%s", e.c_str());
#else
  CHECK_MSG(e.empty() || contains(e, "SIGFPE"), "%s", e.c_str());  // (arm64 divides by zero without a trap)
#endif
  e = run(m, "trap", b, threads(64, 1, 1, 32, 1, 1), opts(2));
  CHECK_MSG(contains(e, "illegal instruction (SIGILL) in threadgroup (0,0,0), thread (2,0,0)") ||
                contains(e, "trap instruction (SIGTRAP) in threadgroup (0,0,0), thread (2,0,0)"),
            "%s", e.c_str());
  for (unsigned w : {1u, 2u}) {
    Bufs d;
    d.add<uint32_t>(256, 0);
    RunOptions o = opts(w);
    o.stack_size = 16 * 1024;
    e = run(m, "deep_stack_plain", d, threads(256, 1, 1, 128, 1, 1), o);
    CHECK_MSG(contains(e, "stack overflow in threadgroup (") && contains(e, "16384 bytes"), "%s", e.c_str());
  }
  Bufs d;
  d.add<uint32_t>(256, 0);
  e = run(m, "deep_stack_plain", d, threads(256, 1, 1, 128, 1, 1), opts(2));
  CHECK_MSG(e.empty(), "%s", e.c_str());
  test_copy(m);
}

// A fault outside any dispatch goes to the handler installed before the
// runtime's (here the test's own; in Node, V8's).
static sigjmp_buf g_prev_jb;
static volatile int g_prev_hits = 0;
static void prev_handler(int) {
  ++g_prev_hits;
  siglongjmp(g_prev_jb, 1);
}
static void install_prev_handler() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = prev_handler;
  sa.sa_flags = SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
}
static void test_chain(const Module &m) {
  test_copy(m);  // the runtime's handlers are installed by now
  if (sigsetjmp(g_prev_jb, 1) == 0) {
    volatile uintptr_t addr = 16;
    *reinterpret_cast<volatile int *>(addr) = 1;
  }
  CHECK(g_prev_hits == 1);
}

static void test_fpenv(const Module &m) {
#if defined(MOE_FIBER_NO_FPENV)
  (void)m;
  std::printf("(fpenv: MOE_FIBER_NO_FPENV build, not checked) ");
#else
  for (Schedule s : kSchedules) {
    Bufs b;
    uint32_t *out = b.add<uint32_t>(64, 7);
    std::string e = run(m, "fpenv", b, threads(64, 1, 1, 64, 1, 1), opts(1, s, 1));
    CHECK_MSG(e.empty(), "%s", e.c_str());
    bool ok = out[0] == 1;
    for (uint32_t i = 1; i < 64; ++i) ok &= out[i] == 0;
    CHECK(ok);
    CHECK(std::fegetround() == FE_TONEAREST);
  }
#endif
}

// ---------------------------------------------------------------------------
// Benchmarks

static FiberCtx g_main_ctx, g_ping_ctx;
static long g_ping_left = 0;
static void ping_fn(void *) {
  fiber_started();
  for (;;) fiber_switch(&g_ping_ctx, &g_main_ctx);
}

static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static void bench_switch(long iters) {
  const size_t ss = 64 * 1024;
  std::vector<char> stack(ss);
  fiber_init(&g_ping_ctx, stack.data(), ss, ping_fn, nullptr);
  fiber_switch(&g_main_ctx, &g_ping_ctx);  // warm
  g_ping_left = iters;
  double t0 = now_ms();
  for (long i = 0; i < iters; ++i) fiber_switch(&g_main_ctx, &g_ping_ctx);
  double t1 = now_ms();
  std::printf("fiber switch (%s): %.2f ns per switch (%ld round trips)\n", fiber_impl_name(),
              (t1 - t0) * 1e6 / double(2 * iters), iters);
  // The ping fiber is left parked on its stack (never resumed again).
}

static double time_dispatch(const Module &m, const char *k, Bufs &b, const Launch &l, const RunOptions &o, int reps) {
  std::vector<double> ts;
  for (int r = 0; r < reps; ++r) {
    double t0 = now_ms();
    std::string e = run(m, k, b, l, o);
    double t1 = now_ms();
    if (!e.empty()) {
      std::fprintf(stderr, "bench %s failed: %s\n", k, e.c_str());
      ++g_failures;
      return 0;
    }
    ts.push_back(t1 - t0);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

static void bench(const Module &m, bool quick) {
  bench_switch(quick ? 100000 : 5000000);
  const uint32_t G = quick ? 256 : 4096, T = 128;
  int reps = quick ? 1 : 5;
  Bufs b;
  b.add<uint32_t>(G * T, 0);
  unsigned hw = hardware_concurrency();
  for (unsigned w : {1u, hw}) {
    double ms = time_dispatch(m, "bench_barrier", b, groups(G, 1, 1, T, 1, 1, {T * 4}), opts(w), reps);
    double per = ms * 1e6 / (double(G) * T * 17);
    std::printf("bench_barrier %u groups x %u threads x 16 barriers, %u worker(s): %.2f ms (%.2f ns per thread "
                "resume)\n",
                G, T, w, ms, per);
    ms = time_dispatch(m, "bench_simd", b, groups(G, 1, 1, T, 1, 1), opts(w), reps);
    std::printf("bench_simd    %u groups x %u threads x 16 SIMD exchanges, %u worker(s): %.2f ms\n", G, T, w, ms);
  }
  {
    Bufs c;
    const uint32_t n = G * T;
    c.add<float>(n, 1.0f);
    c.add<float>(n, 0.0f);
    *c.add<uint32_t>(1) = n;
    double plain = time_dispatch(m, "copy", c, threads(n, 1, 1, T, 1, 1), opts(1), reps);
    double fib = time_dispatch(m, "copy", c, threads(n, 1, 1, T, 1, 1), opts(1, Schedule::Forward, 0, true), reps);
    std::printf("copy %u threads, 1 worker: plain loop %.2f ms, forceFibers %.2f ms\n", n, plain, fib);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: runtime_test MODULE_DIR [--no-bench] [--quick]\n");
    return 2;
  }
  std::string dir = argv[1];
  bool no_bench = false, quick = false;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-bench") == 0) no_bench = true;
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
  }
  std::printf("fiber implementation: %s, hardware concurrency %u\n", fiber_impl_name(), hardware_concurrency());
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // (progress shows up before a sanitizer abort)
  install_prev_handler();
  test_load(dir);
  {
    std::shared_ptr<Module> m = Module::load(dir + "/test_kernels.so");
    struct T {
      const char *name;
      std::function<void()> fn;
    } tests[] = {
        {"copy", [&] { test_copy(*m); }},
        {"reduce", [&] { test_reduce(*m); }},
        {"simd", [&] { test_simd(*m); }},
        {"tg_static", [&] { test_tg_static(*m); }},
        {"validation", [&] { test_validation(*m); }},
        {"fail", [&] { test_fail(*m); }},
        {"divergent", [&] { test_divergent(*m); }},
        {"coverage", [&] { test_coverage(*m); }},
        {"schedules", [&] { test_schedules(*m); }},
        {"concurrent", [&] { test_concurrent(*m); }},
        {"deep_stack", [&] { test_deep_stack(*m); }},
        {"fpenv", [&] { test_fpenv(*m); }},
        {"guard", [&] { test_guard(*m); }},
        {"watchdog", [&] { test_watchdog(*m); }},
        {"traps", [&] { test_traps(*m); }},
        {"chain", [&] { test_chain(*m); }},
    };
    for (auto &t : tests) {
      int before = g_failures;
      t.fn();
      std::printf("%-12s %s\n", t.name, g_failures == before ? "ok" : "FAILED");
    }
    if (!no_bench) bench(*m, quick);
  }
  shutdown_pool();
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
