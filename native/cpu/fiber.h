// fiber.h — minimal stackful fibers for the CPU runtime.
//
// A FiberCtx is a saved execution context. Switching is a hand-written
// assembly routine on x86-64 (SysV) and aarch64 (AAPCS64): it saves the
// callee-saved registers plus the stack pointer (and the floating-point
// control state: MXCSR + x87 control word on x86-64, FPCR on aarch64) on the
// old stack and restores them from the new one, so a switch is a few
// nanoseconds. On any other architecture, or when MOE_FIBER_UCONTEXT is
// defined, <ucontext.h> is used instead (slower: it also saves the signal
// mask with a system call).
//
// Under AddressSanitizer every switch is announced with
// __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber.
#ifndef MOE_FIBER_H
#define MOE_FIBER_H

#include <cstddef>
#include <cstdint>

#if !defined(MOE_FIBER_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define MOE_FIBER_UCONTEXT 1
#endif

#if defined(MOE_FIBER_UCONTEXT)
#if defined(__APPLE__) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700  // macOS only exposes the (deprecated) ucontext API with this
#endif
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MOE_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOE_FIBER_ASAN 1
#endif
#endif

namespace moe {

using FiberFn = void (*)(void *arg);

struct FiberCtx {
#if defined(MOE_FIBER_UCONTEXT)
  ucontext_t uc;
  void *keep = nullptr;  // fiber_switch's value while suspended
#else
  void *sp = nullptr;  // saved stack pointer (registers live on that stack)
#endif
  // Stack bounds (for AddressSanitizer; bottom = lowest address). For the
  // context of an OS thread they are learnt at the first switch away from it.
  const void *stack_bottom = nullptr;
  size_t stack_size = 0;
#if defined(MOE_FIBER_ASAN)
  void *asan_fake_stack = nullptr;
#endif
};

// Prepares `ctx` so that the first switch to it calls fn(arg) on the stack
// [stack_lo, stack_lo + size). fn must never return: it ends with fiber_exit.
void fiber_init(FiberCtx *ctx, void *stack_lo, size_t size, FiberFn fn, void *arg);

// Saves the current context into `from` and resumes `to`. Returns when some
// other context switches back to `from`, and then returns `keep`: the value
// travels in the saved frame, so a caller that needs a value after the switch
// can still end with `return fiber_switch(...)` (a tail call: no frame of its
// own stays on the fiber's stack while it waits).
#if !defined(MOE_FIBER_UCONTEXT) && !defined(MOE_FIBER_ASAN)
}  // namespace moe
extern "C" __attribute__((visibility("hidden"))) void *moe_ctx_switch(void **save_sp, void *new_sp, void *keep);
namespace moe {
inline void *fiber_switch(FiberCtx *from, FiberCtx *to, void *keep = nullptr) {
  return moe_ctx_switch(&from->sp, to->sp, keep);
}
#else
void *fiber_switch(FiberCtx *from, FiberCtx *to, void *keep = nullptr);
#endif

// Leaves the current context for good (`from` is never resumed) for `to`.
[[noreturn]] void fiber_exit(FiberCtx *from, FiberCtx *to);

// Must be the first call of every fiber function (before it touches its
// stack much): completes the switch that started the fiber.
void fiber_started();

// Marks a stack region as usable again after fibers on it were abandoned
// mid-call (AddressSanitizer may have left redzones poisoned). No-op without
// ASan.
void fiber_stack_reset(void *stack_lo, size_t size);

// After a non-local jump (siglongjmp out of a signal handler) from a fiber
// back into the code of context `to`, whose stack is current again: tells
// AddressSanitizer which stack this is. No-op without ASan.
void fiber_landed(FiberCtx *to);

// "x86-64 asm", "aarch64 asm" or "ucontext".
const char *fiber_impl_name();

}  // namespace moe

#endif  // MOE_FIBER_H
