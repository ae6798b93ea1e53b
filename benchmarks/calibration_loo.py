"""The leave-one-dataset-out validation of the calibrated policy (issue 14), end to end.

For each dataset of a calibration sweep: fit the calibration on the other datasets, then train
the config that fit predicts on the left-out dataset beside fastai's ``fine_tune``, the
``lr_find`` valley, the study policy and the sweep's best cell (the oracle), at fresh seeds, in
the sweep's protocol; print the table and the three goals, and write them (``loo.md``,
``loo.csv``, ``loo.json``) with bench's outputs to ``--out``.

Steps, each resumable (rerun the same command after a kill):

1. ``finetune-advisor calibrate --study SWEEP --validate LOO --n-trials 0``: plan the validation
   study, fit without each dataset, advise the baselines (the study policy, with the LR range
   test: about 30-40 s a dataset at 64 px on 2 cores) and enqueue the trials;
2. ``--workers`` processes of ``finetune-advisor bench run --worker --study LOO`` work the queue
   (other machines may join with the same command and a shared ``--loo-storage``);
3. ``finetune-advisor bench outputs --study LOO``: bench's outputs and the table (runs nothing).

    python benchmarks/calibration_loo.py --calibration-study cpu-r50-calib-v1 \\
        --storage sqlite:///docs/bench/cpu-r50-calib-v1/bench.db --loo-study cpu-r50-loo-v1 --workers 2
    python benchmarks/calibration_loo.py ... --table-only          # the table so far, runs nothing
    python benchmarks/calibration_loo.py --calibration-study cpu-r50-calib-v1 \
        --storage sqlite:///docs/bench/cpu-r50-calib-v1/bench.db --loo-study cpu-r50-loo-v2 \
        --reuse-from cpu-r50-loo-v1 --reuse-storage sqlite:///docs/bench/cpu-r50-loo-v1/bench.db
                                  # after a refit: copy the unchanged trials, train what moved
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from finetune_advisor.bench import spawn_workers
from finetune_advisor.cli import main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibration-study", nargs="+", required=True, help="the calibration sweep(s)")
    p.add_argument("--storage", required=True, help="the sweep's storage URL (read only)")
    p.add_argument("--loo-study", required=True, help="the validation's bench study (new, or one to resume)")
    p.add_argument("--loo-storage", help="its storage (default: sqlite:///<out>/bench.db)")
    p.add_argument("--out", help="output folder (default: docs/bench/<loo-study>)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-offset", type=int, default=100)
    p.add_argument("--workers", type=int, default=2, help="local worker processes (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default: %(default)s)")
    p.add_argument("--reuse-from", help="an earlier validation study: copy its trials the refit left unchanged")
    p.add_argument("--reuse-storage", help="its storage (default: --loo-storage)")
    p.add_argument("--table-only", action="store_true", help="print the table so far; prepare and train nothing")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or Path("docs") / "bench" / args.loo_study).resolve()
    loo_storage = args.loo_storage or f"sqlite:///{out / 'bench.db'}"
    calibrate = ["calibrate", "--study", *args.calibration_study, "--storage", args.storage,
                 "--validate", args.loo_study, "--loo-storage", loo_storage, "--seeds", str(args.seeds),
                 "--seed-offset", str(args.seed_offset), "--out", str(out), "--n-trials", "0"]
    if args.reuse_from:
        calibrate += ["--reuse-from", args.reuse_from, "--reuse-storage", args.reuse_storage or loo_storage]
    outputs = ["bench", "outputs", "--study", args.loo_study, "--storage", loo_storage, "--out", str(out), "-q"]
    if args.table_only:
        return table(outputs, out)
    print(f"[1/3] preparing {args.loo_study} (fits, baselines with the LR finder, trials)...", file=sys.stderr)
    rc = main([*calibrate, "-q"])
    if rc:
        return rc
    print(f"[2/3] {args.workers} worker(s) of {args.threads} thread(s): bench run --worker --study {args.loo_study}",
          file=sys.stderr)
    clock = time.perf_counter()
    codes = spawn_workers(args.loo_study, loo_storage, args.workers, threads=args.threads, out_dir=out)
    print(f"      workers done in {(time.perf_counter() - clock) / 60:.1f} min (exit codes {codes})", file=sys.stderr)
    print("[3/3] the table", file=sys.stderr)
    return table(outputs, out) or max(codes, default=0)


def table(outputs: list[str], out: Path) -> int:
    """Write bench's outputs and the table (``bench outputs``), and print the table."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):      # the list of files written
        rc = main(outputs)
    if rc == 0:
        print((out / "loo.md").read_text(encoding="utf-8"))
        print(f"written to {out}: loo.md, loo.csv, loo.json, loo.png, results.csv, ...", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(run(parse_args()))
