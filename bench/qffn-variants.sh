#!/usr/bin/env bash
# Times candidate versions of the fused q4 expert stage on a CUDA GPU and
# checks each one there first.
#
# For shaders/moe_qffn.metal and every bench/shaders/qffn-variants/*.metal
# (or the files given as arguments): `moe verify --backend cuda` of
# qffn-gate-up-q4 and qffn-down-accum-q4 with that shader, then `moe bench`
# of both with the flags bench/quant-decode.ts uses for the fused pair
# (Qwen3-30B-A3B: top-8 of 128 experts, hidden 2048, intermediate 768,
# group 64; --batch 50 --graph, --max-time 1), and one line per shader:
# gate_up µs, down_accum µs, stage µs, GB/s and % of the copy bandwidth
# (measured once, by --measure-peak on the first bench).
#
# Needs node on PATH and the built CLI (dist/); run from the repository root:
#   bash bench/qffn-variants.sh [shader.metal ...]
# MOE_BACKEND overrides the backend (cpu makes it a quick local smoke test).
# A variant whose launch geometry differs from the spec's names it in a comment,
# MOE_QFFN_Q4_GEOMETRY=guSg,guRows,dnSg,dnRows (see src/kernels/qffn-gate-up.ts).
set -u
cd "$(dirname "$0")/.."
backend=${MOE_BACKEND:-cuda}
moe() { node bin/run.js "$@"; }

if [ $# -gt 0 ]; then shaders=("$@"); else shaders=(shaders/moe_qffn.metal bench/shaders/qffn-variants/*.metal); fi
flags=(--backend "$backend" --max-time 1 --experts 128 --top-k 8 --group-size 64)
[ "$backend" = cuda ] && flags+=(--batch 50 --graph)
gu_shape=(--out-dim 768 --in-dim 2048 --act 0)
dn_shape=(--out-dim 2048 --in-dim 768 --add-residual 1)
# packed weight bytes (the figure bench:quant divides by): 2·8·768·2048/2 and 8·2048·768/2
gu_bytes=12582912
dn_bytes=6291456

# median ns of a bench --json report on stdin; with "peak", the copy GB/s instead
field() {
  node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      try {
        const r = JSON.parse(s);
        const v = process.argv[1] === "peak" ? r.peak && r.peak.bandwidthGBs : r.cases[0].medianNs;
        console.log(v === undefined || v === null ? "nan" : v);
      } catch { console.log("nan"); }
    });' "$1"
}

peak=""
rows=()
for f in "${shaders[@]}"; do
  status=ok
  # a variant with its own launch geometry says so in a comment: MOE_QFFN_Q4_GEOMETRY=guSg,guRows,dnSg,dnRows
  geo=$(grep -o 'MOE_QFFN_Q4_GEOMETRY=[0-9,]*' "$f" | head -n 1 | cut -d= -f2)
  if [ -n "$geo" ]; then export MOE_QFFN_Q4_GEOMETRY="$geo"; else unset MOE_QFFN_Q4_GEOMETRY; fi
  for k in qffn-gate-up-q4 qffn-down-accum-q4; do
    if ! out=$(moe verify --backend "$backend" --kernel "$k" --shader "$f" 2>&1); then
      status="VERIFY FAILED ($k)"
      echo "$f: $k failed verify on $backend:" >&2
      echo "$out" | tail -n 8 >&2
    fi
  done
  extra=()
  [ -z "$peak" ] && extra=(--measure-peak)
  gu_json=$(moe bench "${flags[@]}" "${extra[@]}" --kernel qffn-gate-up-q4 --shader "$f" "${gu_shape[@]}" --json 2>/dev/null)
  [ -z "$peak" ] && peak=$(echo "$gu_json" | field peak)
  gu=$(echo "$gu_json" | field ns)
  dn=$(moe bench "${flags[@]}" --kernel qffn-down-accum-q4 --shader "$f" "${dn_shape[@]}" --json 2>/dev/null | field ns)
  rows+=("$(node -e '
    const [f, gu, dn, peak, gb, db, st] = process.argv.slice(1);
    const [g, d, p] = [Number(gu) / 1000, Number(dn) / 1000, Number(peak)];
    const bw = (Number(gb) + Number(db)) / ((g + d) * 1000);
    const pct = (100 * bw) / p;
    console.log(`${f.padEnd(44)} ${g.toFixed(2).padStart(7)} ${d.toFixed(2).padStart(7)} ${(g + d).toFixed(2).padStart(7)} ${bw.toFixed(bw < 10 ? 2 : 0).padStart(6)} ${pct.toFixed(1).padStart(6)}%  ${st}`);
  ' "$f" "$gu" "$dn" "$peak" "$gu_bytes" "$dn_bytes" "$status")")
done

echo "fused q4 expert stage (top-8 of 128, 2048 -> 768 -> 2048, group 64) on $backend; copy bandwidth $(node -e 'console.log(Number(process.argv[1]).toFixed(0))' "$peak") GB/s"
printf '%-44s %7s %7s %7s %6s %7s  %s\n' shader 'gate_up' 'down' 'stage' 'GB/s' 'copy' 'verify'
printf '%-44s %7s %7s %7s\n' '' 'us' 'us' 'us'
for r in "${rows[@]}"; do echo "$r"; done
