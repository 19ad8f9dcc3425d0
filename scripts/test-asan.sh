#!/usr/bin/env bash
# Builds the native runtime, its test driver and the test kernel modules with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the driver (asm
# fibers, then ucontext fibers): every test of native/test/runtime_test.cc,
# the hostile ones included (guard pages around buffers, out-of-bounds reads
# and writes, the canary of the slack bytes, the watchdog interrupting endless
# loops in the plain loop and in fibers, SIGFPE/SIGILL traps, stack overflows
# in fibers and in the plain loop, faults passed on to the previous handler).
# Then, where Node's headers are found, the addon itself is built with the
# sanitizers and native/test/smoke.mjs runs against it under Node (with the
# ASan runtime preloaded): guarded buffer copies, bufferNames, timeoutMs.
# Fails on any test failure or sanitizer report.
#
#   bash scripts/test-asan.sh          (CXX=clang++ to use clang)
#
# Possible noise: "WARNING: ASan is ignoring requested __asan_handle_no_return"
# (the runtime siglongjmps out of its signal handlers on the alternate signal
# stack) and, for the ucontext build, ASan's note that it does not fully
# support swapcontext.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build/asan
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

make -C native/test BUILD="$BUILD" OPT="-O1 -g" SAN="$SAN" TEST_ARGS="--quick" test
echo "test-asan: runtime ok"

# --- the addon under Node ---------------------------------------------------
CXX_BIN="${CXX:-g++}"
NODE_INC=""
for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" "${HOME}/.cache/node-gyp/$(node -p process.versions.node)/include/node" /usr/include/node; do
  if [ -f "$d/node_api.h" ]; then NODE_INC="$d"; break; fi
done
ASAN_RT="$("$CXX_BIN" -print-file-name=libasan.so)"
if [ ! -f "$ASAN_RT" ]; then ASAN_RT="$("$CXX_BIN" -print-file-name="libclang_rt.asan-$(uname -m).so")"; fi
if [ -z "$NODE_INC" ] || [ ! -f "$ASAN_RT" ]; then
  echo "test-asan: addon stage skipped (Node headers or the ASan runtime not found)"
  exit 0
fi
mkdir -p "$BUILD/addon"
"$CXX_BIN" -std=c++17 -O1 -g $SAN -fPIC -shared -fexceptions \
  -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_CPP_EXCEPTIONS_ALL \
  -I"$NODE_INC" -I"$(node -p "require('node-addon-api').include_dir")" \
  -o "$BUILD/addon/moe_native.node" native/common/addon.cc native/cpu/*.cc \
  native/cuda/addon_cuda.cc native/cuda/cuda_runtime.cc -ldl -pthread
# (Node's own allocations are not ours to check for leaks.)
LD_PRELOAD="$ASAN_RT" ASAN_OPTIONS="${ASAN_OPTIONS}:detect_leaks=0" MOE_NATIVE_ADDON="$PWD/$BUILD/addon/moe_native.node" \
  node native/test/smoke.mjs
echo "test-asan: ok"
