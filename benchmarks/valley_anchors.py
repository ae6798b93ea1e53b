"""The two valley anchors' rates side by side, per dataset, from a leave-one-out study.

``lr_find_valley`` is the study policy at the valley of *our* cached-feature range test (the
bench's old anchor); ``fastai_lr_find`` is what a fastai user does: ``learn.lr_find()`` on the
frozen full learner with fastai's defaults, then ``fine_tune`` at its valley, measured in each
trial (its ``lr_find_valley`` attr). Reads the committed study; trains nothing.

    python benchmarks/valley_anchors.py                                   # cpu-r50-loo-v3
    python benchmarks/valley_anchors.py --study cpu-r50-loo-v3 --storage sqlite:///docs/bench/cpu-r50-loo-v3/bench.db
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from finetune_advisor import bench

REPO = Path(__file__).resolve().parent.parent


def valley_rates(study) -> dict[str, dict[str, list[float]]]:
    """Dataset -> {"cached": rates the cached-valley anchor trained, "fastai": the valleys fastai's
    ``lr_find`` measured, one per seed}, from the study's finished trials."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"cached": [], "fastai": []})
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state.name != "COMPLETE":
            continue
        if a.get("label") == "anchor:lr_find_valley":
            out[a["dataset"]]["cached"].append(float(json.loads(a["config"])["lr"]))
        elif a.get("label") == "anchor:fastai_lr_find" and "lr_find_valley" in a:
            out[a["dataset"]]["fastai"].append(float(a["lr_find_valley"]))
    return dict(out)


def format_rows(rates: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = ["| dataset | cached-test valley (ours) | fastai lr_find valley, median (min-max over seeds) "
             "| decades apart (fastai / cached) |", "|---|---:|---:|---:|"]
    gaps = []
    for name, r in sorted(rates.items()):
        if not r["cached"] or not r["fastai"]:
            continue
        cached, fastai = statistics.median(r["cached"]), statistics.median(r["fastai"])
        gaps.append(math.log10(fastai / cached))
        lines.append(f"| {name} | {cached:.1e} | {fastai:.1e} ({min(r['fastai']):.1e}-{max(r['fastai']):.1e}) "
                     f"| {gaps[-1]:+.2f} |")
    if gaps:
        lines.append(f"| **median** ({len(gaps)}) | | | **{statistics.median(gaps):+.2f}** "
                     f"(range {min(gaps):+.2f} to {max(gaps):+.2f}) |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="cpu-r50-loo-v3")
    p.add_argument("--storage", help="default: sqlite:///docs/bench/<study>/bench.db")
    args = p.parse_args(argv)
    storage = args.storage or f"sqlite:///{REPO / 'docs' / 'bench' / args.study / 'bench.db'}"
    rates = valley_rates(bench.open_study(args.study, storage, create=False))
    if not any(r["fastai"] for r in rates.values()):
        sys.exit(f"error: study {args.study!r} has no finished fastai_lr_find trial with its measured valley")
    print("\n".join([f"# The valley anchors' rates: {args.study}", "", *format_rows(rates)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
