"""plot_lr_finder: the curves and the picks, marked and labelled."""
from __future__ import annotations

from finetune_advisor.lr_finder import LRFinderResult, plot_lr_finder, suggest_lr


def test_plot_lr_finder(synthetic_curve):
    lrs, y = synthetic_curve(-3.0)
    s = suggest_lr(lrs, y)
    r = LRFinderResult(lr=s.lr, lrs=tuple(lrs), losses_raw=tuple(y), losses_smooth=tuple(s.smoothed),
                       index=s.index, fastai_valley=2e-3, fastai_steep=None, loss_kind="train",
                       n_steps=len(lrs), diverged=True)
    ax = plot_lr_finder(r, divided_lr=s.lr / 10)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xscale() == "log"
    assert any("steepest" in t for t in labels) and any("valley" in t for t in labels)
    assert any("recommended" in t for t in labels) and not any("fastai steep" in t for t in labels)
    assert type(ax.figure).__module__ == "matplotlib.figure"             # no pyplot state touched


def test_divergent_tail_does_not_flatten_the_curve():
    """A tail reaching thousands (after a start near 2): the y-axis keeps the descent, as fastai's plot does."""
    import numpy as np
    lrs = np.logspace(-7, 1, 100)
    x = np.log10(lrs)
    y = 2.0 - 0.8 * np.tanh((x + 3.0) / 0.4)
    y = np.where(x > -1, y + 10 ** (2.5 * (x + 1)), y)            # 1.2 at the bottom, 3,500+ at the end
    y = y + np.random.default_rng(0).normal(0, 0.03, y.size)
    assert y.max() > 3000
    s = suggest_lr(lrs, y)
    r = LRFinderResult(lr=s.lr, lrs=tuple(lrs), losses_raw=tuple(y), losses_smooth=tuple(s.smoothed),
                       index=s.index, fastai_valley=2e-3, loss_kind="valid", n_steps=len(lrs), diverged=True)
    ax = plot_lr_finder(r)
    lo, hi = ax.get_ylim()
    assert lo < 1.2 and 2.7 < hi < 4.0                               # minimum to a bit above the start (~2.8)
    descent = (2.8 - 1.2) / (hi - lo)
    assert descent > 0.6                                              # the descent fills most of the axis
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"clipped: the loss reaches {y.max():.3g}"]
