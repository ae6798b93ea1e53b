"""Fitting the calibrated policy on a calibration sweep, and judging it leave-one-dataset-out.

The evidence is one accuracy curve per dataset and depth arm: the metric (mean over seeds) at
each absolute head learning rate of the sweep. A rule's *regret* on a dataset is the best cell's
metric minus the metric at the rule's rate, read off the arm's curve (linear in log10 lr between
grid points). With about a dozen datasets the rules are kept small: a constant rate, or a line
in one predictor, with one depth arm. Each candidate family is fitted by grid search to the
lowest mean regret; :func:`leave_one_out` refits it without each dataset in turn and scores it
on the one left out, which is how a family (and its predictor) is chosen.

>>> import pandas as pd
>>> ev = pd.DataFrame({"dataset": ["a"] * 3 + ["b"] * 3, "arm": "all_half",
...                    "log10_lr": [-3.0, -2.5, -2.0] * 2, "score": [0.5, 0.8, 0.6, 0.4, 0.7, 1.0]})
>>> curves = Curves.from_evidence(ev)
>>> fit = fit_family(curves, {"a": {}, "b": {}}, "constant")
>>> fit.rule.arm, round(fit.rule.intercept, 2), round(fit.mean_regret, 3)
('all_half', -2.0, 0.1)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..exceptions import ConfigError
from ..heuristics.policies import ARMS, CalibratedRule
from ..heuristics.schedule import split_schedule

if TYPE_CHECKING:
    import pandas as pd

# Candidate families: "constant" (one rate), or "linear:<predictor>" (a line in one predictor).
FAMILY_PREDICTORS = ("similarity", "log10_finder_lr", "log10_valley_lr", "log10_images_per_class",
                     "log10_classes", "log10_images", "logme", "probe_accuracy")
INTERCEPT_STEP = 0.05            # log10 lr resolution of the grid search
# The fit scores a rate by its regret averaged over these offsets (decades): a user's dataset
# has its optimum somewhere near the fitted rate, not exactly on it, so a broad plateau beats a
# sharp peak of the same height; linear interpolation between grid points also favours the
# grid points themselves, which this evens out. Leave-one-out scores the exact rate.
ROBUST_OFFSETS = (-0.25, 0.0, 0.25)
SLOPES = tuple(np.round(np.arange(-3.0, 3.0001, 0.1), 2))   # per unit of the (standardised) predictor


@dataclass(frozen=True)
class Curves:
    """Per dataset and arm: the sweep's log10 rates and the mean metric at each, and the best."""

    rates: Mapping[tuple[str, str], np.ndarray]
    scores: Mapping[tuple[str, str], np.ndarray]
    best: Mapping[str, float]
    n_seeds: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_evidence(cls, evidence: "pd.DataFrame") -> "Curves":
        """``evidence`` columns: dataset, arm, log10_lr, score (one row per cell x seed)."""
        missing = {"dataset", "arm", "log10_lr", "score"} - set(evidence.columns)
        if missing:
            raise ConfigError(f"calibration evidence lacks column(s) {sorted(missing)}")
        ev = evidence.dropna(subset=["score"])
        means = ev.groupby(["dataset", "arm", "log10_lr"])["score"].mean().reset_index()
        rates, scores = {}, {}
        for (ds, arm), g in means.groupby(["dataset", "arm"]):
            g = g.sort_values("log10_lr")
            rates[(ds, arm)] = g["log10_lr"].to_numpy(float)
            scores[(ds, arm)] = g["score"].to_numpy(float)
        best = means.groupby("dataset")["score"].max().to_dict()
        seeds = ev.groupby("dataset")["seed"].nunique().to_dict() if "seed" in ev else {}
        return cls(rates, scores, best, seeds)

    @property
    def datasets(self) -> list[str]:
        return sorted(self.best)

    def score(self, dataset: str, arm: str, log10_lr: float) -> float:
        """The arm's metric at ``log10_lr`` (linear between grid points, flat beyond them)."""
        key = (dataset, arm)
        if key not in self.rates:
            return math.nan
        return float(np.interp(log10_lr, self.rates[key], self.scores[key]))

    def regret(self, dataset: str, arm: str, log10_lr: float) -> float:
        return self.best[dataset] - self.score(dataset, arm, log10_lr)

    def best_cell(self, dataset: str) -> tuple[str, float]:
        """(arm, log10 lr) of the dataset's best grid cell."""
        cells = [(self.scores[k][i], k[1], self.rates[k][i]) for k in self.rates if k[0] == dataset
                 for i in range(len(self.rates[k]))]
        _, arm, rate = max(cells)
        return arm, float(rate)

    def subset(self, datasets: Sequence[str]) -> "Curves":
        keep = set(datasets)
        return Curves({k: v for k, v in self.rates.items() if k[0] in keep},
                      {k: v for k, v in self.scores.items() if k[0] in keep},
                      {k: v for k, v in self.best.items() if k in keep},
                      {k: v for k, v in self.n_seeds.items() if k in keep})

    def rate_range(self, arm: str | None = None) -> tuple[float, float]:
        """The lowest and highest rate the sweep ran (in ``arm`` only, when given)."""
        all_rates = np.concatenate([v for k, v in self.rates.items() if arm is None or k[1] == arm])
        return float(all_rates.min()), float(all_rates.max())

    @property
    def arms(self) -> list[str]:
        """The arms with a curve, in :data:`ARMS` order, each under the fixed epochs before its
        step-rule schedules (``"all_half"``, ``"all_half:steps32"``, ...)."""
        names = {k[1] for k in self.rates}
        order = list(ARMS)

        def key(arm: str) -> tuple[int, int]:
            base, steps = split_schedule(arm)
            return order.index(base) if base in order else len(order), 0 if steps is None else steps.steps
        return sorted((a for a in names if split_schedule(a)[0] in ARMS), key=key)


