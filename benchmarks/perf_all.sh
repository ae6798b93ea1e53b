#!/usr/bin/env bash
# Issue 7's four performance scripts at their cpu sizes, one after the other, each timed.
#   bash benchmarks/perf_all.sh [OUT_DIR]        (default out/perf; tables in OUT_DIR/*.txt)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/perf}"
mkdir -p "$out"
total_start=$(date +%s)
run() {
  local name="$1"; shift
  local start=$(date +%s)
  python "$@" > "$out/$name.txt" 2> "$out/$name.err"
  local rc=$?
  echo "$name: $(( $(date +%s) - start )) s (exit $rc) -> $out/$name.txt"
}
run emd_cost benchmarks/emd_cost.py
run embed_throughput benchmarks/embed_throughput.py --quick
run recommend_scaling benchmarks/recommend_scaling.py --keep /tmp/fa-scaling
run lr_finder_stability benchmarks/lr_finder_stability.py --save-curves "$out/curves.jsonl" --csv "$out/lr.csv"
echo "total: $(( $(date +%s) - total_start )) s"
