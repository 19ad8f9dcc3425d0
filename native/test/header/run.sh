#!/usr/bin/env bash
# Builds and runs the tests of the MSL compat header (native/include/msl_cpu.h):
#   1. swizzles.inc matches gen_swizzles.py
#   2. the test programs (g++ -std=c++17 -O2 -Wall -Wextra -Werror), run
#   3. a small kernel module built as the runtime builds it (-O2 -fPIC -shared
#      -fvisibility=hidden), warning-free, exporting only the two ABI symbols;
#      its compile time is printed
#   4. code that MSL rejects is rejected here too
# Usage: native/test/header/run.sh        (CXX=..., OUT=... to override)
set -euo pipefail
cd "$(dirname "$0")"
CXX=${CXX:-g++}
OUT=${OUT:-../build/header}
INC=../../include
FLAGS=(-std=c++17 -O2 -Wall -Wextra -Werror -I"$INC")
MODULE_FLAGS=(-std=c++17 -O2 -fPIC -shared -fno-strict-aliasing -fvisibility=hidden -Wall -Wextra -Werror -I"$INC")
mkdir -p "$OUT"

python3 "$INC/msl_common/gen_swizzles.py" --check

status=0
for t in test_types test_math test_nons test_sync; do
  "$CXX" "${FLAGS[@]}" "$t.cc" -o "$OUT/$t" -pthread
  "$OUT/$t" || status=1
done

# The module as the runtime compiles it.
start=$(date +%s%N)
"$CXX" "${MODULE_FLAGS[@]}" sample_module.cc -o "$OUT/sample_module.so"
echo "sample_module.so: compiled in $((($(date +%s%N) - start) / 1000000)) ms (-O2)"
"$CXX" "${MODULE_FLAGS[@]/-O2/-O0}" sample_module.cc -o "$OUT/sample_module_O0.so"
exported=$(nm -D --defined-only "$OUT/sample_module.so" | awk '$2 == "T" || $2 == "D" || $2 == "R" || $2 == "B" { print $3 }' | sort | tr '\n' ' ')
if [ "$exported" != "__moe_bind_runtime __moe_kernels " ]; then
  echo "sample_module.so exports: $exported (want __moe_bind_runtime __moe_kernels)"
  status=1
fi

# Code MSL rejects must not compile.
reject() {
  local name=$1 body=$2
  printf '#include "msl_cpu.h"\nusing namespace metal;\nvoid f() {\n%s\n}\n' "$body" > "$OUT/reject_$name.cc"
  if "$CXX" -std=c++17 -fsyntax-only -I"$INC" "$OUT/reject_$name.cc" 2>/dev/null; then
    echo "reject_$name: compiled, but MSL rejects it"
    status=1
  fi
}
reject implicit_elem_conversion 'int4 i = int4(1); float4 f = i; (void)f;'
reject no_z_on_2vector 'float2 v = float2(1.0f); float z = v.z; (void)z;'
reject no_zw_swizzle_on_2vector 'float2 v = float2(1.0f); float2 z = v.zw(); (void)z;'
reject wrong_component_count 'float4 v = float4(1.0f, 2.0f, 3.0f); (void)v;'
reject too_many_components 'float2 v = float2(float2(1.0f), 1.0f); (void)v;'
reject as_type_size 'uint u = as_type<uint>(half(1.0f)); (void)u;'
reject mixed_vector_types 'float4 v = float4(1.0f) + int4(1); (void)v;'
reject simd_value_too_large 'struct Big { float a[32]; }; Big b{}; (void)simd_broadcast_first(b);'
printf '#include "msl_cpu.h"\nfloat f(float x) { return max(x, 0.0f); }\n' > "$OUT/reject_no_using.cc"
if "$CXX" -std=c++17 -fsyntax-only -I"$INC" "$OUT/reject_no_using.cc" 2>/dev/null; then
  echo "reject_no_using: max() found without using namespace metal"
  status=1
fi

[ $status -eq 0 ] && echo "header tests: OK" || echo "header tests: FAILED"
exit $status
