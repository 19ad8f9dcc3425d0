// redzone.h — guard bytes around every GPU buffer (DESIGN.md, "GPU safety"),
// shared by the CUDA runtime (native/cuda), the Metal backend
// (native/metal/metal_backend.mm) and the recording fake of Metal
// (native/test/metal). Plain C++ over host bytes: where the guards live (a
// device allocation copied back, a shared-storage MTLBuffer's contents) is
// the caller's business.
//
// A buffer of `size` bytes is allocated as [before | the buffer | after],
// each guard guard_bytes(size) long and filled with a pattern seeded by the
// buffer's index and side. After the dispatch(es) both guards are scanned;
// a changed byte is an out-of-bounds write, reported in the words of the CPU
// backend's canary (native/cpu/pool.cc): which buffer, which side, the first
// and last byte offset changed (relative to the buffer's start, negative
// before it) and how many bytes changed.
//
// MOE_GPU_REDZONES=0 turns the guards off (for measuring what they cost,
// e.g. `moe bench` with and without); anything else leaves them on.
#ifndef MOE_COMMON_REDZONE_H
#define MOE_COMMON_REDZONE_H

#include <cstdint>
#include <string>

namespace moe_redzone {

// Each side: at least 4 KiB; up to the buffer's own size (rounded up to 256
// bytes) while that stays cheap to copy back, 64 KiB at most.
constexpr uint64_t kMinGuard = 4096;
constexpr uint64_t kMaxGuard = 65536;
uint64_t guard_bytes(uint64_t size);

// False when MOE_GPU_REDZONES is "0".
bool enabled_by_env();

enum Side { kBefore = 0, kAfter = 1 };

// The pattern seed of buffer index `index`, side `side`.
uint64_t seed_of(uint32_t index, Side side);

// Fills n guard bytes with the pattern of `seed`.
void fill(uint8_t *guard, uint64_t n, uint64_t seed);

struct Damage {
  uint64_t count = 0;             // bytes that differ from the pattern
  uint64_t first = 0, last = 0;   // their first and last position in the guard
};

// Compares n guard bytes with the pattern of `seed`.
Damage scan(const uint8_t *guard, uint64_t n, uint64_t seed);

// "" when neither guard changed, else the report, e.g.
//   out-of-bounds write past the end of buffer(0) 'buffer': bytes at offsets
//   8192..8195 were overwritten (4 bytes changed; the buffer has 8192 bytes;
//   found by its redzones of 4096 bytes after the dispatch, so the thread is
//   not known)
// `label` names the buffer ("buffer(0) 'buffer'"); `where` is appended to the
// parenthesis when not empty (e.g. "in copy 3 of the buffers timed").
std::string describe(const std::string &label, uint64_t size, uint64_t guard, const Damage &before, const Damage &after,
                     const std::string &where = "");

// "buffer(i) 'name'", or "buffer(i)" without a name.
std::string label(uint32_t index, const std::string &name);

}  // namespace moe_redzone

#endif  // MOE_COMMON_REDZONE_H
