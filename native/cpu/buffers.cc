// buffers.cc: aligned and guarded buffers of the CPU runtime (runtime.h).
#include "cpu_internal.h"

namespace moe {
namespace cpu {

std::string strprintf(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return std::string();
  if (size_t(n) < sizeof buf) return std::string(buf, size_t(n));
  std::string s(size_t(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(&s[0], s.size(), fmt, ap);
  va_end(ap);
  s.resize(size_t(n));
  return s;
}


}  // namespace cpu

using namespace cpu;


unsigned hardware_concurrency() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

AlignedBuffer::AlignedBuffer(uint64_t size) : size_(size) {
  uint64_t alloc = round_up(size == 0 ? 1 : size, 64);
  void *p = nullptr;
  if (alloc > SIZE_MAX || posix_memalign(&p, 64, size_t(alloc)) != 0 || p == nullptr) {
    throw std::runtime_error(strprintf("out of memory allocating a buffer of %llu bytes", (unsigned long long)size));
  }
  data_ = static_cast<uint8_t *>(p);
  // Bytes past the end up to the 64-byte boundary are defined (zero).
  if (alloc > size) std::memset(data_ + size, 0, size_t(alloc - size));
}
AlignedBuffer::~AlignedBuffer() { std::free(data_); }
AlignedBuffer::AlignedBuffer(AlignedBuffer &&o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}
AlignedBuffer &AlignedBuffer::operator=(AlignedBuffer &&o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

// ---------------------------------------------------------------------------
// Guarded buffers (runtime.h). One mapping per buffer, reserved PROT_NONE
// with MAP_NORESERVE (address space only), then the data pages made
// readable and writable.
// ---------------------------------------------------------------------------

static constexpr size_t kLeadGuard = 64 * 1024;
static constexpr uint64_t kBigTrailGuard = uint64_t(64) << 30;  // 64 GiB of address space
static constexpr size_t kSmallTrailGuard = 64 * 1024;

// Canary of the slack bytes: BA at even addresses, 7F at odd ones (u32
// 0x7FBA7FBA, a NaN; bf16 and f16 0x7FBA are NaNs too).
static inline uint8_t canary_byte(const uint8_t *p) { return (reinterpret_cast<uintptr_t>(p) & 1) ? 0x7F : 0xBA; }

GuardedBuffer::GuardedBuffer(uint64_t size) : size_(size) {
  const size_t ps = page_size();
  const uint64_t size16 = round_up(size, 16);
  const uint64_t pages = std::max<uint64_t>(ps, round_up(size16, ps));
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
  flags |= MAP_NORESERVE;
#endif
  void *m = MAP_FAILED;
  size_t len = 0;
  if (size16 < size || pages > uint64_t(SIZE_MAX) / 2) {
    throw std::runtime_error(strprintf("cannot map a buffer of %llu bytes: too large", (unsigned long long)size));
  }
  for (uint64_t trail : {kBigTrailGuard, uint64_t(kSmallTrailGuard)}) {
    if (sizeof(void *) < 8 && trail > kSmallTrailGuard) continue;
    len = size_t(kLeadGuard + pages + trail);
    m = mmap(nullptr, len, PROT_NONE, flags, -1, 0);
    if (m != MAP_FAILED) break;
  }
  if (m == MAP_FAILED) {
    throw std::runtime_error(strprintf("cannot map a buffer of %llu bytes: %s", (unsigned long long)size,
                                       std::strerror(errno)));
  }
  uint8_t *lo = static_cast<uint8_t *>(m) + kLeadGuard;
  if (mprotect(lo, size_t(pages), PROT_READ | PROT_WRITE) != 0) {
    int e = errno;
    munmap(m, len);
    throw std::runtime_error(strprintf("cannot map a buffer of %llu bytes: %s", (unsigned long long)size,
                                       std::strerror(e)));
  }
  map_ = m;
  map_len_ = len;
  page_lo_ = lo;
  page_hi_ = lo + pages;
  data_ = page_hi_ - size16;
  reset_canary();
}

GuardedBuffer::~GuardedBuffer() {
  if (map_ != nullptr) munmap(map_, map_len_);
}

GuardedBuffer::GuardedBuffer(GuardedBuffer &&o) noexcept
    : map_(o.map_), map_len_(o.map_len_), page_lo_(o.page_lo_), page_hi_(o.page_hi_), data_(o.data_), size_(o.size_) {
  o.map_ = nullptr;
  o.map_len_ = 0;
  o.page_lo_ = o.page_hi_ = o.data_ = nullptr;
  o.size_ = 0;
}

GuardedBuffer &GuardedBuffer::operator=(GuardedBuffer &&o) noexcept {
  if (this != &o) {
    if (map_ != nullptr) munmap(map_, map_len_);
    map_ = o.map_;
    map_len_ = o.map_len_;
    page_lo_ = o.page_lo_;
    page_hi_ = o.page_hi_;
    data_ = o.data_;
    size_ = o.size_;
    o.map_ = nullptr;
    o.map_len_ = 0;
    o.page_lo_ = o.page_hi_ = o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

void GuardedBuffer::reset_canary() const {
  if (map_ == nullptr) return;
  for (uint8_t *p = page_lo_; p < data_; ++p) *p = canary_byte(p);
  for (uint8_t *p = data_ + size_; p < page_hi_; ++p) *p = canary_byte(p);
}

bool GuardedBuffer::canary_damage(int64_t *first, int64_t *last) const {
  if (map_ == nullptr) return false;
  bool hit = false;
  auto scan = [&](uint8_t *a, uint8_t *b) {
    for (uint8_t *p = a; p < b; ++p) {
      if (*p == canary_byte(p)) continue;
      int64_t off = int64_t(p - data_);
      if (!hit) *first = off;
      *last = off;
      hit = true;
    }
  };
  scan(page_lo_, data_);
  scan(data_ + size_, page_hi_);
  return hit;
}


}  // namespace moe
