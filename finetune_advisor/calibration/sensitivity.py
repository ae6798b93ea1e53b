"""How sure the calibrated advice is, read off the calibration sweep leave-one-dataset-out (pure).

For each dataset the rule is the one fitted *without* it (its rate ``r``, its arm), and every
number is that dataset's regret curve read at ``r`` moved by some offset, minus its regret at
``r``: what being off costs on a dataset the rule has not seen.

- **band**: the head rates around the rule's whose mean loss over the datasets stays within
  :data:`WITHIN` (one point) of the rule's own, and on how many datasets each one's loss stays
  within a point across the whole band;
- **cost of being off**: the mean and worst loss at the rate ×3 and ×10, up and down;
- **unfrozen ratio**: the loss of the other depth arms at the same rate (``all_half`` is the
  unfrozen phase at lr/2, ``all_tenth`` at lr/10);
- **fastai's fine_tune**: what its default settings lose against the rule, on the same datasets;
- **runner-up**: the portfolio's first cell, and the leave-one-out regret of trying both.

>>> import pandas as pd
>>> from finetune_advisor.calibration.fit import Curves
>>> from finetune_advisor.heuristics.policies import CalibratedRule
>>> ev = pd.DataFrame({"dataset": ["a"] * 3 + ["b"] * 3, "arm": "all_half", "log10_lr": [-3.0, -2.0, -1.0] * 2,
...                    "score": [0.7, 0.8, 0.5, 0.6, 0.9, 0.8]})
>>> rules = {d: CalibratedRule("all_half", -2.0) for d in "ab"}
>>> s = sensitivity(Curves.from_evidence(ev), rules, {"a": {}, "b": {}}, fastai={"a": 0.75, "b": 0.8})
>>> s["off"]["x10_up"], s["off"]["x10_down"]           # a loses 0.3 and b 0.1 at 1e-1; 0.1 and 0.3 at 1e-3
({'mean': 0.2, 'worst': 0.3, 'worst_dataset': 'a'}, {'mean': 0.2, 'worst': 0.3, 'worst_dataset': 'b'})
>>> s["fastai_fine_tune"]                               # 0.8 - 0.75 on a, 0.9 - 0.8 on b
{'mean': 0.075, 'worst': 0.1, 'worst_dataset': 'b'}
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..heuristics.policies import ARMS, CalibratedRule
from .fit import Curves

__all__ = ["WITHIN", "OFFSETS", "sensitivity", "SENSITIVITY_VERSION"]

SENSITIVITY_VERSION = 1
WITHIN = 0.01                           # one point of accuracy (or of macro ROC AUC)
OFFSETS = {"x3_up": math.log10(3), "x3_down": -math.log10(3), "x10_up": 1.0, "x10_down": -1.0}
_BAND_STEP = 0.05                        # decades
_BAND_REACH = 2.0


def _stats(losses: Mapping[str, float]) -> dict[str, Any] | None:
    """Mean and worst of the finite losses (a dataset without that arm's curve has none); None if none."""
    losses = {d: v for d, v in losses.items() if math.isfinite(v)}
    if not losses:
        return None
    worst = max(losses, key=losses.get)
    return {"mean": round(float(np.mean(list(losses.values()))), 4), "worst": round(float(losses[worst]), 4),
            "worst_dataset": worst}


def sensitivity(curves: Curves, loo_rules: Mapping[str, CalibratedRule],
                features: Mapping[str, Mapping[str, float | None]], *, fastai: Mapping[str, float] | None = None,
                rule: CalibratedRule | None = None, portfolio: Sequence[tuple[str, float]] = (),
                portfolio_loo: Sequence[float] = ()) -> dict[str, Any]:
    """The sensitivity table (see the module) as plain JSON values; ``rule`` (the full fit's) places
    the band in absolute rates (default: the first dataset's left-out rule)."""
    datasets = [d for d in curves.datasets if d in loo_rules]
    at = {}
    for d in datasets:
        r = loo_rules[d]
        x = (features.get(d) or {}).get(r.predictor) if r.predictor != "none" else None
        at[d] = (r.sweep_arm, r.log10_lr(x))

    def loss(d: str, offset: float, arm: str | None = None) -> float:
        own_arm, rate = at[d]
        return curves.regret(d, arm or own_arm, rate + offset) - curves.regret(d, own_arm, rate)

    off = {name: _stats({d: loss(d, k) for d in datasets}) for name, k in OFFSETS.items()}
    grid = np.round(np.arange(-_BAND_REACH, _BAND_REACH + 1e-9, _BAND_STEP), 4)
    mean_loss = {float(k): float(np.nanmean([loss(d, k) for d in datasets])) for k in grid}
    low = high = 0.0
    while low - _BAND_STEP >= -_BAND_REACH - 1e-9 and mean_loss[round(low - _BAND_STEP, 4)] <= WITHIN:
        low = round(low - _BAND_STEP, 4)
    while high + _BAND_STEP <= _BAND_REACH + 1e-9 and mean_loss[round(high + _BAND_STEP, 4)] <= WITHIN:
        high = round(high + _BAND_STEP, 4)
    inside = [k for k in grid if low - 1e-9 <= k <= high + 1e-9]
    n_within = sum(all(loss(d, k) <= WITHIN + 1e-9 for k in inside) for d in datasets)
    placed = rule or loo_rules[datasets[0]]
    centre, arm = placed.log10_lr(None), placed.arm
    schedule = placed.sweep_arm[len(placed.arm):]      # the other depth arms under the rule's schedule
    ratios = {}
    for other, (depth, ratio) in ARMS.items():
        row = (_stats({d: loss(d, 0.0, other + schedule) for d in datasets}) if depth == "all" and ratio is not None
               else None)
        if row is not None:                      # an arm the sweep did not run has no row
            ratios[other] = {"ratio": ratio, **row}
    out: dict[str, Any] = {
        "version": SENSITIVITY_VERSION, "within": WITHIN, "n_datasets": len(datasets),
        "band": {"log10_lr_low": round(centre + low, 3), "log10_lr_high": round(centre + high, 3),
                 "n_within": int(n_within), "arm": arm},
        "off": off,
        "unfrozen_ratio": ratios,
        "ratio_band": sorted(a for a, row in ratios.items() if row["mean"] <= WITHIN),
    }
    if fastai:
        gaps = _stats({d: curves.score(d, *at[d]) - fastai[d] for d in datasets if fastai.get(d) is not None})
        if gaps is not None:
            out["fastai_fine_tune"] = gaps
    if portfolio:
        first = portfolio[0]
        out["runner_up"] = {"arm": first[0], "log10_lr": float(first[1]),
                            "loo_regret_rule_alone": portfolio_loo[0] if portfolio_loo else None,
                            "loo_regret_try_both": portfolio_loo[1] if len(portfolio_loo) > 1 else None}
    return out
