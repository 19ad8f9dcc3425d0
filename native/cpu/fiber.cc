// fiber.cc — context switch for the fibers of the CPU runtime (see fiber.h).
#include "fiber.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(MOE_FIBER_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace moe {

#if defined(MOE_FIBER_ASAN)
// The context that performed the switch we are completing.
static thread_local FiberCtx *t_switch_from = nullptr;
// Between __sanitizer_start_switch_fiber and __sanitizer_finish_switch_fiber
// (a signal handler may leave a switch there: see fiber_landed).
static thread_local bool t_in_switch = false;

static void asan_start(FiberCtx *from, FiberCtx *to, bool dying) {
  t_switch_from = from;
  t_in_switch = true;
  __sanitizer_start_switch_fiber(dying ? nullptr : &from->asan_fake_stack, to->stack_bottom, to->stack_size);
}

static void asan_finish(void *fake_stack) {
  const void *bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
  t_in_switch = false;
  if (t_switch_from != nullptr) {
    t_switch_from->stack_bottom = bottom;
    t_switch_from->stack_size = size;
  }
}
#endif

void fiber_stack_reset(void *stack_lo, size_t size) {
#if defined(MOE_FIBER_ASAN)
  __asan_unpoison_memory_region(stack_lo, size);
#else
  (void)stack_lo;
  (void)size;
#endif
}

void fiber_started() {
#if defined(MOE_FIBER_ASAN)
  asan_finish(nullptr);
#endif
}

void fiber_landed(FiberCtx *to) {
#if defined(MOE_FIBER_ASAN)
  // A switch the jump interrupted is completed first (ASan allows one at a
  // time); then the abandoned fiber's stack is left as "dying" (no fake stack
  // to save) for the stack of `to`.
  t_switch_from = nullptr;
  if (t_in_switch) __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
  __sanitizer_start_switch_fiber(nullptr, to->stack_bottom, to->stack_size);
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
  t_in_switch = false;
#else
  (void)to;
#endif
}

}  // namespace moe

#if !defined(MOE_FIBER_UCONTEXT)

// ---------------------------------------------------------------------------
// Hand-written switch.
//
//   void *moe_ctx_switch(void **save_sp, void *new_sp, void *keep);
//
// pushes the callee-saved state and `keep` on the current stack, stores the
// stack pointer in *save_sp, loads new_sp, pops the state saved there and
// returns (in the resumed context) the `keep` saved there. fiber_init
// prepares a new fiber's stack so that the "return" lands in moe_fiber_tramp
// with the function and its argument in callee-saved registers.
// ---------------------------------------------------------------------------

#if defined(__APPLE__)
#define MOE_ASM_SYM(name) "_" #name
#define MOE_ASM_FUNC(name) \
  ".text\n.globl " MOE_ASM_SYM(name) "\n.private_extern " MOE_ASM_SYM(name) "\n.p2align 4\n" MOE_ASM_SYM(name) ":\n"
#define MOE_ASM_END(name) ""
#else
#define MOE_ASM_SYM(name) #name
#define MOE_ASM_FUNC(name)                                                                           \
  ".pushsection .text\n.globl " MOE_ASM_SYM(name) "\n.hidden " MOE_ASM_SYM(name) "\n.type " MOE_ASM_SYM(name) \
  ",%function\n.p2align 4\n" MOE_ASM_SYM(name) ":\n"
#define MOE_ASM_END(name) ".size " MOE_ASM_SYM(name) ", .-" MOE_ASM_SYM(name) "\n.popsection\n"
#endif

extern "C" {
__attribute__((visibility("hidden"))) void *moe_ctx_switch(void **save_sp, void *new_sp, void *keep);
__attribute__((visibility("hidden"))) void moe_fiber_tramp();
}

#if defined(__x86_64__)
// Frame (from the saved sp upwards):
//   [0] MXCSR (4 bytes) + x87 control word (2 bytes) in one 8-byte slot
//   [8] keep [16] r15 [24] r14 [32] r13 [40] r12 [48] rbx [56] rbp
//   [64] resume address
//
// The control words are saved and restored per fiber (the SysV ABI makes
// their control bits callee-saved); they are reloaded only when the control
// bits differ, as ldmxcsr/fldcw are slow. Saving still costs a few ns per switch (stmxcsr
// waits for in-flight SSE operations): -DMOE_FIBER_NO_FPENV leaves them
// alone, and the fibers of a worker then share its floating-point control
// state (MSL code cannot change it anyway).
//
// The resume address is reached with an indirect jmp rather than ret: the
// fiber we resume usually waits at a different call site than the one we
// leave from (it has not reached our barrier yet), which the return-stack
// predictor always gets wrong; the indirect-branch predictor learns it.
#if defined(MOE_FIBER_NO_FPENV)
#define MOE_X86_SAVE_FPENV ""
#define MOE_X86_CHECK_FPENV ""
#else
// Only the control bits of MXCSR (0xffc0) are compared: the exception flags
// (bits 0-5) are sticky and differ between fibers all the time.
#define MOE_X86_SAVE_FPENV      \
  "  stmxcsr (%rsp)\n"          \
  "  fnstcw 4(%rsp)\n"          \
  "  movl (%rsp), %eax\n"       \
  "  andl $0xffc0, %eax\n"      \
  "  movzwl 4(%rsp), %ecx\n"
