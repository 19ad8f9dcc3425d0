// fake_metal.cc — a recording fake of native/metal/metal_c_api.h for the Linux
// tests (see fake_metal.h). It also checks what metal_c_api.h says callers
// guarantee (setBytes sizes, threadgroup sizes and memory, non-zero grids):
// a violation is an error naming the broken promise, so a glue bug cannot
// hide behind the fake.
#include "fake_metal.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../../metal/metal_c_api.h"

namespace {

struct Profile {
  const char *key;
  const char *name;
  uint32_t families;
  uint32_t msl;
  bool kernels_work;
  bool simd16;
  bool compile_error;
  bool cb_error;
  bool device;
};

constexpr uint32_t kModern = MOE_MTL_FAMILY_APPLE5 | MOE_MTL_FAMILY_APPLE6 | MOE_MTL_FAMILY_APPLE7 |
                             MOE_MTL_FAMILY_APPLE8 | MOE_MTL_FAMILY_MAC2 | MOE_MTL_FAMILY_METAL3;

const Profile kProfiles[] = {
    {"m2", "Fake Apple M2 (moe_metal_fake)", kModern, 31, true, false, false, false, true},
    {"paravirtual", "Apple Paravirtual device", MOE_MTL_FAMILY_APPLE5, 31, false, false, false, false, true},
    {"no-msl31", "Fake Apple M1 on macOS 13 (moe_metal_fake)", kModern & ~MOE_MTL_FAMILY_APPLE8, 30, true, false, false,
     false, true},
    {"broken-simd", "Fake broken GPU (moe_metal_fake)", kModern, 31, true, true, false, false, true},
    {"compile-error", "Fake Apple M2 (moe_metal_fake)", kModern, 31, true, false, true, false, true},
    {"cb-error", "Fake Apple M2 (moe_metal_fake)", kModern, 31, true, false, false, true, true},
    {"no-device", "", 0, 0, false, false, false, false, false},
};

std::mutex g_mutex;
const Profile *g_profile = nullptr;
std::string g_bad_profile;
std::vector<std::string> g_calls;

const Profile *find_profile(const std::string &key) {
  for (const Profile &p : kProfiles) {
    if (key == p.key) return &p;
  }
  return nullptr;
}

// The current profile (from MOE_FAKE_METAL on first use); nullptr for an unknown name. Needs g_mutex.
const Profile *current() {
  if (g_profile == nullptr && g_bad_profile.empty()) {
    const char *env = std::getenv("MOE_FAKE_METAL");
    std::string key = env != nullptr && env[0] != '\0' ? env : "m2";
    g_profile = find_profile(key);
    if (g_profile == nullptr) g_bad_profile = key;
  }
  return g_profile;
}

void log_call(const std::string &s) { g_calls.push_back(s); }

int fail(char *err, size_t errlen, const std::string &msg) {
  if (err != nullptr && errlen > 0) std::snprintf(err, errlen, "%s", msg.c_str());
  return 1;
}

struct FakePipeline {
  std::string entry;
  MoeMetalPipelineInfo info;
  std::string store_line;  // "LINE:COL" of the planted bug's store in the source (shader validation's location)
};

// [[max_total_threads_per_threadgroup(N)]] in the source lowers the pipeline's limit, as on Metal.
uint32_t max_threads_of(const char *source) {
  const char *attr = std::strstr(source, "max_total_threads_per_threadgroup(");
  if (attr == nullptr) return 1024;
  long n = std::strtol(attr + std::strlen("max_total_threads_per_threadgroup("), nullptr, 10);
  return n > 0 && n <= 1024 ? uint32_t(n) : 1024;
}

// "LINE:COL" of the first use of the identifier `word` outside comments (not inside a longer identifier), or "".
std::string locate_ident(const char *source, const char *word) {
  size_t len = std::strlen(word);
  int line = 1, col = 1;
  bool line_comment = false, block_comment = false;
  for (const char *p = source; *p != '\0'; ++p) {
    if (!line_comment && !block_comment && p[0] == '/' && (p[1] == '/' || p[1] == '*')) {
      (p[1] == '/' ? line_comment : block_comment) = true;
    } else if (block_comment && p[0] == '*' && p[1] == '/') {
      block_comment = false;
    } else if (line_comment && *p == '\n') {
      line_comment = false;
    }
    bool before_ok = p == source || !(std::isalnum((unsigned char)p[-1]) || p[-1] == '_');
    if (!line_comment && !block_comment && before_ok && std::strncmp(p, word, len) == 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%d:%d", line, col);
      return buf;
    }
    if (*p == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "";
}

std::string dims(const uint32_t d[3]) {
  return std::to_string(d[0]) + "x" + std::to_string(d[1]) + "x" + std::to_string(d[2]);
}

// Host memory of each [[buffer(n)]] of one dispatch (aliases resolved).
struct Args {
  std::map<uint32_t, std::pair<uint8_t *, uint64_t>> by_index;
  std::map<uint32_t, uint64_t> guard;  // redzone bytes on each side of a buffer binding (writable by a stray store)
  template <class T>
  T *get(uint32_t index, uint64_t count, std::string *why) const {
    auto it = by_index.find(index);
    if (it == by_index.end()) {
      *why = "buffer(" + std::to_string(index) + ") is not bound";
      return nullptr;
    }
    if (it->second.second < count * sizeof(T)) {
      *why = "buffer(" + std::to_string(index) + ") has " + std::to_string(it->second.second) + " bytes, the kernel reads " +
             std::to_string(count * sizeof(T));
      return nullptr;
    }
    return reinterpret_cast<T *>(it->second.first);
  }
};

float bf16_round_trip(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    u |= 0x00400000u;  // NaN stays NaN (quiet)
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  }
  u &= 0xffff0000u;
  float out;
  std::memcpy(&out, &u, 4);
  return out;
}

// One dispatch of an emulated kernel; false (with why) when its buffers do not fit. Unknown entries have no effect.
bool emulate(const std::string &entry, const Args &a, const MoeMetalLaunch &l, bool simd16, std::string *why) {
  const uint64_t threads = l.mode == 0 ? uint64_t(l.grid[0]) : uint64_t(l.grid[0]) * l.tg[0];
  if (entry == "selftest_copy") {
    const uint32_t *in = a.get<uint32_t>(0, threads, why);
    uint32_t *out = a.get<uint32_t>(1, threads, why);
    if (in == nullptr || out == nullptr) return false;
    for (uint64_t i = 0; i < threads; ++i) out[i] = in[i] ^ 0x5a5a5a5au;
  } else if (entry == "selftest_barrier_sum") {
    const uint64_t groups = l.grid[0], per = l.tg[0];
    const uint32_t *in = a.get<uint32_t>(0, groups * per, why);
    uint32_t *out = a.get<uint32_t>(1, groups, why);
    if (in == nullptr || out == nullptr) return false;
    for (uint64_t g = 0; g < groups; ++g) {
      uint32_t s = 0;
      for (uint64_t t = 0; t < per; ++t) s += in[g * per + t];
      out[g] = s;
    }
  } else if (entry == "selftest_simd") {
    const uint64_t width = simd16 ? 16 : 32;
    const uint32_t *in = a.get<uint32_t>(0, threads, why);
    uint32_t *out = a.get<uint32_t>(1, threads, why);
    if (in == nullptr || out == nullptr) return false;
    for (uint64_t i = 0; i < threads; ++i) {
      uint64_t base = i / width * width;
      uint32_t s = 0;
      for (uint64_t j = base; j < base + width && j < threads; ++j) s += in[j];
      out[i] = s * 1000u;
    }
  } else if (entry == "selftest_bfloat") {
    const float *in = a.get<float>(0, threads, why);
    float *out = a.get<float>(1, threads, why);
    if (in == nullptr || out == nullptr) return false;
    for (uint64_t i = 0; i < threads; ++i) out[i] = bf16_round_trip(in[i]);
  } else if (entry == "zero_buffer") {
    const uint32_t *p = a.get<uint32_t>(1, 1, why);
    if (p == nullptr) return false;
    const uint64_t n = std::min<uint64_t>(p[0], threads);
    float *buf = a.get<float>(0, n, why);
    if (buf == nullptr) return false;
    for (uint64_t i = 0; i < n; ++i) buf[i] = 0.0f;
  } else if (entry == "zero_buffer_oob_write" || entry == "zero_buffer_oob_before") {
    // Planted bugs of test/shaders/zero-buffer: one float past the end, or
    // one before the start. A store the host memory cannot take (no guard
    // there, MOE_GPU_REDZONES=0) is dropped, as a GPU may drop it.
    const uint32_t *p = a.get<uint32_t>(1, 1, why);
    if (p == nullptr) return false;
    const uint64_t n = std::min<uint64_t>(p[0], threads);
    auto it = a.by_index.find(0);
    if (it == a.by_index.end()) {
      *why = "buffer(0) is not bound";
      return false;
    }
    uint8_t *base = it->second.first;
    const uint64_t size = it->second.second;
    const uint64_t guard = a.guard.count(0) ? a.guard.at(0) : 0;
    const float zero = 0.0f;
    for (uint64_t i = 0; i < n && 4 * i + 4 <= size; ++i) std::memcpy(base + 4 * i, &zero, 4);
    if (entry == "zero_buffer_oob_write" && 4 * n + 4 <= size + guard) std::memcpy(base + 4 * n, &zero, 4);
    if (entry == "zero_buffer_oob_before" && guard >= 4) std::memcpy(base - 4, &zero, 4);
  } else if (entry == "moe_accumulate") {
    const uint8_t *raw = reinterpret_cast<const uint8_t *>(a.get<uint32_t>(2, 2, why));
    if (raw == nullptr) return false;
    uint32_t n;
    float w;
    std::memcpy(&n, raw, 4);
    std::memcpy(&w, raw + 4, 4);
    const uint64_t count = std::min<uint64_t>(n, threads);
    float *acc = a.get<float>(0, count, why);
    const float *x = a.get<float>(1, count, why);
    if (acc == nullptr || x == nullptr) return false;
    for (uint64_t i = 0; i < count; ++i) acc[i] = std::fma(w, x[i], acc[i]);
  }
  return true;
}

}  // namespace

namespace moe_fake_metal {

bool set_profile(const std::string &name, std::string *why) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Profile *p = find_profile(name);
  if (p == nullptr) {
    *why = "unknown fake Metal profile '" + name + "'";
    return false;
  }
  g_profile = p;
  g_bad_profile.clear();
  g_calls.clear();
  return true;
}

std::string profile() {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Profile *p = current();
  return p != nullptr ? p->key : g_bad_profile;
}

std::vector<std::string> calls() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_calls;
}

