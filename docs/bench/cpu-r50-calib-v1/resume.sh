#!/usr/bin/env bash
# Resume the calibration sweep cpu-r50-calib-v1 with the code it was started with (commit cd4c03e
# plus sweep-worktree.patch: bench run --no-lr-finder), so every trial uses the same data sampler.
# Usage (from the repository root, with ../shared and the ResNet-50 weights fetched):
#   bash docs/bench/cpu-r50-calib-v1/resume.sh            # two single-thread workers, logs in /tmp
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
db="$repo/docs/bench/cpu-r50-calib-v1/bench.db"
tree="${SWEEP_TREE:-/tmp/calib-sweep-tree}"
[ -d "$tree" ] || { git -C "$repo" worktree add -f "$tree" cd4c03e && git -C "$tree" apply "$repo/docs/bench/cpu-r50-calib-v1/sweep-worktree.patch"; }
cd "$tree"
for w in 1 2; do
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup python3 -m finetune_advisor.cli bench run --worker \
    --study cpu-r50-calib-v1 --storage "sqlite:///$db" --out /tmp/calib-out > "/tmp/calib-worker$w.log" 2>&1 &
  sleep 5
done
echo "workers started; progress: finetune-advisor bench status --study cpu-r50-calib-v1 --storage sqlite:///$db"
