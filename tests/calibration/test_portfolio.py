"""tune's portfolio: greedy cells that complement the rule's, and a leave-one-out version that
never looks at the dataset it is scored on."""
from __future__ import annotations

import numpy as np
import pytest

from finetune_advisor.calibration import Calibration
from finetune_advisor.calibration.fit import Curves
from finetune_advisor.calibration.portfolio import best_of_regret, greedy_portfolio, leave_one_out_portfolios
from finetune_advisor.heuristics.policies import CalibratedRule

RATES = np.array([-3.0, -2.5, -2.0, -1.5])
RULE = CalibratedRule("all_half", -3.0)


def curves(peaks: dict[str, tuple[str, float]]) -> Curves:
    """Each dataset scores 1 at its peak cell, falling 0.2 a half-decade away, and 0.3 lower on
    the other arm."""
    rates, scores = {}, {}
    for d, (arm, peak) in peaks.items():
        for a in ("all_half", "head_only"):
            rates[(d, a)] = RATES
            scores[(d, a)] = 1.0 - 0.4 * np.abs(RATES - peak) - (0.0 if a == arm else 0.3)
    return Curves(rates, scores, {d: 1.0 for d in peaks})


PEAKS = {"a": ("all_half", -3.0), "b": ("all_half", -3.0), "c": ("head_only", -2.0), "d": ("head_only", -2.0),
         "e": ("all_half", -1.5)}
FEATURES = {d: {} for d in PEAKS}


def test_the_portfolio_adds_what_the_rule_misses_most_often_first():
    port = greedy_portfolio(curves(PEAKS), {d: ("all_half", -3.0) for d in PEAKS}, size=3)
    assert port[:2] == [("head_only", -2.0), ("all_half", -1.5)]
    assert ("all_half", -3.0) not in port                 # the rule's own cell is never repeated
    c = curves(PEAKS)
    assert all(best_of_regret(c, d, [("all_half", -3.0), *port[:2]]) == pytest.approx(0) for d in PEAKS)


def test_leave_one_out_portfolios_never_see_the_left_out_dataset():
    c = curves(PEAKS)
    portfolios, regrets = leave_one_out_portfolios(c, {d: RULE for d in PEAKS}, FEATURES, size=2)
    # e is the only dataset peaking at 1e-1.5: without it, nothing points there
    assert ("all_half", -1.5) not in portfolios["e"] and ("all_half", -1.5) in portfolios["a"]
    # changing e's own curves changes nothing in the portfolio fitted without it
    moved = curves({**PEAKS, "e": ("head_only", -1.5)})
    assert leave_one_out_portfolios(moved, {d: RULE for d in PEAKS}, FEATURES, size=2)[0]["e"] == portfolios["e"]
    assert regrets[0] > regrets[1] >= regrets[2] >= 0    # each cell tried helps or holds, on held-out data


def test_old_calibration_files_load_with_no_portfolio(tmp_path):
    cal = Calibration(RULE, "toynet", "cpu", portfolio=(("head_only", -2.0),))
    data = cal.to_dict()
    del data["portfolio"]
    old = Calibration.from_dict(data)
    assert old.portfolio == () and old.portfolio_for("any") == ()
    assert Calibration.load(cal.save(tmp_path / "c.json")).portfolio == (("head_only", -2.0),)