void clear_calls() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_calls.clear();
}

}  // namespace moe_fake_metal

extern "C" {

int moe_metal_device_info(MoeMetalDeviceInfo *out, char *err, size_t errlen) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Profile *p = current();
  log_call("device_info");
  if (p == nullptr) return fail(err, errlen, "MOE_FAKE_METAL: unknown profile '" + g_bad_profile + "'");
  if (!p->device) return fail(err, errlen, "no Metal device: MTLCreateSystemDefaultDevice and MTLCopyAllDevices found none");
  std::memset(out, 0, sizeof *out);
  std::snprintf(out->name, sizeof out->name, "%s", p->name);
  out->max_threads_per_threadgroup = 1024;
  out->recommended_working_set = 11453251584ull;
  out->unified_memory = 1;
  out->families = p->families;
  out->msl_version = p->msl;
  out->max_threadgroup_memory = 32768;
  return 0;
}

int moe_metal_compile(const char *source, const char *entry, uint32_t fast_math, void **pipeline,
                      MoeMetalPipelineInfo *info, char *err, size_t errlen) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Profile *p = current();
  log_call(std::string("compile ") + entry + " msl=" + std::to_string(p != nullptr ? p->msl : 0) +
           " fast_math=" + std::to_string(fast_math));
  if (p == nullptr || !p->device) return fail(err, errlen, "no Metal device");
  if (p->compile_error) return fail(err, errlen, "program_source:3:9: error: use of undeclared identifier 'oops'");
  if (p->msl < 31) {
    std::string at = locate_ident(source, "bfloat");
    if (!at.empty()) return fail(err, errlen, "program_source:" + at + ": error: unknown type name 'bfloat'");
  }
  if (locate_ident(source, entry).empty()) {
    return fail(err, errlen, std::string("no function named '") + entry + "' in the compiled library");
  }
  // The planted bugs' faulting stores (test/shaders/zero-buffer), for shader validation's location.
  const char *store = std::strcmp(entry, "zero_buffer_oob_before") == 0 ? "buffer[int(gid) - 1]" : "buffer[gid + 1]";
  FakePipeline *fp = new FakePipeline{entry, {}, locate_ident(source, store)};
  if (fp->store_line.empty()) fp->store_line = "1:1";
  fp->info.exec_width = 32;
  fp->info.max_threads = max_threads_of(source);
  fp->info.static_threadgroup_memory = std::strcmp(entry, "selftest_barrier_sum") == 0 ? 1024 : 0;
  *info = fp->info;
  *pipeline = fp;
  return 0;
}

