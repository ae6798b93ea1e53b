"""The validation figure: its numbers (computed apart from drawing) and that it draws."""
from __future__ import annotations

import math

import pytest

from finetune_advisor._plotting import png_bytes
from finetune_advisor.calibration.loo_table import ValidationTable
from finetune_advisor.calibration.plots import plot_validation, validation_plot_data


def _row(ds, cal, ft, oracle=None, cal_std=0.01):
    return {"dataset": ds, "calibrated_mean": cal, "calibrated_std": cal_std, "calibrated_n": 3,
            "fastai_fine_tune_mean": ft, "fastai_fine_tune_std": 0.02, "fastai_fine_tune_n": 3,
            "oracle_mean": oracle, "oracle_std": math.nan, "oracle_n": 1 if oracle is not None else 0}


def test_margins_against_fine_tune_and_worst_first_order():
    table = ValidationTable("t", (_row("good", 0.9, 0.8, oracle=0.95), _row("bad", 0.5, 0.7),
                                  {"dataset": "no_ft", "calibrated_mean": 0.6, "fastai_fine_tune_mean": None}), {},
                            {"seeds": [100, 101, 102]})
    data = validation_plot_data(table)
    got = {(r.dataset, r.role): r for r in data.itertuples()}
    assert set(got) == {("good", "calibrated"), ("good", "oracle"), ("bad", "calibrated")}   # no fine_tune: no dot
    assert got["good", "calibrated"].minus_fine_tune == pytest.approx(0.1)
    assert got["good", "oracle"].minus_fine_tune == pytest.approx(0.15) and got["good", "oracle"].std == 0.0
    assert got["bad", "calibrated"].minus_fine_tune == pytest.approx(-0.2)
    assert got["bad", "calibrated"].order == 0 and got["good", "calibrated"].order == 1       # worst margin on top
    fig = plot_validation(table)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["bad", "good"]
    assert png_bytes(fig)[:4] == b"\x89PNG"


def test_empty_table_still_draws():
    assert png_bytes(plot_validation(ValidationTable("t", (), {}))).startswith(b"\x89PNG")
