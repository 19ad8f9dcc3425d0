#!/usr/bin/env bash
# The work of the composite action (action.yml): `moe verify`, then `moe bench`
# against a baseline when one is named; Markdown to the job summary, JUnit to a
# file named in the step's outputs; exit with the tool's code (the first
# non-zero one). Inputs come as MOE_ACTION_* variables, never spliced into code.
# --manifest and --shard are passed only when their input is set. Written for
# bash 3.2 too (macOS's /bin/bash on a self-hosted Mac): no bare "${a[@]}" of
# an empty array under set -u. Usable outside Actions: without
# GITHUB_STEP_SUMMARY the Markdown goes to stdout, without GITHUB_OUTPUT the
# outputs are printed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
moe=(node "$here/bin/run.js")
summary="${GITHUB_STEP_SUMMARY:-/dev/stdout}"
output="${GITHUB_OUTPUT:-/dev/stdout}"
out_dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
shard="${MOE_ACTION_SHARD:-}"
tag="${shard//\//-of-}"
junit="$out_dir/moe-verify${tag:+-$tag}.xml"

common=()
[ -n "${MOE_ACTION_BACKEND:-}" ] && common+=(--backend "$MOE_ACTION_BACKEND")
[ -n "${MOE_ACTION_KERNELS:-}" ] && common+=(--kernel "$MOE_ACTION_KERNELS")
[ -n "${MOE_ACTION_SHADER:-}" ] && common+=(--shader "$MOE_ACTION_SHADER")
[ -n "${MOE_ACTION_MANIFEST:-}" ] && common+=(--manifest "$MOE_ACTION_MANIFEST")
[ -n "${MOE_ACTION_SHARD:-}" ] && common+=(--shard "$MOE_ACTION_SHARD")
read -r -a extra <<< "${MOE_ACTION_ARGS:-}"
read -r -a bench_extra <<< "${MOE_ACTION_BENCH_ARGS:-}"

echo "::group::moe backends"
"${moe[@]}" backends || true
echo "::endgroup::"

echo "+ moe verify ${common[*]+${common[*]}} ${extra[*]+${extra[*]}} --junit $junit --markdown"
"${moe[@]}" verify ${common[@]+"${common[@]}"} ${extra[@]+"${extra[@]}"} --junit "$junit" --markdown >> "$summary"
code=$?
echo "junit=$junit" >> "$output"

if [ -n "${MOE_ACTION_BASELINE:-}" ]; then
  if [ -f "$MOE_ACTION_BASELINE" ]; then
    echo "+ moe bench ${common[*]+${common[*]}} ${bench_extra[*]+${bench_extra[*]}} --baseline $MOE_ACTION_BASELINE --markdown"
    "${moe[@]}" bench ${common[@]+"${common[@]}"} ${bench_extra[@]+"${bench_extra[@]}"} --baseline "$MOE_ACTION_BASELINE" --markdown >> "$summary"
    bench_code=$?
  else
    report="$out_dir/moe-bench${tag:+-$tag}.json"
    echo "::warning title=no bench baseline::$MOE_ACTION_BASELINE does not exist: timings recorded in $report, no regression gate applied"
    {
      echo "### No bench baseline yet"
      echo ""
      echo "$MOE_ACTION_BASELINE does not exist, so no regression gate ran. This run's report is the step's output"
      echo "bench-report: review it, then commit it as $MOE_ACTION_BASELINE."
    } >> "$summary"
    echo "+ moe bench ${common[*]+${common[*]}} ${bench_extra[*]+${bench_extra[*]}} --json"
    "${moe[@]}" bench ${common[@]+"${common[@]}"} ${bench_extra[@]+"${bench_extra[@]}"} --json > "$report"
    bench_code=$?
    echo "bench-report=$report" >> "$output"
  fi
  [ "$code" -eq 0 ] && code=$bench_code
fi

echo "exit-code=$code" >> "$output"
exit "$code"