void moe_metal_release(void *pipeline) {
  if (pipeline == nullptr) return;
  FakePipeline *fp = static_cast<FakePipeline *>(pipeline);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    log_call("release " + fp->entry);
  }
  delete fp;
}

int moe_metal_dispatch(void *pipeline, const MoeMetalBinding *bindings, uint32_t n_bindings,
                       const MoeMetalLaunch *launch, uint32_t warmup, uint32_t per_batch, uint32_t batches,
                       double *ns_per_batch, char *err, size_t errlen) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Profile *p = current();
  const FakePipeline *fp = static_cast<const FakePipeline *>(pipeline);
  log_call("dispatch " + fp->entry + " mode=" + (launch->mode == 0 ? "threads" : "threadgroups") +
           " grid=" + dims(launch->grid) + " tg=" + dims(launch->tg) + " warmup=" + std::to_string(warmup) +
           " per_batch=" + std::to_string(per_batch) + " batches=" + std::to_string(batches));
  Args args;
  for (uint32_t i = 0; i < n_bindings; ++i) {
    const MoeMetalBinding &b = bindings[i];
    if (b.is_bytes) {
      log_call("  setBytes index=" + std::to_string(b.index) + " length=" + std::to_string(b.size));
      if (b.size == 0 || b.size > 4096) return fail(err, errlen, "fake: contract: setBytes of " + std::to_string(b.size) + " bytes");
      args.by_index[b.index] = {static_cast<uint8_t *>(b.data), b.size};
    } else if (b.alias >= 0) {
      if (uint32_t(b.alias) >= i || bindings[b.alias].is_bytes || bindings[b.alias].alias >= 0) {
        return fail(err, errlen, "fake: contract: alias " + std::to_string(b.alias) + " of binding " + std::to_string(i));
      }
      log_call("  setBuffer index=" + std::to_string(b.index) + " same buffer as index=" +
               std::to_string(bindings[b.alias].index));
      args.by_index[b.index] = {static_cast<uint8_t *>(bindings[b.alias].data) + bindings[b.alias].guard, bindings[b.alias].size};
      args.guard[b.index] = bindings[b.alias].guard;
    } else {
      // length: the buffer's own bytes; with redzones the MTLBuffer holds a
      // guard on each side too and is bound at offset `guard`.
      log_call("  setBuffer index=" + std::to_string(b.index) + " length=" + std::to_string(b.size) + " storage=shared" +
               (b.guard > 0 ? " redzones=" + std::to_string(b.guard) : std::string()));
      if (b.data == nullptr) return fail(err, errlen, "fake: contract: buffer data is NULL");
      if (b.guard % 256 != 0) return fail(err, errlen, "fake: contract: a guard that is not a multiple of 256 bytes");
      // The kernel sees the buffer past its guard, as setBuffer:offset:atIndex: binds it.
      args.by_index[b.index] = {static_cast<uint8_t *>(b.data) + b.guard, b.size};
      args.guard[b.index] = b.guard;
    }
  }
  uint64_t tg_mem = 0;
  for (uint32_t i = 0; i < launch->n_tg_mem; ++i) {
    if (launch->tg_mem[i] == 0) continue;
    log_call("  setThreadgroupMemoryLength " + std::to_string(launch->tg_mem[i]) + " index=" + std::to_string(i));
    if (launch->tg_mem[i] % 16 != 0) return fail(err, errlen, "fake: contract: threadgroup memory not a multiple of 16");
    tg_mem += launch->tg_mem[i];
  }
  const uint64_t per_tg = uint64_t(launch->tg[0]) * launch->tg[1] * launch->tg[2];
  for (int k = 0; k < 3; ++k) {
    if (launch->grid[k] == 0 || launch->tg[k] == 0) return fail(err, errlen, "fake: contract: a zero grid or threadgroup");
  }
  if (per_tg > fp->info.max_threads) return fail(err, errlen, "fake: contract: threadgroup over maxTotalThreadsPerThreadgroup");
  if (tg_mem + fp->info.static_threadgroup_memory > 32768) return fail(err, errlen, "fake: contract: threadgroup memory over 32 KiB");
  if (per_batch == 0 || batches == 0) return fail(err, errlen, "fake: contract: no dispatches");
  if (p == nullptr || !p->device) return fail(err, errlen, "no Metal device");
  // Shader validation (MTL_SHADER_VALIDATION=1, as `moe verify --validate`
  // sets it for its child process): the planted out-of-bounds kernels fail
  // their command buffer with a function log, in the words metal_backend.mm
  // writes (metal_c_api.h).
  const char *validation = std::getenv("MTL_SHADER_VALIDATION");
  if (validation != nullptr && std::strcmp(validation, "1") == 0 &&
      (fp->entry == "zero_buffer_oob_write" || fp->entry == "zero_buffer_oob_before")) {
    return fail(err, errlen,
                "command buffer failed: Command buffer execution failed (fake shader validation)\n"
                "shader validation: " + fp->entry + " at program_source:" + fp->store_line +
                    ": Invalid device store executing kernel function \"" + fp->entry +
                    "\" encoder: \"0\", dispatch: 0, at offset " +
                    (fp->entry == "zero_buffer_oob_write" ? "past the end" : "before the start") + " of buffer(0)");
  }
  if (p->cb_error) {
    return fail(err, errlen,
                "command buffer failed: Execution of the command buffer was aborted due to an error during execution. "
                "Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)");
  }
  const uint64_t dispatches = uint64_t(warmup) + uint64_t(per_batch) * batches;
  if (p->kernels_work) {
    for (uint64_t d = 0; d < dispatches; ++d) {
      std::string why;
      if (!emulate(fp->entry, args, *launch, p->simd16, &why)) return fail(err, errlen, "fake kernel " + fp->entry + ": " + why);
    }
  }
  // A deterministic "GPU time": 1000 ns per dispatch, plus the batch number.
  if (ns_per_batch != nullptr) {
    for (uint32_t b = 0; b < batches; ++b) ns_per_batch[b] = 1000.0 * per_batch + b;
  }
  return 0;
}

}  // extern "C"
