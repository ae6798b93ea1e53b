"""Tune ``suggest_lr`` offline on recorded LR range tests: spread over seeds and distance to
the grid-best rate for each smoothing variant, from the sweeps that
``lr_finder_stability.py --save-curves FILE`` wrote (no network is run here).

    python benchmarks/lr_finder_stability.py --save-curves out/curves.jsonl   # record once (both methods)
    python benchmarks/lr_finder_tuning.py out/curves.jsonl                          # seconds

For every variant (filter, order, cut-off, sub-step refinement) and every recorded loss kind (train,
valid), per dataset: max/min of the suggested LR over the seeds, and the mean distance in
decades to the grid-best rate (the rate with the lowest validation loss after a short frozen
fit, refined by a parabola in log10(lr)). The table is sorted by the worst spread.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lr_finder_stability import refine_best  # noqa: E402  (the same grid-best as the recording run)


ANCHOR_PICKERS = ("valley", "steep", "slide", "lightning")   # recorded beside each sweep


def load(paths):
    sweeps, grid = defaultdict(list), defaultdict(dict)
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            if r["kind"] == "sweep":
                losses = [math.nan if v is None else float(v) for v in r["losses"]]
                # lr_finder_stability.py records both methods; the full-network sweeps keep the plain kind
                kind = r["loss"] if r.get("method", "full") == "full" else f'{r["loss"]}-{r["method"]}'
                sweeps[(kind, r["dataset"])].append((r["seed"], r["lrs"], losses,
                                                          {k: r.get(k) for k in ANCHOR_PICKERS}))
            elif r["kind"] == "grid":
                vals = [v for v in r["valid_losses"] if v is not None and math.isfinite(v)]
                grid[r["dataset"]][float(r["lr"])] = sum(vals) / len(vals) if vals else math.nan
    return sweeps, grid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("curves", nargs="+", help="JSON-lines files from lr_finder_stability.py --save-curves")
    p.add_argument("--cutoffs", type=float, nargs="+", default=[0.3, 0.5, 0.75, 1.0, 1.5])
    p.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--filters", nargs="+", default=["butter", "savgol"])
    p.add_argument("--top", type=int, default=15, help="rows shown per loss kind")
    args = p.parse_args(argv)

    import numpy as np
    import pandas as pd

    from finetune_advisor.exceptions import LRFinderError
    from finetune_advisor.lr_finder import suggest_lr

    sweeps, grid = load(args.curves)
    best = {d: refine_best(np.log10(sorted(g)), [g[k] for k in sorted(g)]) for d, g in grid.items()}
    print("grid-best lr: " + ", ".join(f"{d} {10 ** b:.2e}" for d, b in best.items()))
    rows = []
    for (kind, dataset), runs in sorted(sweeps.items()):
        for filt, order, cutoff, refine in itertools.product(args.filters, args.orders, args.cutoffs, (True, False)):
            if filt == "savgol" and order < 2:
                continue
            picks = []
            for _seed, lrs, losses, _ in runs:
                try:
                    picks.append(suggest_lr(lrs, losses, filter=filt, order=order, cutoff=cutoff,
                                            refine=refine).lr)
                except LRFinderError:
                    picks.append(math.nan)
            v = np.asarray(picks, float)
            ok = v[np.isfinite(v)]
            rows.append({"loss": kind, "filter": filt, "order": order, "cutoff": cutoff, "refine": refine,
                         "dataset": dataset,
                         "failed": int(len(v) - len(ok)),
                         "spread": float(ok.max() / ok.min()) if len(ok) >= 2 else math.nan,
                         "dec": float(np.mean(np.abs(np.log10(ok) - best[dataset])))
                         if len(ok) and dataset in best else math.nan})
    df = pd.DataFrame(rows)
    summary = (df.groupby(["loss", "filter", "order", "cutoff", "refine"])
                 .agg(worst_spread=("spread", "max"), mean_spread=("spread", "mean"),
                      worst_dec=("dec", "max"), mean_dec=("dec", "mean"), failed=("failed", "sum"))
                 .reset_index().sort_values(["loss", "worst_spread"]))
    with pd.option_context("display.width", 200, "display.float_format", "{:.3g}".format):
        for kind, part in summary.groupby("loss"):
            print(f"\n-- {kind} loss: variants sorted by worst spread (goal <= 1.5x; |dec| goal <= 0.5)")
            print(part.head(args.top).to_string(index=False))
        anchors = []
        for (kind, dataset), runs in sorted(sweeps.items()):
            for name in ANCHOR_PICKERS:
                v = np.asarray([r[3][name] if r[3][name] is not None else math.nan for r in runs], float)
                ok = v[np.isfinite(v) & (v > 0)]
                anchors.append({"loss": kind, "picker": name, "dataset": dataset,
                                "spread": float(ok.max() / ok.min()) if len(ok) >= 2 else math.nan,
                                "dec": float(np.mean(np.abs(np.log10(ok) - best[dataset])))
                                if len(ok) and dataset in best else math.nan})
        if anchors:
            a = pd.DataFrame(anchors)
            print("\n-- the anchors on the same sweeps (fastai valley / steep / slide, Lightning-style)")
            print(a.pivot_table(index=["loss", "dataset"], columns="picker", values=["spread", "dec"]).to_string())
        print("\n-- per dataset, the current defaults (butter, order 2, cut-off 0.75, refined)")
        cur = df[(df["filter"] == "butter") & (df["order"] == 2) & (df["cutoff"] == 0.75) & df["refine"]]
        print(cur.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
