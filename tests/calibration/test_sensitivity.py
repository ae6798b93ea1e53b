"""The sensitivity table on a synthetic sweep, checked by hand (issue 27)."""
from __future__ import annotations

import pandas as pd
import pytest

from finetune_advisor.calibration.fit import Curves
from finetune_advisor.calibration.model import Calibration
from finetune_advisor.calibration.sensitivity import sensitivity
from finetune_advisor.heuristics.policies import CalibratedRule


def _curves():
    # two datasets, rates 1e-3 .. 1e-1 in whole decades; all_half peaks at 1e-2 on both,
    # all_tenth is 2 points below all_half everywhere
    rows = []
    for ds, scores in {"a": [0.80, 0.90, 0.60], "b": [0.70, 0.75, 0.74]}.items():
        for rate, score in zip((-3.0, -2.0, -1.0), scores):
            rows += [(ds, "all_half", rate, score), (ds, "all_tenth", rate, score - 0.02)]
    return Curves.from_evidence(pd.DataFrame(rows, columns=["dataset", "arm", "log10_lr", "score"]))


def test_band_costs_ratio_and_runner_up_by_hand():
    rule = CalibratedRule("all_half", -2.0)
    s = sensitivity(_curves(), {"a": rule, "b": rule}, {"a": {}, "b": {}}, rule=rule,
                    portfolio=[("head_only", -1.5)], portfolio_loo=[0.02, 0.005])
    # losses are linear in log10 lr between grid points: a loses 0.10 a decade down and 0.30 up,
    # b 0.05 down and 0.01 up; the mean is 0.075 down and 0.155 up per decade, so a mean loss of
    # 0.01 is passed beyond 0.01 / 0.075 = 0.13 decade down and 0.01 / 0.155 = 0.065 up: on the
    # 0.05-decade grid the band is [-2.10, -1.95]
    assert s["band"]["log10_lr_low"] == pytest.approx(-2.10) and s["band"]["log10_lr_high"] == pytest.approx(-1.95)
    # across that band a loses up to 0.30 * 0.05 = 0.015 (more than a point), b at most 0.005
    assert s["band"]["n_within"] == 1 and s["n_datasets"] == 2
    x3 = 0.47712125472                                # log10(3)
    assert s["off"]["x3_up"]["mean"] == pytest.approx(round((0.30 + 0.01) * x3 / 2, 4))
    assert s["off"]["x3_up"]["worst_dataset"] == "a"
    assert s["off"]["x10_down"] == {"mean": pytest.approx(0.075), "worst": pytest.approx(0.10), "worst_dataset": "a"}
    assert s["unfrozen_ratio"]["all_tenth"]["mean"] == pytest.approx(0.02) and s["ratio_band"] == ["all_half"]
    assert s["runner_up"] == {"arm": "head_only", "log10_lr": -1.5, "loo_regret_rule_alone": 0.02,
                              "loo_regret_try_both": 0.005}


def test_a_calibration_without_a_table_gives_no_band_and_says_why():
    old = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu", provenance={"datasets": ["a"]})
    band, why = old.rate_band(1e-3)
    assert band is None and "has no sensitivity table" in why
    broken = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu", provenance={"sensitivity": {"band": {}}})
    assert broken.rate_band()[0] is None                  # malformed: never an invented band


def test_the_shipped_resnet50_calibration_carries_a_band_around_its_rate():
    from finetune_advisor.calibration.model import shipped_calibrations
    cal = next(c for c in shipped_calibrations() if c.backbone == "resnet50_keras_v1")
    band, why = cal.rate_band(finder_lr=1e-5)
    assert why is None and band.lr_low <= 10 ** cal.rule.intercept <= band.lr_high
    assert band.finder_outside and band.cost_x10_mean > band.cost_x3_mean > 0


def test_a_probe_that_predicts_nothing_gives_no_expected_accuracy():
    from finetune_advisor.calibration.expectation import expectation_fit
    # the advice's accuracy alternates while the probe climbs: the line does worse than the mean
    per = {d: {"best_score": s, "loo_regret": 0.0, "multi_label": False, "predictors": {"probe_accuracy": p}}
           for d, s, p in [("a", 0.9, 0.1), ("b", 0.5, 0.3), ("c", 0.9, 0.5), ("d", 0.5, 0.7), ("e", 0.9, 0.9)]}
    fit = expectation_fit(per)
    assert not fit["useful"] and "no better than" in fit["why"]
    cal = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu", provenance={"expected_accuracy": fit})
    assert cal.expected_accuracy(0.5) == (None, fit["why"])
    assert Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu").expected_accuracy(0.5)[0] is None


def test_the_probe_line_is_checked_leave_one_out_by_hand():
    from finetune_advisor.calibration.expectation import expectation_fit
    # accuracy = probe + 0.1 exactly on three datasets and 0.2 off on the fourth
    per = {d: {"best_score": s, "loo_regret": r, "multi_label": False, "predictors": {"probe_accuracy": p}}
           for d, s, r, p in [("a", 0.6, 0.0, 0.5), ("b", 0.75, 0.05, 0.6), ("c", 0.8, 0.0, 0.7),
                              ("d", 1.0, 0.0, 0.7)]}
    fit = expectation_fit(per)
    # left out, d is predicted by the exact line through a, b, c: 0.8, so its error is +0.2
    assert fit["loo_errors"]["d"] == pytest.approx(0.2)
    assert fit["n_datasets"] == 4


def test_the_summary_lines_say_the_band_the_costs_the_runner_up_and_the_finder():
    from finetune_advisor.cli.output import format_rate_band
    from finetune_advisor.config import Config
    from finetune_advisor.measurements import Measurements, RateBand

    band = RateBand(lr_low=2.5e-3, lr_high=4.5e-3, n_within=4, n_datasets=15, cost_x3_mean=0.036,
                    cost_x3_worst=0.099, cost_x10_mean=0.234, cost_x10_worst=0.851, fastai_loss_mean=0.034,
                    runner_up_arm="all_tenth", runner_up_lr=10 ** -1.5, regret_rule_alone=0.015,
                    regret_try_both=0.008, finder_lr=1.2e-3, finder_outside=True)
    lines = format_rate_band(Config(lr=10 ** -2.5, measurements=Measurements(rate_band=band)))
    assert lines[0].startswith("lr 3.2e-03: within 1 pt of the advice on average from 2.5e-03 to 4.5e-03 (4 of the 15")
    assert "x3 off costs 3.6 pts on average (worst 9.9 pts), x10 off 23.4 pts (worst 85.1 pts)" in lines[0]
    assert lines[1] == ("runner-up: the head at lr 3.2e-02, then the whole network at lr/10; trying both cuts the "
                        "leave-one-out regret from 1.5 pts to 0.8 pts")
    assert lines[2] == "fastai's default fine_tune scores 3.4 pts below the advice on average on the calibration datasets"
    assert lines[3].startswith("the LR finder's pick 1.2e-03 lies outside that band")
    no_band = format_rate_band(Config(measurements=Measurements(rate_band_note="the calibration has no table")))
    assert no_band == ["no confidence band for the rate: the calibration has no table"]
