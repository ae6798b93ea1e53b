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
