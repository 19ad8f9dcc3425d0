// redzone_check.h — the redzones of the CUDA backend's device buffers
// (native/common/redzone.h): each buffer of a dispatch is one cuMemAlloc of
// [guard | buffer | guard]; the guards are filled with their seeded pattern
// by a copy from the host when the buffer is made, and copied back and
// scanned after the dispatch (after the whole timed series when timing:
// every copy of the buffers rotated through the L2, graph replays included).
// The copy back is 2 × 4 KiB (64 KiB at most) per buffer: cheaper and simpler
// than a check kernel, and exact. Used by cuda_runtime.cc only.
#ifndef MOE_CUDA_REDZONE_CHECK_H
#define MOE_CUDA_REDZONE_CHECK_H

#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/redzone.h"
#include "cuda_api.h"
#include "cuda_runtime.h"

namespace moe {
namespace cuda {

// Guard bytes per side for a buffer of `size` bytes (0: redzones off).
inline uint64_t redzone_guard(const DispatchOptions &o, uint64_t size) {
  return o.redzones ? moe_redzone::guard_bytes(size) : 0;
}

class Redzones {
 public:
  // Fills the guards of the buffer at `user` (its allocation starts `guard`
  // bytes before it) of [[buffer(index)]], copy `copy` of the rotation.
  void add(const cu::DriverApi &c, uint32_t index, unsigned copy, cu::CUdeviceptr user, uint64_t size, uint64_t guard) {
    Zone z{index, copy, user, size, guard};
    std::vector<uint8_t> &pb = pattern(index, moe_redzone::kBefore, guard);
    std::vector<uint8_t> &pa = pattern(index, moe_redzone::kAfter, guard);
    put(c, c.cuMemcpyHtoD(user - guard, pb.data(), guard));
    put(c, c.cuMemcpyHtoD(user + size, pa.data(), guard));
    zones_.push_back(z);
  }

  // Copies every guard back; "" when all are intact, else the report of the
  // first damaged buffer (and how many others are).
  std::string check(const cu::DriverApi &c, const std::vector<std::string> &names) {
    std::string first;
    unsigned more = 0;
    std::vector<uint8_t> host;
    for (const Zone &z : zones_) {
      host.resize(z.guard);
      put(c, c.cuMemcpyDtoH(host.data(), z.user - z.guard, z.guard));
      const moe_redzone::Damage before =
          moe_redzone::scan(host.data(), z.guard, moe_redzone::seed_of(z.index, moe_redzone::kBefore));
      put(c, c.cuMemcpyDtoH(host.data(), z.user + z.size, z.guard));
      const moe_redzone::Damage after =
          moe_redzone::scan(host.data(), z.guard, moe_redzone::seed_of(z.index, moe_redzone::kAfter));
      if (before.count == 0 && after.count == 0) continue;
      if (!first.empty()) {
        more++;
        continue;
      }
      const std::string name = z.index < names.size() ? names[z.index] : std::string();
      const std::string where =
          z.copy > 0 ? "in copy " + std::to_string(z.copy) + " of the buffers rotated through the cache for timing" : "";
      first = moe_redzone::describe(moe_redzone::label(z.index, name), z.size, z.guard, before, after, where);
    }
    if (more > 0) first += " (and the redzones of " + std::to_string(more) + " more buffer copies changed)";
    return first;
  }

 private:
  struct Zone {
    uint32_t index;
    unsigned copy;
    cu::CUdeviceptr user;
    uint64_t size, guard;
  };
  static void put(const cu::DriverApi &, cu::CUresult r) {
    if (r != cu::CUDA_SUCCESS) throw std::runtime_error("redzone copy failed (CUDA error " + std::to_string(r) + ")");
  }
  std::vector<uint8_t> &pattern(uint32_t index, moe_redzone::Side side, uint64_t guard) {
    for (Pattern &p : patterns_) {
      if (p.index == index && p.side == side && p.bytes.size() == guard) return p.bytes;
    }
    patterns_.push_back(Pattern{index, side, std::vector<uint8_t>(guard)});
    moe_redzone::fill(patterns_.back().bytes.data(), guard, moe_redzone::seed_of(index, side));
    return patterns_.back().bytes;
  }
  struct Pattern {
    uint32_t index;
    moe_redzone::Side side;
    std::vector<uint8_t> bytes;
  };
  std::vector<Zone> zones_;
  std::deque<Pattern> patterns_;  // (a deque: references to its elements stay valid)
};

}  // namespace cuda
}  // namespace moe

#endif  // MOE_CUDA_REDZONE_CHECK_H
