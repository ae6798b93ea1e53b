"""benchmarks/fidelity_ladder.py's table, on a hand-made results table (numbers worked by hand)."""
import math

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def ladder(load_benchmark):
    return load_benchmark("fidelity_ladder")


SCORES = {   # dataset -> label -> (seed 0, seed 1)
    "a": {"anchor:calibrated": (0.80, 0.84), "anchor:advice_x3": (0.70, 0.72), "anchor:advice_div3": (0.86, 0.90),
          "anchor:advice_div10": (0.84, 0.86), "anchor:fastai_fine_tune": (0.80, 0.80), "baseline": (0.50, 0.60)},
    "b": {"anchor:calibrated": (0.90, 0.90), "anchor:advice_x3": (0.90, 0.90), "anchor:advice_div3": (0.80, 0.80),
          "anchor:advice_div10": (0.60, 0.60), "anchor:fastai_fine_tune": (0.85, 0.85), "baseline": (0.70, 0.70)},
    "c": {"anchor:calibrated": (0.5,), "baseline": (0.4,)},                   # partial: left out of the means
}
RATES = {"anchor:calibrated": 10 ** -2.5, "anchor:advice_x3": 3 * 10 ** -2.5, "anchor:advice_div3": 10 ** -2.5 / 3,
         "anchor:advice_div10": 10 ** -3.5, "anchor:fastai_fine_tune": 2e-3, "baseline": 1e-3}


def _results():
    rows = [{"dataset": d, "label": lab, "parameter": "anchor" if lab != "baseline" else "baseline", "seed": seed,
             "metric": m} for d, cells in SCORES.items() for lab, ms in cells.items() for seed, m in enumerate(ms)]
    return pd.DataFrame(rows)


def test_the_table_gives_means_spreads_winners_gaps_and_rate_moves(ladder):
    rates = {(d, lab): RATES[lab] for d in SCORES for lab in SCORES[d]}
    table = ladder.ladder_table(_results(), rates, {"a": [-2.5], "b": [-3.0, -2.5]}, {"a": 50})
    a, b, c = table["rows"]
    assert a["cells"]["calibrated"] == pytest.approx({"mean": 0.82, "spread": 0.02, "n": 2})
    assert a["winners"] == ["advice /3"] and a["advice_gap"] == pytest.approx(0.06)
    assert a["best_log10_lr"] == pytest.approx([-2.5 - math.log10(3)])
    assert a["lr_move_decades"] == pytest.approx(-math.log10(3)) and a["one_image"] == 0.02
    assert a["at_edge"] is None      # / 10 was tried below the best: the move is measured
    # b: the advice and x3 tie at the best; the move is from the middle of the 64 px sweep's tie (-2.75)
    assert b["winners"] == ["calibrated", "advice x3"] and b["advice_gap"] == 0
    assert b["lr_move_decades"] == pytest.approx((-2.5 + -2.5 + math.log10(3)) / 2 + 2.75)
    assert b["at_edge"] == "high"    # x 3, the highest rate tried, is among the best: the move is a bound
    assert not c["complete"] and c["cells"]["study"]["n"] == 1
    s = table["summary"]
    assert s["n_datasets"] == 2 and s["n_partial"] == 1
    assert s["mean"]["calibrated"] == pytest.approx(0.86) and s["mean"]["advice /3"] == pytest.approx(0.84)
    assert s["mean_advice_gap"] == pytest.approx(0.03) and s["advice_holds"] is False
    assert s["best_mean_cell"] == "calibrated" and s["gap_to_best_mean_cell"] == 0
    assert s["mean"]["advice /10"] == pytest.approx(0.725) and s["n_at_edge"] == 1
    text = ladder.format_table(table, title="t", command="cmd")
    assert "| c (partial) |" in text and "does not hold" in text and "| **mean** (2) |" in text
    assert "(highest tried)" in text and "On 1 of 2 datasets the best advice rate is the lowest or highest" in text


def test_best_rates_read_the_arm_over_the_seeds_every_rate_has(ladder):
    sweep = pd.DataFrame([
        {"dataset": "a", "parameter": "lr_all_half", "value": -3.0, "seed": 0, "metric": 0.7},
        {"dataset": "a", "parameter": "lr_all_half", "value": -2.5, "seed": 0, "metric": 0.6},
        {"dataset": "a", "parameter": "lr_all_half", "value": -2.5, "seed": 1, "metric": 0.99},   # unpaired
        {"dataset": "a", "parameter": "lr_head_only", "value": -1.5, "seed": 0, "metric": 0.9},   # another arm
    ])
    assert ladder.best_rates(sweep) == {"a": [-3.0]}


def test_scores_equal_but_for_float32_rounding_tie(ladder):
    """33/36 stored by two trials as float32 reads 0.91666666 and 0.91666669: the same count of images."""
    cells = {lab: (0.5, 0.5) for lab in ladder.CELLS}
    cells["anchor:calibrated"], cells["baseline"] = (0.9166666567325592,) * 2, (0.9166666865348816,) * 2
    results = pd.DataFrame([{"dataset": "p", "label": lab, "seed": s, "metric": m}
                            for lab, ms in cells.items() for s, m in enumerate(ms)])
    row = ladder.ladder_table(results, {("p", lab): RATES.get(lab, 1e-3) for lab in cells}, {})["rows"][0]
    assert row["winners"] == ["calibrated", "study"] and row["advice_gap"] == 0.0
