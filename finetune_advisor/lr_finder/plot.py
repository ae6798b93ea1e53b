"""Draw an LR range test: raw and smoothed loss against the learning rate, the picks marked."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._plotting import new_figure
from ..measurements import LRFinderResult

__all__ = ["plot_lr_finder"]


def plot_lr_finder(result: LRFinderResult, ax: Any = None, divided_lr: float | None = None) -> Any:
    """Plot raw and smoothed loss against the learning rate (log scale) with the picks marked.

    Parameters
    ----------
    result : LRFinderResult
    ax : matplotlib.axes.Axes, optional
        Drawn into; a new figure is made when None (``ax.figure``; save it with
        :func:`finetune_advisor._plotting.save_png` or ``savefig``).
    divided_lr : float, optional
        The learning rate actually recommended when it differs from the pick (e.g. the
        study's ``lr / 10`` for datasets far from ImageNet); drawn as a dashed line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ax is None:
        _, ax = new_figure(6, 4)
    lrs = np.asarray(result.lrs, dtype=float)
    raw = np.asarray(result.losses_raw, dtype=float)
    smooth = np.asarray(result.losses_smooth, dtype=float)
    ax.plot(lrs, raw, color="0.7", lw=1, label=f"raw {result.loss_kind} loss")
    ax.plot(lrs[:smooth.size], smooth, color="C0", lw=2, label="smoothed")
    ax.plot([result.lr], [smooth[result.index]], "o", color="C3", label=f"steepest {result.lr:.1e}")
    for value, name, color in ((result.fastai_valley, "fastai valley", "C2"),
                               (result.fastai_steep, "fastai steep", "C1")):
        if value is not None:
            ax.axvline(value, color=color, ls=":", label=f"{name} {value:.1e}")
    if divided_lr is not None:
        ax.axvline(divided_lr, color="C3", ls="--", label=f"recommended {divided_lr:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    finite = np.concatenate([raw[np.isfinite(raw)], smooth])
    if finite.size:  # keep the divergent tail from squashing the interesting part
        lo, hi = float(finite.min()), float(np.percentile(finite, 95))
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.legend(fontsize="small")
    return ax
