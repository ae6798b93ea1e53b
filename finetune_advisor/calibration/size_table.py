"""Per dataset size, leave-one-dataset-out: the calibrated advice beside today's constant, fastai's
``fine_tune`` and the sweep's best cell (the table of a schedule sweep, ``bench run --grid schedule
--sizes``).

- The *advice* on a task (``pets@10``) is the cell its leave-one-out rule picks: the rule fitted
  without any size of its dataset (``provenance["per_dataset"][task]["loo_cell"]``, see
  :func:`~finetune_advisor.calibration.sweep.calibrate`).
- *Today's constant* is a fixed rule (the shipped calibration's), read off the same curves.
- *fastai* is the sweep's ``fastai_fine_tune`` anchor (fastai's defaults, fixed epochs), same seeds.
- A task's *seed spread* is the larger of the advice's and fastai's score ranges over the seeds:
  how far the seed alone moves either. A task is *behind beyond its spread* when fastai leads the
  advice by more than that.

Scores are means over the seeds a task has (a sweep still running has fewer on some).

>>> import pandas as pd
>>> t = pd.DataFrame({"dataset": ["a@10", "b@10"], "size": [10, 10], "best": [0.9, 0.8], "advice": [0.8, 0.8],
...                   "constant": [0.7, 0.8], "fastai": [0.75, 0.85], "seed_spread": [0.1, 0.02]})
>>> row = by_size(t).loc[10]
>>> int(row["n"]), float(row["advice_minus_fastai"]), int(row["behind_fastai"]), int(row["behind_beyond_spread"])
(2, 0.0, 1, 1)
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..bench.datasets import split_size
from ..heuristics.policies import CalibratedRule
from .fit import Curves
from .model import Calibration
from .portfolio import rule_cell

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["per_task", "by_size", "format_size_table", "format_kendall"]


def per_task(evidence: "pd.DataFrame", calibration: Calibration, reference: CalibratedRule,
             fastai_seeds: Mapping[str, Mapping[int, float]]) -> "pd.DataFrame":
    """One row per task of ``calibration`` (fitted by ``calibrate`` on ``evidence``): its best cell,
    the advice, today's constant (``reference``), fastai, and the seed spread."""
    import pandas as pd

    curves = Curves.from_evidence(evidence)
    by_seed = {int(s): Curves.from_evidence(evidence[evidence["seed"] == s]) for s in sorted(evidence["seed"].unique())}
    rows = []
    for task, row in (calibration.provenance.get("per_dataset") or {}).items():
        arm, rate = row["loo_cell"]
        ref_arm, ref_rate = rule_cell(reference, row.get("predictors") or {})
        advice_seeds = {s: c.score(task, arm, rate) for s, c in by_seed.items() if task in c.best}
        advice_seeds = {s: v for s, v in advice_seeds.items() if math.isfinite(v)}
        fastai = {int(s): float(v) for s, v in (fastai_seeds.get(task) or {}).items()}
        spreads = [max(v.values()) - min(v.values()) for v in (advice_seeds, fastai) if len(v) > 1]
        rows.append({"dataset": task, "base": split_size(task)[0], "size": split_size(task)[1],
                     "n_seeds": len(advice_seeds), "best": float(row["best_score"]),
                     "advice": curves.score(task, arm, rate), "advice_cell": f"{arm} at 1e{float(rate):+.2f}",
                     "constant": curves.score(task, ref_arm, ref_rate),
                     "fastai": float(np.mean(list(fastai.values()))) if fastai else math.nan,
                     "seed_spread": max(spreads) if spreads else math.nan})
    return pd.DataFrame(rows).sort_values(["size", "dataset"]).reset_index(drop=True)


def by_size(table: "pd.DataFrame") -> "pd.DataFrame":
    """Per size: the means of the advice, today's constant, fastai and the best cell; the advice's
    lead over fastai and gap to the best; how many tasks are behind fastai beyond their seed spread."""
    t = table.assign(behind_any=table["fastai"] > table["advice"],
                     behind=(table["fastai"] - table["advice"]) > table["seed_spread"],
                     one_seed=~np.isfinite(table["seed_spread"].astype(float)))
    out = t.groupby("size").agg(n=("dataset", "size"), advice=("advice", "mean"), constant=("constant", "mean"),
                                fastai=("fastai", "mean"), best=("best", "mean"), behind_fastai=("behind_any", "sum"),
                                behind_beyond_spread=("behind", "sum"), one_seed=("one_seed", "sum"))
    out["advice_minus_fastai"] = out["advice"] - out["fastai"]
    out["gap_to_best"] = out["best"] - out["advice"]
    return out.round(4)


def format_size_table(table: "pd.DataFrame") -> str:
    """Markdown: the per-size summary, then every task (``*``: behind fastai beyond its seed spread)."""
    summary = by_size(table)
    lines = ["| images a class | tasks | advice (LOO) | today's constant | fastai `fine_tune` | best cell | "
             "advice − fastai | gap to best | behind fastai | of them beyond seed spread | tasks with one seed |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size, r in summary.iterrows():
        lines.append(f"| {size} | {int(r['n'])} | {r['advice']:.3f} | {r['constant']:.3f} | {r['fastai']:.3f} | "
                     f"{r['best']:.3f} | {r['advice_minus_fastai']:+.3f} | {r['gap_to_best']:.3f} | "
                     f"{int(r['behind_fastai'])} | {int(r['behind_beyond_spread'])} | {int(r['one_seed'])} |")
    lines += ["", "| task | seeds | advice cell | advice | constant | fastai | best | seed spread |",
              "|---|---:|---|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        behind = " *" if r["fastai"] - r["advice"] > r["seed_spread"] else ""
        spread = "n/a" if not math.isfinite(r["seed_spread"]) else f"{r['seed_spread']:.3f}"
        lines.append(f"| {r['dataset']}{behind} | {int(r['n_seeds'])} | {r['advice_cell']} | {r['advice']:.3f} | "
                     f"{r['constant']:.3f} | {r['fastai']:.3f} | {r['best']:.3f} | {spread} |")
    return "\n".join(lines)


def format_kendall(taus: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> str:
    """Markdown: each predictor's Kendall tau with each target (``calibrate``'s ``kendall_tau``),
    with its p-value and n."""
    targets = sorted({t for row in taus.values() for t in row})
    lines = ["| predictor | " + " | ".join(f"{t}: τ (p, n)" for t in targets) + " |",
             "|---|" + "---:|" * len(targets)]
    for predictor, row in taus.items():
        cells = []
        for t in targets:
            v = row.get(t)
            cells.append("n/a" if not v or v.get("tau") is None else f"{v['tau']:+.3f} ({v['p']:.3f}, {v['n']})")
        lines.append(f"| {predictor} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