@dataclass(frozen=True)
class FamilyFit:
    family: str
    rule: CalibratedRule
    mean_regret: float                        # in-sample, over the datasets it was fitted on
    regrets: Mapping[str, float]


def _predictor_of(family: str) -> str:
    if family == "constant":
        return "none"
    kind, _, predictor = family.partition(":")
    if kind != "linear" or predictor not in FAMILY_PREDICTORS:
        raise ConfigError(f"unknown rule family {family!r}; choose 'constant' or 'linear:<predictor>' with a "
                          f"predictor from {FAMILY_PREDICTORS}")
    return predictor


def families(features: Mapping[str, Mapping[str, float | None]]) -> list[str]:
    """The candidate families the features support (a predictor measured on every dataset)."""
    out = ["constant"]
    for p in FAMILY_PREDICTORS:
        if features and all(f.get(p) is not None and math.isfinite(f[p]) for f in features.values()):
            out.append(f"linear:{p}")
    return out


def fit_family(curves: Curves, features: Mapping[str, Mapping[str, float | None]], family: str,
               arms: Sequence[str] | None = None, offsets: Sequence[float] = ROBUST_OFFSETS) -> FamilyFit:
    """Grid-search the family's parameters (arm, intercept, slope) to the lowest mean regret.

    The predictor is centred at its mean and the slope searched per standard deviation, then
    expressed in the predictor's own units, so a rule reads "10^(a + b × (x − centre))". A rate
    is scored by its regret averaged over :data:`ROBUST_OFFSETS` around it (``offsets=(0,)``:
    the regret at the rate alone); the reported regrets are at the rate itself.
    """
    predictor = _predictor_of(family)
    datasets = curves.datasets
    if not datasets:
        raise ConfigError("no datasets to fit a calibration on")
    arms = [a for a in (arms or curves.arms) if any((d, a) in curves.rates for d in datasets)]
    if predictor == "none":
        x = np.zeros(len(datasets))
        center, scale, slopes = 0.0, 1.0, (0.0,)
    else:
        x = np.array([float(features[d][predictor]) for d in datasets])
        center, scale = float(x.mean()), float(x.std()) or 1.0
        slopes = SLOPES
    z = (x - center) / scale
    best: tuple[float, str, float, float, float, float] | None = None
    for arm in arms:
        # an arm's rates stay within those it ran (a schedule sweep runs the head alone at one rate)
        lo, hi = curves.rate_range(arm)
        intercepts = np.arange(lo, hi + 1e-9, INTERCEPT_STEP)
        for b in slopes:
            # rates per (intercept, dataset); regret per dataset read off its curve
            centre_rates = intercepts[:, None] + b * z[None, :]
            regret = np.zeros_like(centre_rates)
            for offset in offsets:
                rates = np.clip(centre_rates + offset, lo, hi)
                regret += np.stack([curves.best[d] - np.interp(rates[:, j], curves.rates[(d, arm)],
                                                               curves.scores[(d, arm)])
                                    if (d, arm) in curves.rates else np.full(len(intercepts), np.inf)
                                    for j, d in enumerate(datasets)], axis=1)
            regret /= len(offsets)
            mean = regret.mean(axis=1)
            i = int(np.argmin(mean))
            # ties: prefer the flatter line (fewer effective parameters)
            cand = (float(mean[i]) + 1e-9 * abs(b), arm, float(intercepts[i]), float(b), lo, hi)
            if best is None or cand < best:
                best = cand
    _, arm, a, b, lo, hi = best
    base, steps = split_schedule(arm)
    rule = CalibratedRule(arm=base, intercept=round(a, 4), predictor=predictor, slope=round(b / scale, 6),
                          center=round(center, 6), log10_lr_min=lo, log10_lr_max=hi,
                          steps=None if steps is None else steps.steps)
    regrets = {d: curves.regret(d, arm, rule.log10_lr(None if predictor == "none" else features[d][predictor]))
               for d in datasets}
    return FamilyFit(family, rule, float(np.mean(list(regrets.values()))), regrets)


