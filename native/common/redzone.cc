// redzone.cc — see redzone.h.
#include "redzone.h"

#include <cstdlib>
#include <cstring>

namespace moe_redzone {

uint64_t guard_bytes(uint64_t size) {
  uint64_t g = size > kMaxGuard ? kMaxGuard : (size + 255) / 256 * 256;
  return g < kMinGuard ? kMinGuard : g;
}

bool enabled_by_env() {
  const char *v = std::getenv("MOE_GPU_REDZONES");
  return !(v != nullptr && std::strcmp(v, "0") == 0);
}

uint64_t seed_of(uint32_t index, Side side) {
  return 0x6d6f652d72656473ull ^ (uint64_t(index) << 1 | uint64_t(side));
}

namespace {

// splitmix64: one 64-bit word of the pattern per 8 guard bytes.
uint64_t word(uint64_t seed, uint64_t k) {
  uint64_t z = seed + (k + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint8_t pattern_byte(uint64_t seed, uint64_t i, uint64_t *cache_k, uint64_t *cache_w) {
  const uint64_t k = i >> 3;
  if (k != *cache_k) {
    *cache_k = k;
    *cache_w = word(seed, k);
  }
  uint8_t b = uint8_t(*cache_w >> ((i & 7) * 8));
  // Never 0x00 or 0xff (what a stray memset, a zeroing kernel or -1 writes)
  // and never a byte of a NaN canary's 0x7fc00000 pattern: such writes
  // always change the guard.
  if (b == 0x00 || b == 0xff || b == 0x7f || b == 0xc0) b ^= 0x5a;
  return b;
}

}  // namespace

void fill(uint8_t *guard, uint64_t n, uint64_t seed) {
  uint64_t ck = ~uint64_t(0), cw = 0;
  for (uint64_t i = 0; i < n; ++i) guard[i] = pattern_byte(seed, i, &ck, &cw);
}

Damage scan(const uint8_t *guard, uint64_t n, uint64_t seed) {
  Damage d;
  uint64_t ck = ~uint64_t(0), cw = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (guard[i] == pattern_byte(seed, i, &ck, &cw)) continue;
    if (d.count == 0) d.first = i;
    d.last = i;
    d.count++;
  }
  return d;
}

std::string label(uint32_t index, const std::string &name) {
  std::string s = "buffer(" + std::to_string(index) + ")";
  if (!name.empty()) s += " '" + name + "'";
  return s;
}

std::string describe(const std::string &label, uint64_t size, uint64_t guard, const Damage &before, const Damage &after,
                     const std::string &where) {
  if (before.count == 0 && after.count == 0) return "";
  // Offsets from the buffer's start: the guard before it ends at -1, the one
  // after it starts at `size`.
  const long long g = (long long)guard, sz = (long long)size;
  long long first = 0, last = 0;
  const char *side;
  if (before.count > 0 && after.count > 0) {
    side = "before the start and past the end of";
    first = (long long)before.first - g;
    last = sz + (long long)after.last;
  } else if (before.count > 0) {
    side = "before the start of";
    first = (long long)before.first - g;
    last = (long long)before.last - g;
  } else {
    side = "past the end of";
    first = sz + (long long)after.first;
    last = sz + (long long)after.last;
  }
  std::string changed = std::to_string(before.count + after.count) + " bytes changed";
  if (before.count > 0 && after.count > 0) {
    changed += ": " + std::to_string(before.count) + " before, " + std::to_string(after.count) + " after";
  }
  return "out-of-bounds write " + std::string(side) + " " + label + ": bytes at offsets " + std::to_string(first) + ".." +
         std::to_string(last) + " were overwritten (" + changed + "; the buffer has " + std::to_string(sz) +
         " bytes; found by its redzones of " + std::to_string(g) +
         " bytes after the dispatch, so the thread is not known" + (where.empty() ? "" : "; " + where) + ")";
}

}  // namespace moe_redzone
