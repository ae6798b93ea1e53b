#!/usr/bin/env bash
# Resume a bench sweep kept in docs/bench/<study>/ with the code it was started with, so every trial
# of the sweep uses the same data sampler and trainer. The folder's sweep.env says which code:
#   COMMIT=<sha>           the commit the sweep was prepared with
#   PATCH=<file>           optional, a patch in that folder applied on top of COMMIT
# Usage (from anywhere, with ../shared beside the repository and any weights the sweep needs):
#   bash docs/bench/resume_sweep.sh cpu-r50-calib-v1        # two single-thread workers, logs in /tmp
#   WORKERS=1 SWEEP_TREE=/tmp/tree bash docs/bench/resume_sweep.sh cpu-lite0-calib-v1
# Progress: finetune-advisor bench status --study <study> --storage sqlite:///<repo>/docs/bench/<study>/bench.db
set -euo pipefail
study="${1:?usage: resume_sweep.sh STUDY (a folder of docs/bench with bench.db and sweep.env)}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$repo/docs/bench/$study"
[ -f "$dir/sweep.env" ] || { echo "error: $dir/sweep.env not found (COMMIT=..., optional PATCH=...)" >&2; exit 2; }
PATCH=""
# shellcheck source=/dev/null
source "$dir/sweep.env"
tree="${SWEEP_TREE:-/tmp/$study-tree}"
if [ ! -d "$tree" ]; then
  git -C "$repo" worktree add -f "$tree" "$COMMIT"
  [ -z "$PATCH" ] || git -C "$tree" apply "$dir/$PATCH"
fi
# the worktree lies outside the repository's folder, so name the shared data the repository sees
export FINETUNE_ADVISOR_SHARED_DATA="${FINETUNE_ADVISOR_SHARED_DATA:-$repo/../shared/data}"
cd "$tree"      # python -m imports the package from the worktree, not an installed copy
for w in $(seq 1 "${WORKERS:-2}"); do
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup python3 -m finetune_advisor.cli bench run --worker \
    --study "$study" --storage "sqlite:///$dir/bench.db" --out "/tmp/$study-out" > "/tmp/$study-worker$w.log" 2>&1 &
  sleep 5       # let the first open the database before the next
done
echo "workers started, logs /tmp/$study-worker*.log; progress:"
echo "  finetune-advisor bench status --study $study --storage sqlite:///$dir/bench.db"