@dataclass(frozen=True)
class LeaveOneOut:
    """Per family: the regret on each dataset of the rule fitted without it."""

    regrets: Mapping[str, Mapping[str, float]]          # family -> dataset -> regret
    rules: Mapping[str, Mapping[str, CalibratedRule]]   # family -> left-out dataset -> rule

    def mean(self, family: str) -> float:
        """Mean over the left-out datasets the rule could be scored on (a partial sweep may lack
        the chosen arm's curve on one: NaN, skipped); inf when none could be."""
        values = np.array(list(self.regrets[family].values()), dtype=float)
        values = values[np.isfinite(values)]
        return float(values.mean()) if len(values) else math.inf

    def standard_error(self, family: str) -> float:
        """Standard error of :meth:`mean` over the left-out datasets."""
        values = np.array(list(self.regrets[family].values()), dtype=float)
        values = values[np.isfinite(values)]
        return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.inf

    def best_family(self) -> str:
        """The simplest family (listed first: the constant rate) whose mean leave-one-out regret
        is within one standard error of the lowest (Breiman's one-standard-error rule).

        Choosing among several families by the same dozen left-out datasets is itself a fit; a
        line in a predictor has to beat the constant rate by more than the noise of that choice
        before the advice depends on the predictor.
        """
        order = list(self.regrets)
        best = min(order, key=lambda f: (round(self.mean(f), 6), order.index(f)))
        se = self.standard_error(best)
        limit = self.mean(best) + (se if math.isfinite(se) else 0.0)
        return next(f for f in order if self.mean(f) <= limit + 1e-12)

    def table(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self.regrets).rename_axis("dataset")