#define MOE_X86_CHECK_FPENV     \
  "  movl (%rsp), %r8d\n"       \
  "  andl $0xffc0, %r8d\n"      \
  "  cmpl %r8d, %eax\n"         \
  "  jne 2f\n"                  \
  "  cmpw 4(%rsp), %cx\n"       \
  "  jne 2f\n"
#endif
__asm__(MOE_ASM_FUNC(moe_ctx_switch)
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  pushq %rdx\n"
        "  subq $8, %rsp\n"
        MOE_X86_SAVE_FPENV
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        MOE_X86_CHECK_FPENV
        "1:\n"
        "  addq $8, %rsp\n"
        "  popq %rax\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  popq %rdx\n"
        "  jmp *%rdx\n"
        "2:\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  jmp 1b\n" MOE_ASM_END(moe_ctx_switch)
        // First entry of a fiber: r12 = arg, r13 = fn; rsp is 16-byte aligned here.
        MOE_ASM_FUNC(moe_fiber_tramp)
        "  movq %r12, %rdi\n"
        "  callq *%r13\n"
        "  ud2\n" MOE_ASM_END(moe_fiber_tramp));

namespace moe {
void fiber_init(FiberCtx *ctx, void *stack_lo, size_t size, FiberFn fn, void *arg) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack_lo) + size) & ~uintptr_t(15);
  uintptr_t after_ret = top - 16;  // rsp when moe_fiber_tramp starts: 16-byte aligned
  uint64_t *f = reinterpret_cast<uint64_t *>(after_ret - 72);
  // A stack reused by the fibers of the next threadgroup may still carry the
  // ASan redzones of the last frames of its previous fiber (abandoned by the
  // final switch, never unwound): clear them where the start frame goes.
  fiber_stack_reset(f, top - (after_ret - 72));
  uint32_t mxcsr;
  uint16_t fpucw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fpucw));
  f[0] = uint64_t(mxcsr) | (uint64_t(fpucw) << 32);
  f[1] = 0;                                // keep
  f[2] = 0;                                // r15
  f[3] = 0;                                // r14
  f[4] = reinterpret_cast<uint64_t>(fn);   // r13
  f[5] = reinterpret_cast<uint64_t>(arg);  // r12
  f[6] = 0;                                // rbx
  f[7] = 0;                                // rbp (ends frame-pointer walks)
  f[8] = reinterpret_cast<uint64_t>(&moe_fiber_tramp);
  ctx->sp = f;
  ctx->stack_bottom = stack_lo;
  ctx->stack_size = size;
}
const char *fiber_impl_name() { return "x86-64 asm"; }
}  // namespace moe

#elif defined(__aarch64__)
// Frame (176 bytes, from the saved sp upwards):
//   [0] x19 x20 [16] x21 x22 [32] x23 x24 [48] x25 x26 [64] x27 x28
//   [80] x29 x30 [96] d8 d9 [112] d10 d11 [128] d12 d13 [144] d14 d15
//   [160] fpcr [168] keep
// FPCR is saved per fiber and written only when it differs (-DMOE_FIBER_NO_FPENV
// drops it). The resume uses ret, not br: on BTI-guarded pages an indirect br
// to a return site would fault.
#if defined(MOE_FIBER_NO_FPENV)
#define MOE_A64_SAVE_FPCR ""
#define MOE_A64_LOAD_FPCR ""
#else
#define MOE_A64_SAVE_FPCR \
  "  mrs x9, fpcr\n"      \
  "  str x9, [sp, #160]\n"
#define MOE_A64_LOAD_FPCR  \
  "  ldr x10, [sp, #160]\n" \
  "  cmp x9, x10\n"         \
  "  b.eq 1f\n"             \
  "  msr fpcr, x10\n"       \
  "1:\n"
#endif
__asm__(MOE_ASM_FUNC(moe_ctx_switch)
        "  sub sp, sp, #176\n"
        "  stp x19, x20, [sp, #0]\n"
        "  stp x21, x22, [sp, #16]\n"
        "  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n"
        "  stp x27, x28, [sp, #64]\n"
        "  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  str x2, [sp, #168]\n"
        MOE_A64_SAVE_FPCR
        "  mov x10, sp\n"
        "  str x10, [x0]\n"
        "  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n"
        "  ldp x21, x22, [sp, #16]\n"
        "  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n"
        "  ldp x27, x28, [sp, #64]\n"
        "  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  ldr x0, [sp, #168]\n"
        MOE_A64_LOAD_FPCR
        "  add sp, sp, #176\n"
        "  ret\n" MOE_ASM_END(moe_ctx_switch)
        // First entry of a fiber: x19 = arg, x20 = fn; sp is 16-byte aligned.
        MOE_ASM_FUNC(moe_fiber_tramp)
        "  mov x0, x19\n"
        "  blr x20\n"
        "  brk #0\n" MOE_ASM_END(moe_fiber_tramp));

