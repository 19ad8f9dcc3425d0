// Plain C++ loop baselines for `npm run bench:cpu`: the bodies of the
// benchmarked kernels written as loops over the threads of each threadgroup,
// split at every barrier (each phase a loop over threads, SIMD-group
// collectives as loops over lanes), with no fibers. Threadgroups are spread
// over the same number of OS threads as the runtime uses.
//
//   loop_baselines softmax-topk TOKENS EXPERTS TOPK WORKERS ITERS
//   loop_baselines gelu-mul N WORKERS ITERS
// prints one line: "median_ns <value>" (median over ITERS dispatches).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

static void parallel_groups(unsigned groups, unsigned workers, void (*fn)(unsigned, void*), void* ctx) {
  std::atomic<unsigned> next{0};
  auto body = [&] {
    for (;;) {
      unsigned g = next.fetch_add(1);
      if (g >= groups) return;
      fn(g, ctx);
    }
  };
  std::vector<std::thread> ts;
  for (unsigned w = 1; w < workers; ++w) ts.emplace_back(body);
  body();
  for (auto& t : ts) t.join();
}

struct SoftmaxCtx {
  const float* logits;
  unsigned* ids;
  float* weights;
  unsigned ne, k, tg;
};

// (The kernel's register path, taken at 128 experts, computes the same maximum,
// exponentials and rounds in SIMD-group 0 alone; the work below is the same.)
static void softmax_group(unsigned token, void* vctx) {
  auto* c = static_cast<SoftmaxCtx*>(vctx);
  const unsigned ne = c->ne, k = c->k, tg = c->tg, nsg = (tg + 31) / 32;
  const float* row = c->logits + (size_t)token * ne;
  float prob[8192];
  float sel_val[64];
  unsigned sel_id[64];
  float part[1024];
  float scratch[32] = {};
  // phase 1: per-thread max, SIMD-group max, threadgroup max
  for (unsigned t = 0; t < tg; ++t) {
    float m = -INFINITY;
    for (unsigned e = t; e < ne; e += tg) m = std::max(m, row[e]);
    part[t] = m;
  }
  for (unsigned s = 0; s < nsg; ++s) {
    float m = -INFINITY;
    for (unsigned l = s * 32; l < std::min(tg, s * 32 + 32); ++l) m = std::max(m, part[l]);
    scratch[s] = m;
  }
  float m = scratch[0];
  for (unsigned s = 1; s < nsg; ++s) m = std::max(m, scratch[s]);
  // phase 2: exponentials
  for (unsigned t = 0; t < tg; ++t)
    for (unsigned e = t; e < ne; e += tg) prob[e] = std::exp(row[e] - m);
  // phase 3: SIMD-group 0 selects: per round, each lane's best of its experts,
  // the SIMD-group max of those, the lowest index holding it
  const unsigned w = std::min(32u, tg);
  float sum = 0.0f;
  for (unsigned r = 0; r < k; ++r) {
    float best[32] = {};
    unsigned best_i[32] = {};
    for (unsigned l = 0; l < w; ++l) {
      best[l] = -1.0f;
      best_i[l] = 0xffffffffu;
      for (unsigned e = l; e < ne; e += w)
        if (prob[e] > best[l]) best[l] = prob[e], best_i[l] = e;
    }
    float top = best[0];
    for (unsigned l = 1; l < w; ++l) top = std::max(top, best[l]);
    unsigned id = 0xffffffffu;
    for (unsigned l = 0; l < w; ++l)
      if (best[l] == top) id = std::min(id, best_i[l]);
    prob[id] = -1.0f;
    sel_val[r] = top;
    sel_id[r] = id;
    sum += top;
  }
  // phase 4: renormalise and write
  const float inv = 1.0f / sum;
  for (unsigned t = 0; t < k; ++t) {
    c->ids[token * k + t] = sel_id[t];
    c->weights[token * k + t] = sel_val[t] * inv;
  }
}

struct GeluCtx {
  const float* g;
  const float* u;
  float* o;
  unsigned n, tg;
};

static inline float gelu_tanh(float x) {
  const float k0 = 0.7978845608028654f;
  float inner = k0 * (x + 0.044715f * x * x * x);
  inner = std::min(std::max(inner, -15.0f), 15.0f);
  return 0.5f * x * (1.0f + std::tanh(inner));
}

static void gelu_group(unsigned group, void* vctx) {
  auto* c = static_cast<GeluCtx*>(vctx);
  for (unsigned t = 0; t < c->tg; ++t) {
    unsigned i = group * c->tg + t;
    if (i >= c->n) return;
    c->o[i] = gelu_tanh(c->g[i]) * c->u[i];
  }
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::srand(1);
  auto rnd = [] { return (float)std::rand() / RAND_MAX * 4.0f - 2.0f; };
  std::vector<double> times;
  if (!std::strcmp(argv[1], "softmax-topk") && argc == 7) {
    unsigned T = atoi(argv[2]), E = atoi(argv[3]), K = atoi(argv[4]), W = atoi(argv[5]), it = atoi(argv[6]);
    std::vector<float> logits((size_t)T * E), w((size_t)T * K);
    std::vector<unsigned> ids((size_t)T * K);
    for (auto& x : logits) x = rnd();
    SoftmaxCtx c{logits.data(), ids.data(), w.data(), E, K, std::min(E, 128u)};
    for (unsigned i = 0; i < it + 2; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      parallel_groups(T, W, softmax_group, &c);
      auto t1 = std::chrono::steady_clock::now();
      if (i >= 2) times.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
  } else if (!std::strcmp(argv[1], "gelu-mul") && argc == 5) {
    unsigned N = atoi(argv[2]), W = atoi(argv[3]), it = atoi(argv[4]);
    std::vector<float> g(N), u(N), o(N);
    for (unsigned i = 0; i < N; ++i) { g[i] = rnd(); u[i] = rnd(); }
    GeluCtx c{g.data(), u.data(), o.data(), N, 256};
    for (unsigned i = 0; i < it + 2; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      parallel_groups((N + 255) / 256, W, gelu_group, &c);
      auto t1 = std::chrono::steady_clock::now();
      if (i >= 2) times.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
  } else {
    std::fprintf(stderr, "usage: loop_baselines softmax-topk T E K WORKERS ITERS | gelu-mul N WORKERS ITERS\n");
    return 2;
  }
  std::printf("median_ns %.0f\n", median(times));
  return 0;
}
