#!/usr/bin/env bash
# The full test suite, RUNS times in a row (default 3), beside BURNERS CPU-bound processes
# (default 2: as many as this 2-core machine has cores, like a two-worker sweep). Passes only if
# every run passes. Issue 30: tests that waited on wall-clock deadlines failed here.
#   bash benchmarks/suite_under_load.sh                 # 3 runs beside 2 burners
#   BURNERS=0 bash benchmarks/suite_under_load.sh       # beside whatever already runs (a sweep's workers)
#   RUNS=1 bash benchmarks/suite_under_load.sh -x tests/tune    # pytest arguments pass through
# Logs: /tmp/suite_under_load.<n>.log
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
burners="${BURNERS:-2}"
pids=()
stop_burners() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap stop_burners EXIT
for _ in $(seq 1 "$burners"); do
  python3 -c "while True: pass" &
  pids+=($!)
done
echo "load: $burners burner(s) started; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
for n in $(seq 1 "$runs"); do
  start=$(date +%s)
  python3 -m pytest -q -p no:cacheprovider "$@" > "/tmp/suite_under_load.$n.log" 2>&1
  rc=$?
  echo "run $n: rc $rc in $(( $(date +%s) - start )) s: $(tail -n 1 /tmp/suite_under_load.$n.log)"
  [ "$rc" = 0 ] || failed=$((failed + 1))
done
echo "$((runs - failed)) of $runs runs passed"
[ "$failed" = 0 ]
