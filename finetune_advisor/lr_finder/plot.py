"""Draw an LR range test: raw and smoothed loss against the learning rate, the picks marked."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._plotting import new_figure
from ..measurements import LRFinderResult

__all__ = ["plot_lr_finder", "loss_ylim"]


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
    limits = loss_ylim(raw, smooth)
    if limits is not None:  # keep the divergent tail from squashing the interesting part
        ax.set_ylim(*limits)
        top = float(np.nanmax(np.where(np.isfinite(raw), raw, np.nan))) if np.isfinite(raw).any() else None
        if top is not None and top > limits[1]:
            ax.annotate(f"clipped: the loss reaches {top:.3g}", xy=(0.99, 0.98), xycoords="axes fraction",
                        ha="right", va="top", fontsize="small", color="0.4")
    ax.legend(fontsize="small", loc="lower left")
    return ax


def loss_ylim(raw: Any, smooth: Any, *, head: float = 0.15) -> tuple[float, float] | None:
    """The useful y range of a range test's curve, as fastai's own plot keeps it: from a little
    below the lowest loss to a little (``head`` of the span) above the starting loss, so a
    divergent tail (a loss of 3,500 after a start near 2) cannot flatten the descent.

    The starting loss is the median of the first few finite raw losses (one noisy first batch
    does not set it); None when nothing is finite.

    >>> raw = [2.0, 2.1, 1.9, 1.5, 0.9, 0.6, 0.8, 5.0, 80.0, 3500.0]
    >>> lo, hi = loss_ylim(raw, [2.0, 2.0, 1.9, 1.5, 1.0, 0.7, 0.8])
    >>> round(lo, 2), round(hi, 2)
    (0.53, 2.21)
    """
    raw = np.asarray(raw, dtype=float)
    smooth = np.asarray(smooth, dtype=float)
    finite_raw = raw[np.isfinite(raw)]
    values = np.concatenate([finite_raw, smooth[np.isfinite(smooth)]])
    if not values.size:
        return None
    first = finite_raw[:max(3, finite_raw.size // 20)] if finite_raw.size else values[:1]
    start = float(np.median(first))
    lowest = float(values.min())
    if smooth.size and np.isfinite(smooth).any():   # the curve's own top before divergence, if above the start
        start = max(start, float(np.nanmax(smooth[: max(1, smooth.size // 10)])))
    span = max(start - lowest, 0.05 * abs(start), 1e-8)
    return lowest - 0.05 * span, start + head * span