def leave_one_out(curves: Curves, features: Mapping[str, Mapping[str, float | None]],
                  candidate_families: Sequence[str] | None = None, *, groups: Mapping[str, str] | None = None,
                  arms: Sequence[str] | None = None) -> LeaveOneOut:
    """Fit each family without each dataset, and score it on that dataset.

    ``groups`` maps a dataset to the group left out with it: the sizes of one dataset
    (``pets@10``, ``pets@30``, ``pets@100``: ``bench.base_name``) leave together, so a size
    never leaks into the fit that is scored on another. ``arms`` limits the fit to those arms
    (e.g. the fixed-epoch ones, to judge a schedule against them).

    >>> import pandas as pd
    >>> ev = pd.DataFrame({"dataset": ["a@10"] * 2 + ["a@100"] * 2 + ["b@10"] * 2, "arm": "all_half",
    ...                    "log10_lr": [-3.0, -2.0] * 3, "score": [0.5, 0.9, 0.6, 0.8, 0.9, 0.5]})
    >>> loo = leave_one_out(Curves.from_evidence(ev), {}, ["constant"], groups={"a@10": "a", "a@100": "a", "b@10": "b"})
    >>> {d: round(r, 2) for d, r in loo.regrets["constant"].items()}   # a's sizes by b's rule (-3), b by a's (-2)
    {'a@10': 0.4, 'a@100': 0.2, 'b@10': 0.4}
    """
    candidate_families = list(candidate_families or families(features))
    groups = groups or {d: d for d in curves.datasets}
    regrets: dict[str, dict[str, float]] = {f: {} for f in candidate_families}
    rules: dict[str, dict[str, CalibratedRule]] = {f: {} for f in candidate_families}
    for group in sorted({groups.get(d, d) for d in curves.datasets}):
        held_out = [d for d in curves.datasets if groups.get(d, d) == group]
        rest = [d for d in curves.datasets if groups.get(d, d) != group]
        if not rest:
            continue
        sub = curves.subset(rest)
        for fam in candidate_families:
            fit = fit_family(sub, features, fam, arms=arms)
            for d in held_out:
                x = None if fit.rule.predictor == "none" else features[d][fit.rule.predictor]
                regrets[fam][d] = curves.regret(d, fit.rule.sweep_arm, fit.rule.log10_lr(x))
                rules[fam][d] = fit.rule
    return LeaveOneOut(regrets, rules)


def kendall_taus(curves: Curves, features: Mapping[str, Mapping[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Kendall's tau between each predictor and (a) each dataset's best log10 rate, (b) its
    fine-tune gain (best whole-network metric minus best head-only metric), and, where the sweep
    has step-rule schedules, (c) their gain (best step-rule metric minus best fixed-epoch one)."""
    from scipy.stats import kendalltau

    targets: dict[str, dict[str, float]] = {"best_log10_lr": {}, "fine_tune_gain": {}, "steps_gain": {}}
    for d in curves.datasets:
        targets["best_log10_lr"][d] = curves.best_cell(d)[1]
        best_of = {a: float(curves.scores[(d, a)].max()) for a in curves.arms if (d, a) in curves.scores}
        head = [v for a, v in best_of.items() if split_schedule(a)[0] == "head_only"]
        whole = [v for a, v in best_of.items() if split_schedule(a)[0] != "head_only"]
        if head and whole:
            targets["fine_tune_gain"][d] = max(whole) - max(head)
        stepped = [v for a, v in best_of.items() if split_schedule(a)[1] is not None]
        fixed = [v for a, v in best_of.items() if split_schedule(a)[1] is None]
        if stepped and fixed:
            targets["steps_gain"][d] = max(stepped) - max(fixed)
    out: dict[str, dict[str, Any]] = {}
    for p in FAMILY_PREDICTORS:
        for name, target in targets.items():
            ds = [d for d in target if features.get(d, {}).get(p) is not None]
            if len(ds) < 3:
                continue
            tau, pvalue = kendalltau([features[d][p] for d in ds], [target[d] for d in ds])
            out.setdefault(p, {})[name] = {"tau": None if math.isnan(tau) else round(float(tau), 3),
                                           "p": None if math.isnan(pvalue) else round(float(pvalue), 3),
                                           "n": len(ds)}
    return out
