"""Training curves: loss and metric per epoch across both phases, the unfreeze point marked."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._plotting import new_figure, save_png
from .result import FROZEN, UNFROZEN

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["plot_history"]


def plot_history(history: "pd.DataFrame", path: str | os.PathLike | None = None, ax=None,
                 baseline: dict[str, Any] | None = None):
    """Plot loss and metric per epoch across both phases, the unfreeze point marked.

    Parameters
    ----------
    history : pandas.DataFrame
        :attr:`TrainResult.history` (or ``history.csv`` read back).
    path : path, optional
        Save the figure there as a PNG (atomically).
    ax : matplotlib Axes or pair of Axes, optional
        One Axes: losses on it, the metric on a twin right axis. Two: losses on the first,
        the metric on the second. None: a new 1x2 figure (no pyplot state is touched).
    baseline : dict, optional
        :attr:`TrainResult.baseline`: its ``log_loss`` and ``value`` are drawn as dotted
        lines ("majority baseline") on the loss and metric axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        fig, (ax_loss, ax_metric) = new_figure(10, 4, nrows=1, ncols=2)
    elif isinstance(ax, (list, tuple)) or getattr(ax, "ndim", 0) == 1:
        ax_loss, ax_metric = ax[0], ax[1]
        fig = ax_loss.figure
    else:
        ax_loss, ax_metric, fig = ax, ax.twinx(), ax.figure

    x = history["epoch"]
    for col, style in (("train_loss", "o-"), ("valid_loss", "s-")):
        if col in history:
            ax_loss.plot(x, history[col], style, label=col.replace("_", " "))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    metric = next((m for m in ("accuracy", "accuracy_multi") if m in history), None)
    if metric is not None:
        ax_metric.plot(x, history[metric], "^-", color="tab:green", label=f"valid {metric}")
        ax_metric.set_ylabel(metric)
        ax_metric.set_xlabel("epoch")
    if baseline:
        if baseline.get("log_loss") is not None:
            ax_loss.axhline(float(baseline["log_loss"]), color="tab:orange", linestyle=":",
                            label="majority baseline (valid)")
        if metric is not None and baseline.get("metric") == metric and baseline.get("value") is not None:
            ax_metric.axhline(float(baseline["value"]), color="tab:green", linestyle=":",
                              label="majority baseline")
    phases = history["phase"].tolist() if "phase" in history else []
    if UNFROZEN in phases and FROZEN in phases:
        first = int(history.loc[history["phase"] == UNFROZEN, "epoch"].min())
        for a in {id(ax_loss): ax_loss, id(ax_metric): ax_metric}.values():
            a.axvline(first - 0.5, color="grey", linestyle="--", label="unfreeze")
    ax_loss.legend(loc="best")
    if metric is not None and ax_metric is not ax_loss:
        ax_metric.legend(loc="lower right")
    if len(x):
        ax_loss.set_xticks(list(x))
        ax_metric.set_xticks(list(x))
    if path is not None:
        save_png(fig, path)
    return fig
