"""plot_history: losses and metric per epoch, the unfreeze and the baseline marked."""
from __future__ import annotations

import pytest


def test_plot_history_on_given_axes(single_run, tmp_path):
    from matplotlib.figure import Figure

    from finetune_advisor.train import plot_history
    res, _ = single_run
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_history(res.history, tmp_path / "c.png", ax=ax) is fig
    assert (tmp_path / "c.png").stat().st_size > 0
    assert any(line.get_label() == "unfreeze" for line in ax.get_lines())
    fig = plot_history(res.history, baseline=res.baseline)
    lines = {ln.get_label(): ln for a in fig.axes for ln in a.get_lines()}
    assert lines["majority baseline"].get_ydata()[0] == pytest.approx(res.baseline["value"])
    assert lines["majority baseline (valid)"].get_ydata()[0] == pytest.approx(res.baseline["log_loss"])
