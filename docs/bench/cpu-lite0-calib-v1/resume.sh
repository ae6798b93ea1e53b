#!/usr/bin/env bash
# Resume the calibration sweep cpu-lite0-calib-v1 (the shipped offline backbone, EfficientNet-Lite0; cpu
# profile, 64 px, 2 + 2 epochs, at most 100 images per class; 3 arms x 7 absolute rates + fastai's fine_tune,
# 16 datasets, 2 seeds, seed-major) with the code it was started with (commit 4997136), so every trial uses
# the same data sampler. Planet's seed-1 trials were failed on purpose (a 30-chip smoke test: seed 0 suffices).
# Usage (from the repository root, with ../shared present):
#   bash docs/bench/cpu-lite0-calib-v1/resume.sh            # two single-thread workers, logs in /tmp
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
db="$repo/docs/bench/cpu-lite0-calib-v1/bench.db"
tree="${SWEEP_TREE:-/tmp/lite0-sweep-tree}"
[ -d "$tree" ] || git -C "$repo" worktree add -f "$tree" 4997136
cd "$tree"
for w in 1 2; do
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup python3 -m finetune_advisor.cli bench run --worker \
    --study cpu-lite0-calib-v1 --storage "sqlite:///$db" --out /tmp/lite0-out > "/tmp/lite0-worker$w.log" 2>&1 &
  sleep 5
done
echo "workers started; progress: finetune-advisor bench status --study cpu-lite0-calib-v1 --storage sqlite:///$db"
