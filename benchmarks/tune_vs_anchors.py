"""Issue 15's measurement: ``tune`` at 3x and 10x the recommendation's cost, against the
recommendation itself, fastai's ``fine_tune`` and the calibration sweep's best cell.

One bench study runs, per single-label dataset and seed, the recommendation (bench's baseline,
the calibrated policy), the ``fastai_fine_tune`` anchor and the ``tune@3x`` / ``tune@10x``
anchors, in the calibration sweep's protocol (same backbone, cpu profile, image cap); the sweep
itself supplies its best cell (mean over its seeds). The table prints mean ± std over seeds and
the two goals: at 10x within 1 point of the sweep's best cell on every dataset; at 3x ahead of
``fine_tune`` on every dataset. ``tune``'s own value is the best of its trials on the same
validation split it selected on (as the oracle's is), so both carry the winner's margin.

By default ``tune@3x`` is read off each ``tune@10x`` search (``--anytime``): the search's choices
depend only on its earlier trials (seeded sampler, pruner against earlier trials), so a 3x
search is the 10x one's first trials, up to where the 3x budget stops starting new ones
(``tune.ledger.replay``); only timing noise differs. ``--no-anytime`` runs it on its own.
The ``1 image`` column is what one validation image weighs (1 / n_valid): the goals' resolution.

    # run with two local workers (resumable; other machines: the same command with --worker-only)
    python benchmarks/tune_vs_anchors.py --study cpu-r50-tune-v1 \\
        --storage sqlite:///docs/bench/cpu-r50-tune-v1/bench.db \\
        --sweep cpu-r50-calib-v1 --sweep-storage sqlite:///docs/bench/cpu-r50-calib-v1/bench.db \\
        --backbone /work/shared/tools/pretrained/resnet50_keras_v1.py:resnet50_keras_v1 --seeds 2
    python benchmarks/tune_vs_anchors.py ... --table-only      # the table so far, trains nothing
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from finetune_advisor.bench import REFERENCE_DATASETS, open_study, results_table
from finetune_advisor.bench.grid import CALIBRATION_PREFIX
from finetune_advisor.cli import main
from finetune_advisor.tune.anchor import anytime_metric

ANCHORS = ("fastai_fine_tune", "tune@3x", "tune@10x")
ANYTIME = {"tune@3x": "tune@10x"}     # an arm read off a larger search: its budget <- the search's anchor
COLUMNS = {"baseline": "recommendation", "fastai_fine_tune": "fine_tune", "tune@3x": "tune@3x",
           "tune@10x": "tune@10x"}


def single_label_datasets() -> list[str]:
    return [n for n, ref in REFERENCE_DATASETS.items() if not ref.multi_label and not ref.smoke_test]


def sweep_best(study_name: str, storage: str) -> pd.Series:
    """Per dataset: the calibration sweep's best (arm, rate) cell, its mean over the sweep's seeds."""
    res = results_table(getattr(s := open_study(study_name, storage, create=False), "study", s))
    grid = res[(res["fraction"] == 1.0) & res["parameter"].str.startswith(CALIBRATION_PREFIX)]
    return grid.groupby(["dataset", "parameter", "value"])["metric"].mean().groupby("dataset").max()


def anytime_rows(trials, res: pd.DataFrame) -> pd.DataFrame:
    """Rows for each :data:`ANYTIME` arm the study did not run, read off its larger search."""
    extra = []
    histories = {t.number: t.user_attrs.get("tune_history") for t in trials}
    for budget, source in ANYTIME.items():
        if (res["value"].astype(str) == budget).any():
            continue                       # run on its own (--no-anytime): measured, not read off
        for row in res[res["value"].astype(str) == source].to_dict("records"):
            if histories.get(row["trial"]):
                metric = anytime_metric(histories[row["trial"]], budget.split("@")[1])
                extra.append({**row, "value": budget, "label": f"anchor:{budget}", "metric": metric})
    return pd.concat([res, pd.DataFrame(extra, columns=res.columns)], ignore_index=True) if extra else res


def table(study_name: str, storage: str, sweep: str, sweep_storage: str) -> pd.DataFrame:
    study = getattr(s := open_study(study_name, storage, create=False), "study", s)
    res = results_table(study)
    trials = study.get_trials(deepcopy=False)      # read once: the histories and n_valid below
    res = anytime_rows(trials, res[res["fraction"] == 1.0])
    res["arm"] = [COLUMNS.get(str(v), COLUMNS.get(str(p))) for p, v in zip(res["parameter"], res["value"])]
    res = res.dropna(subset=["arm"])
    stats = res.groupby(["dataset", "arm"])["metric"].agg(["mean", "std", "count"]).unstack("arm")
    out = pd.DataFrame(index=stats.index)
    for arm in COLUMNS.values():
        if ("mean", arm) in stats:
            out[arm] = ["" if pd.isna(m) else f"{m:.3f} ± {0 if pd.isna(s) else s:.3f}" for m, s in
                        zip(stats[("mean", arm)], stats[("std", arm)])]
            out[f"_{arm}"] = stats[("mean", arm)]
    out["sweep best"] = sweep_best(sweep, sweep_storage).reindex(out.index)
    # the scale of "1 point": one validation image is 1/n_valid of accuracy
    n_valid = pd.DataFrame([t.user_attrs for t in trials if t.user_attrs.get("n_valid")])
    out["1 image"] = (1.0 / n_valid.groupby("dataset")["n_valid"].median()).reindex(out.index)
    means = {arm: f"{out[f'_{arm}'].mean():.3f}" for arm in COLUMNS.values() if f"_{arm}" in out}
    mean_row = pd.DataFrame([{**means, "sweep best": out["sweep best"].mean()}], index=[f"mean ({len(out)})"])
    out = pd.concat([out, mean_row])       # goals() leaves this row out by its "mean" label
    out["1 image"] = out["1 image"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return out


def _verdict(diff: pd.Series, bad: pd.Series, n_datasets: int) -> str:
    """'met' only when every dataset is measured and none is ``bad``; otherwise what is missing."""
    failed, measured = list(diff[bad].index), int(diff.notna().sum())
    verdict = "missed" if failed else ("met" if measured == n_datasets else
                                       f"not yet decided ({measured} of {n_datasets} datasets measured)")
    return f"{verdict} (mean {diff.mean():+.3f}; failing: {failed or 'none'})"


def goals(t: pd.DataFrame) -> list[str]:
    rows = t[~t.index.astype(str).str.startswith("mean")]
    lines = []
    if {"_tune@10x"} <= set(rows) and rows["sweep best"].notna().any():
        gap = rows["_tune@10x"] - rows["sweep best"]
        lines.append("tune@10x within 1 point of the sweep's best cell on every dataset: "
                     + _verdict(gap, gap < -0.01, len(rows)))
    if {"_tune@3x", "_fine_tune"} <= set(rows):
        margin = rows["_tune@3x"] - rows["_fine_tune"]
        lines.append("tune@3x ahead of fine_tune on every dataset: " + _verdict(margin, margin <= 0, len(rows)))
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True)
    p.add_argument("--storage", required=True)
    p.add_argument("--sweep", required=True, help="the calibration sweep (for its best cell)")
    p.add_argument("--sweep-storage", required=True)
    p.add_argument("--backbone", help="the sweep's backbone spec")
    p.add_argument("--datasets", nargs="+", default=None, help="default: every single-label shared dataset")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="local single-thread worker processes (default: %(default)s)")
    p.add_argument("--worker-only", action="store_true", help="only work an existing study's queue")
    p.add_argument("--table-only", action="store_true", help="print the table so far; train nothing")
    p.add_argument("--anytime", action=argparse.BooleanOptionalAction, default=True,
                   help="read tune@3x off each tune@10x search instead of running it (default: %(default)s)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if not args.table_only:
        cmd = ["bench", "run", "--study", args.study, "--storage", args.storage, "--workers", str(args.workers)]
        if args.worker_only:
            cmd.append("--worker")
        else:
            cmd += ["--profile", "cpu", "--max-images-per-class", "100", "--fractions", "1.0",
                    "--seeds", str(args.seeds), "--parameters", "--policy", "calibrated",
                    "--anchors", *[a for a in ANCHORS if not (args.anytime and a in ANYTIME)],
                    "--datasets", *(args.datasets or single_label_datasets())]
            if args.backbone:
                cmd += ["--backbone", args.backbone]
        rc = main(cmd)
        if rc:
            return rc
    t = table(args.study, args.storage, args.sweep, args.sweep_storage)
    with pd.option_context("display.width", 200):
        print(t[[c for c in t.columns if not c.startswith("_")]].to_string(float_format="{:.3f}".format))
    for line in goals(t):
        print(line)
    if args.anytime:
        print("tune@3x: read off each tune@10x search's first trials (--anytime)")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
