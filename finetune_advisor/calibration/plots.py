"""The leave-one-dataset-out validation as a figure: per dataset, each role's score minus fastai
``fine_tune``'s, with the spread over seeds, so goal (c) reads at a glance (a dot left of zero
by more than its bar: worse than the default beyond the noise).

The numbers are computed apart from the drawing (:func:`validation_plot_data`), as Optuna's
plots do, so they can be checked and reused without matplotlib.

>>> from finetune_advisor.calibration.loo_table import ValidationTable
>>> rows = ({"dataset": "a", "calibrated_mean": 0.8, "calibrated_std": 0.01, "calibrated_n": 3,
...          "fastai_fine_tune_mean": 0.7, "fastai_fine_tune_std": 0.02, "fastai_fine_tune_n": 3},)
>>> data = validation_plot_data(ValidationTable("t", rows, {}))
>>> data[["dataset", "role", "minus_fine_tune"]].round(3).values.tolist()
[['a', 'calibrated', 0.1]]
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .._plotting import new_figure

if TYPE_CHECKING:
    import pandas as pd

    from .loo_table import ValidationTable

__all__ = ["validation_plot_data", "plot_validation"]

COMPARED = ("calibrated", "study", "fastai_lr_find", "lr_find_valley", "oracle")   # each against fastai fine_tune
STYLE = {"calibrated": ("tab:blue", "o"), "study": ("tab:red", "s"), "fastai_lr_find": ("tab:purple", "v"),
         "lr_find_valley": ("tab:orange", "^"), "oracle": ("tab:green", "D")}


def _number(x) -> float:
    return math.nan if x is None else float(x)


def validation_plot_data(table: "ValidationTable") -> "pd.DataFrame":
    """One row per (dataset, role of :data:`COMPARED` with a score): ``mean``, ``std`` (0 with one
    seed), ``n``, ``minus_fine_tune`` (the role's mean minus fine_tune's on the dataset) and
    ``order`` (the datasets sorted by the calibrated policy's margin, worst first)."""
    import pandas as pd

    out = []
    for row in table.rows:
        ft = _number(row.get("fastai_fine_tune_mean"))
        for role in COMPARED:
            mean = _number(row.get(f"{role}_mean"))
            if math.isnan(mean) or math.isnan(ft):
                continue
            std = _number(row.get(f"{role}_std"))
            out.append({"dataset": row["dataset"], "role": role, "mean": mean, "std": 0.0 if math.isnan(std) else std,
                        "n": int(row.get(f"{role}_n") or 0), "minus_fine_tune": mean - ft})
    data = pd.DataFrame(out, columns=["dataset", "role", "mean", "std", "n", "minus_fine_tune"])
    margin = data[data["role"] == "calibrated"].set_index("dataset")["minus_fine_tune"]
    order = {d: i for i, d in enumerate(sorted(data["dataset"].unique(), key=lambda d: margin.get(d, math.inf)))}
    return data.assign(order=data["dataset"].map(order))


def plot_validation(table: "ValidationTable"):
    """A matplotlib ``Figure``: per dataset (rows, worst calibrated margin at the top), each
    role's mean score minus fine_tune's, with ±1 std over seeds."""
    data = validation_plot_data(table)
    n = max(int(data["order"].max()) + 1, 1) if len(data) else 1
    fig, ax = new_figure(7, 1.2 + 0.35 * n)
    offsets = {role: (i - (len(COMPARED) - 1) / 2) * 0.18 for i, role in enumerate(COMPARED)}
    for role in COMPARED:
        part = data[data["role"] == role]
        if part.empty:
            continue
        color, marker = STYLE[role]
        ax.errorbar(part["minus_fine_tune"], part["order"] + offsets[role], xerr=part["std"], fmt=marker,
                    color=color, ms=5, capsize=2, lw=1, label=role.replace("_", " "))
    ax.axvline(0.0, color="0.3", lw=1)
    labels = data.drop_duplicates("dataset").sort_values("order")
    ax.set_yticks(list(labels["order"]), list(labels["dataset"]))
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("score minus fastai fine_tune's (accuracy; macro ROC AUC for multi-label)")
    seeds = len((table.info or {}).get("seeds") or ())
    ax.set_title(f"{table.study}: leave-one-dataset-out" + (f", {seeds} seeds" if seeds else ""), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if len(data):
        ax.legend(fontsize=8, loc="best")
    return fig
