#!/usr/bin/env bash
# Builds the native runtime, its test driver and the test kernel modules with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the driver (asm
# fibers, then ucontext fibers). Fails on any test failure or sanitizer report.
#
#   bash scripts/test-asan.sh          (CXX=clang++ to use clang)
#
# Expected noise: "WARNING: ASan is ignoring requested __asan_handle_no_return"
# (once per run, from the fiber stack-overflow test: the runtime siglongjmps
# out of its SIGSEGV handler on the alternate signal stack) and, for the
# ucontext build, ASan's note that it does not fully support swapcontext.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build/asan
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

make -C native/test BUILD="$BUILD" OPT="-O1 -g" \
  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  TEST_ARGS="--quick" test
echo "test-asan: ok"