namespace moe {
void fiber_init(FiberCtx *ctx, void *stack_lo, size_t size, FiberFn fn, void *arg) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack_lo) + size) & ~uintptr_t(15);
  uint64_t *f = reinterpret_cast<uint64_t *>(top - 176);
  fiber_stack_reset(f, 176);  // stale ASan redzones of the stack's previous fiber (see the x86-64 version)
  std::memset(f, 0, 176);
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  f[0] = reinterpret_cast<uint64_t>(arg);                // x19
  f[1] = reinterpret_cast<uint64_t>(fn);                 // x20
  f[10] = 0;                                             // x29 (ends frame-pointer walks)
  f[11] = reinterpret_cast<uint64_t>(&moe_fiber_tramp);  // x30
  f[20] = fpcr;
  ctx->sp = f;
  ctx->stack_bottom = stack_lo;
  ctx->stack_size = size;
}
const char *fiber_impl_name() { return "aarch64 asm"; }
}  // namespace moe
#endif

namespace moe {
#if defined(MOE_FIBER_ASAN)
// (Without ASan, fiber_switch is inline in fiber.h.)
void *fiber_switch(FiberCtx *from, FiberCtx *to, void *keep) {
  asan_start(from, to, false);
  void *r = moe_ctx_switch(&from->sp, to->sp, keep);
  asan_finish(from->asan_fake_stack);
  return r;
}
#endif

void fiber_exit(FiberCtx *from, FiberCtx *to) {
#if defined(MOE_FIBER_ASAN)
  asan_start(from, to, true);
#endif
  moe_ctx_switch(&from->sp, to->sp, nullptr);
  std::fprintf(stderr, "moe fiber: a finished fiber was resumed\n");
  std::abort();
}
}  // namespace moe

#else  // MOE_FIBER_UCONTEXT

namespace moe {

namespace {
struct UcStart {
  FiberFn fn;
  void *arg;
};
}  // namespace

// makecontext passes int arguments only: the start record's address travels
// as two halves.
static void uc_tramp(unsigned hi, unsigned lo) {
  uintptr_t p = (uintptr_t(hi) << 16 << 16) | uintptr_t(lo);
  UcStart *s = reinterpret_cast<UcStart *>(p);
  s->fn(s->arg);
  std::fprintf(stderr, "moe fiber: fiber function returned\n");
  std::abort();
}

void fiber_init(FiberCtx *ctx, void *stack_lo, size_t size, FiberFn fn, void *arg) {
  // Keep the start record at the top of the fiber's own stack.
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack_lo) + size - sizeof(UcStart)) & ~uintptr_t(15);
  UcStart *s = reinterpret_cast<UcStart *>(top);
  fiber_stack_reset(s, sizeof(UcStart));  // stale ASan redzones of the stack's previous fiber (see the x86-64 version)
  s->fn = fn;
  s->arg = arg;
  if (getcontext(&ctx->uc) != 0) {
    std::perror("moe fiber: getcontext");
    std::abort();
  }
  ctx->uc.uc_stack.ss_sp = stack_lo;
  ctx->uc.uc_stack.ss_size = top - reinterpret_cast<uintptr_t>(stack_lo);
  ctx->uc.uc_link = nullptr;
  uintptr_t p = reinterpret_cast<uintptr_t>(s);
  makecontext(&ctx->uc, reinterpret_cast<void (*)()>(uc_tramp), 2, unsigned(p >> 16 >> 16),
              unsigned(p & 0xffffffffu));
  ctx->stack_bottom = stack_lo;
  ctx->stack_size = size;
}

void *fiber_switch(FiberCtx *from, FiberCtx *to, void *keep) {
  from->keep = keep;
#if defined(MOE_FIBER_ASAN)
  asan_start(from, to, false);
  swapcontext(&from->uc, &to->uc);
  asan_finish(from->asan_fake_stack);
#else
  swapcontext(&from->uc, &to->uc);
#endif
  return from->keep;
}

void fiber_exit(FiberCtx *from, FiberCtx *to) {
#if defined(MOE_FIBER_ASAN)
  asan_start(from, to, true);
#endif
  swapcontext(&from->uc, &to->uc);
  std::fprintf(stderr, "moe fiber: a finished fiber was resumed\n");
  std::abort();
}

const char *fiber_impl_name() { return "ucontext"; }

}  // namespace moe

#endif  // MOE_FIBER_UCONTEXT
