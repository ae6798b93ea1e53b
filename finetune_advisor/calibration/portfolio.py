"""The cells ``tune`` tries right after the recommendation (pure): a greedy portfolio read off
the calibration sweep's curves, each cell chosen to lower most the mean regret of the best cell
tried so far, starting from the calibrated rule's own cell (Auto-sklearn 2.0's and Quick-Tune's
zero-shot portfolios, on our arms x rates grid).

A search's first trials decide what a small budget buys: at 3x the recommendation's cost a
TPE search has run the recommendation and two random draws. On the EfficientNet-Lite0 sweep,
the best of the rule's cell and the portfolio's next two, chosen without the dataset scored,
halves the rule's leave-one-out regret (0.046 to 0.023).

>>> import numpy as np
>>> from finetune_advisor.calibration.fit import Curves
>>> r = np.array([-3.0, -2.0])
>>> curves = Curves({("a", "all_half"): r, ("a", "head_only"): r, ("b", "all_half"): r, ("b", "head_only"): r},
...                 {("a", "all_half"): np.array([0.9, 0.5]), ("a", "head_only"): np.array([0.2, 0.1]),
...                  ("b", "all_half"): np.array([0.5, 0.6]), ("b", "head_only"): np.array([0.3, 0.8])},
...                 {"a": 0.9, "b": 0.8})
>>> greedy_portfolio(curves, {"a": ("all_half", -3.0), "b": ("all_half", -3.0)}, size=2)
[('head_only', -2.0), ('all_half', -2.0)]
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..heuristics.policies import CalibratedRule
from .fit import Curves

__all__ = ["PORTFOLIO_SIZE", "Cell", "rule_cell", "greedy_portfolio", "best_of_regret", "leave_one_out_portfolios"]

PORTFOLIO_SIZE = 4          # cells after the rule's: a 5x budget runs them all (TPE then takes over)
Cell = tuple[str, float]    # (arm, log10 lr)


def rule_cell(rule: CalibratedRule, features: Mapping[str, float | None]) -> Cell:
    """The rule's (arm as the sweep names it, with its schedule; log10 lr) on a dataset with these
    predictor values."""
    return rule.sweep_arm, rule.log10_lr(None if rule.predictor == "none" else features.get(rule.predictor))


def best_of_regret(curves: Curves, dataset: str, cells: Sequence[Cell]) -> float:
    """The dataset's regret of the best of ``cells`` (read off its curves)."""
    return min(curves.regret(dataset, arm, rate) for arm, rate in cells)


def greedy_portfolio(curves: Curves, first: Mapping[str, Cell], size: int = PORTFOLIO_SIZE) -> list[Cell]:
    """``size`` grid cells to try after each dataset's ``first`` cell (the rule's), greedily:
    each the one that most lowers the mean over the datasets of the best-of-cells regret. Ties go
    to the first in (arm name, rate) order; a cell that lowers nothing is still added (the next
    trial has to be something). The rule's cell itself, when it is the same on every dataset (a
    constant rule on the grid), is never repeated."""
    datasets = curves.datasets
    firsts = {first[d] for d in datasets}
    cells = sorted({(arm, float(rate)) for (_, arm), rates in curves.rates.items() for rate in rates
                    if all((d, arm) in curves.rates for d in datasets)} - (firsts if len(firsts) == 1 else set()))
    regrets = {c: np.array([curves.regret(d, *c) for d in datasets]) for c in cells}   # read each curve once
    chosen: list[Cell] = []
    current = np.array([curves.regret(d, *first[d]) for d in datasets])
    for _ in range(min(size, len(cells))):
        options = [c for c in cells if c not in chosen]
        pick = options[int(np.argmin([np.minimum(current, regrets[c]).mean() for c in options]))]
        chosen.append(pick)
        current = np.minimum(current, regrets[pick])
    return chosen


def leave_one_out_portfolios(curves: Curves, rules: Mapping[str, CalibratedRule],
                             features: Mapping[str, Mapping[str, float | None]], size: int = PORTFOLIO_SIZE
                             ) -> tuple[dict[str, list[Cell]], list[float]]:
    """Per dataset, the portfolio fitted without it (after ``rules[dataset]``, the rule fitted
    without it); and the mean over the datasets of the best-of regret of the left-out rule's
    cell plus the first k cells of its portfolio, for k = 0 .. size."""
    portfolios: dict[str, list[Cell]] = {}
    regrets = np.zeros((len(curves.datasets), size + 1))
    for i, held_out in enumerate(curves.datasets):
        rest = [d for d in curves.datasets if d != held_out]
        rule = rules[held_out]
        portfolios[held_out] = greedy_portfolio(curves.subset(rest), {d: rule_cell(rule, features[d]) for d in rest},
                                                size)
        cells = [rule_cell(rule, features[held_out]), *portfolios[held_out]]
        regrets[i] = [best_of_regret(curves, held_out, cells[:k + 1]) for k in range(size + 1)]
    return portfolios, [round(float(v), 4) for v in np.nanmean(regrets, axis=0)]
