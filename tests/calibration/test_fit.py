"""The calibration fit on synthetic sweeps whose best rates follow a known rule."""
import math

import numpy as np
import pandas as pd
import pytest

from finetune_advisor.calibration.fit import Curves, families, fit_family, kendall_taus, leave_one_out

GRID = np.arange(-4.0, -0.99, 0.5)


def synthetic_sweep(best_log_lr: dict, *, arms=("head_only", "all_half", "all_tenth"), arm_bonus=None,
                    seeds=(0, 1), noise=0.0, width=1.0):
    """Accuracy peaks at each dataset's best rate and falls off quadratically in log10 lr."""
    rng = np.random.default_rng(0)
    rows = []
    for d, opt in best_log_lr.items():
        for arm in arms:
            for lr in GRID:
                for s in seeds:
                    score = 0.9 + (arm_bonus or {}).get(arm, 0.0) - ((lr - opt) / width) ** 2 * 0.1
                    rows.append({"dataset": d, "arm": arm, "log10_lr": lr, "seed": s,
                                 "score": score + noise * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_constant_rule_finds_the_shared_best_rate_and_arm():
    ev = synthetic_sweep({"a": -2.5, "b": -2.5, "c": -2.5}, arm_bonus={"all_half": 0.05})
    fit = fit_family(Curves.from_evidence(ev), {d: {} for d in "abc"}, "constant")
    assert fit.rule.arm == "all_half"
    assert fit.rule.intercept == pytest.approx(-2.5, abs=0.051)
    assert fit.mean_regret == pytest.approx(0.0, abs=1e-3)


def test_linear_rule_recovers_a_known_slope_and_intercept():
    x = {"a": 0.55, "b": 0.65, "c": 0.75, "d": 0.85, "e": 0.95}
    # truth: the less similar, the larger the best rate (Li et al., ICLR 2020)
    truth = {d: -2.5 - 5.0 * (v - 0.75) for d, v in x.items()}
    ev = synthetic_sweep(truth)
    features = {d: {"similarity": v} for d, v in x.items()}
    fit = fit_family(Curves.from_evidence(ev), features, "linear:similarity")
    assert fit.rule.predictor == "similarity"
    assert fit.rule.center == pytest.approx(0.75)
    assert fit.rule.intercept == pytest.approx(-2.5, abs=0.06)
    assert fit.rule.slope == pytest.approx(-5.0, rel=0.1)
    assert fit.mean_regret < 2e-3
    for d, v in x.items():
        assert fit.rule.log10_lr(v) == pytest.approx(truth[d], abs=0.1)


def test_leave_one_out_prefers_the_rule_that_generalises():
    x = {d: v for d, v in zip("abcdef", (0.5, 0.6, 0.7, 0.8, 0.9, 0.95))}
    truth = {d: -2.0 - 4.0 * (v - 0.75) for d, v in x.items()}
    ev = synthetic_sweep(truth, noise=0.002)
    decoy = dict(zip("abcdef", (2.3, 1.9, 2.8, 2.0, 2.6, 2.1)))       # unrelated to the best rate
    features = {d: {"similarity": v, "log10_images_per_class": decoy[d]} for d, v in x.items()}
    curves = Curves.from_evidence(ev)
    loo = leave_one_out(curves, features)
    assert set(loo.regrets) == {"constant", "linear:similarity", "linear:log10_images_per_class"}
    assert loo.best_family() == "linear:similarity"
    assert loo.mean("linear:similarity") < loo.mean("constant")
    # each left-out dataset was scored by a rule fitted without it
    assert set(loo.rules["constant"]) == set("abcdef")
    table = loo.table()
    assert list(table.index) == sorted("abcdef") and "constant" in table.columns


def test_regret_reads_between_grid_points_and_clips_beyond_them():
    ev = pd.DataFrame({"dataset": "a", "arm": "all_half", "log10_lr": [-3.0, -2.0], "score": [0.5, 0.7]})
    c = Curves.from_evidence(ev)
    assert c.score("a", "all_half", -2.5) == pytest.approx(0.6)
    assert c.score("a", "all_half", -1.0) == pytest.approx(0.7)
    assert c.regret("a", "all_half", -3.0) == pytest.approx(0.2)
    assert math.isnan(c.score("a", "head_only", -2.0))
    assert c.best_cell("a") == ("all_half", -2.0)


def test_families_need_a_predictor_measured_on_every_dataset():
    assert families({"a": {"similarity": 0.7}, "b": {"similarity": None}}) == ["constant"]
    assert families({"a": {"similarity": 0.7}, "b": {"similarity": 0.8}}) == ["constant", "linear:similarity"]


def test_kendall_tau_sign_follows_the_relation():
    x = {d: v for d, v in zip("abcde", (0.5, 0.6, 0.7, 0.8, 0.9))}
    ev = synthetic_sweep({d: -2.0 - 4.0 * (v - 0.7) for d, v in x.items()})
    taus = kendall_taus(Curves.from_evidence(ev), {d: {"similarity": v} for d, v in x.items()})
    assert taus["similarity"]["best_log10_lr"]["tau"] < -0.8
    assert taus["similarity"]["best_log10_lr"]["n"] == 5


def test_leave_one_out_mean_skips_datasets_the_rule_cannot_be_scored_on():
    from finetune_advisor.calibration.fit import LeaveOneOut

    loo = LeaveOneOut({"constant": {"a": 0.1, "b": float("nan"), "c": 0.3}, "linear:x": {"a": float("nan")}}, {})
    assert loo.mean("constant") == pytest.approx(0.2)
    assert loo.mean("linear:x") == float("inf") and loo.best_family() == "constant"


def test_a_predictor_must_beat_the_constant_rate_by_more_than_the_noise():
    from finetune_advisor.calibration.fit import LeaveOneOut

    constant = {"a": 0.02, "b": 0.06, "c": 0.01, "d": 0.05}
    slightly_better = {d: v - 0.005 for d, v in constant.items()}     # within one standard error
    loo = LeaveOneOut({"constant": constant, "linear:logme": slightly_better}, {})
    assert loo.mean("linear:logme") < loo.mean("constant")
    assert loo.best_family() == "constant"
    much_better = {d: 0.001 for d in constant}
    assert LeaveOneOut({"constant": constant, "linear:logme": much_better}, {}).best_family() == "linear:logme"


def test_the_fit_prefers_a_broad_plateau_to_a_sharp_peak_of_the_same_height():
    rates = [-3.0, -2.5, -2.0, -1.5, -1.0]
    rows = []
    for d in "abc":
        for lr, sharp, broad in zip(rates, (0.5, 0.9, 0.5, 0.5, 0.5), (0.5, 0.6, 0.88, 0.88, 0.88)):
            rows += [{"dataset": d, "arm": "all_half", "log10_lr": lr, "score": sharp},
                     {"dataset": d, "arm": "all_tenth", "log10_lr": lr, "score": broad}]
    curves = Curves.from_evidence(pd.DataFrame(rows))
    robust = fit_family(curves, {d: {} for d in "abc"}, "constant")
    assert robust.rule.arm == "all_tenth" and -2.0 <= robust.rule.intercept <= -1.5
    exact = fit_family(curves, {d: {} for d in "abc"}, "constant", offsets=(0.0,))
    assert exact.rule.arm == "all_half" and exact.rule.intercept == pytest.approx(-2.5)
