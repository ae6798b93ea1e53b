"""bench's ``tune@<N>x`` anchor: :func:`~finetune_advisor.tune.tune` from a bench cell's baseline
with a budget of N of its runs, on the same data and protocol (fraction, seed, image cap), its
best trial recorded as the cell's result."""
from __future__ import annotations

import json
import tempfile
from types import SimpleNamespace
from typing import Any

from ..bench.grid import TUNE_ANCHOR_PREFIX, is_tune_anchor
from ..config import Config
from ..data import Dataset
from ..exceptions import ConfigError
from .budget import parse_budget
from .ledger import ROLE_ATTR, replay
from .search import tune

__all__ = ["tune_anchor_trial", "anytime_metric"]


def tune_anchor_trial(config: Config, dataset: Dataset, anchor: str, *, seed: int,
                      max_images_per_class: int | None = None, **tune_kwargs: Any) -> dict[str, Any]:
    """Tune from ``config`` with the anchor's budget; the bench trial's user attrs.

    ``metric`` (the value the bench study records) is the best trial's main metric (accuracy, or
    accuracy_multi beside its ``roc_auc_macro`` on a multi-label dataset); ``wall_time_s`` is
    the whole search's; ``tune_kwargs`` go to :func:`~finetune_advisor.tune.tune` (bench passes
    ``leave_out``: its dataset's name); ``tune_history`` (JSON) keeps each finished trial's number, state,
    value, role, wall time and main metric, so :func:`anytime_metric` can read a smaller budget's
    result off it. The search's own study lives in a temporary folder: a bench worker killed
    during it runs the anchor again from the start.

    Examples
    --------
    >>> out = tune_anchor_trial(baseline, dataset, "tune@3x", seed=0)   # doctest: +SKIP
    >>> out["metric"] >= out["tune_recommendation_metric"]             # doctest: +SKIP
    True
    """
    if not is_tune_anchor(anchor):
        raise ConfigError(f"{anchor!r} is not a tune anchor", hint=f"e.g. {TUNE_ANCHOR_PREFIX}3x")
    budget = anchor[len(TUNE_ANCHOR_PREFIX):]
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as folder:
        res = tune(dataset, budget, config=config, seed=seed, out_dir=folder, progress=False,
                   max_images_per_class=max_images_per_class, **tune_kwargs)
    best = next((r for r in res.trials if r["number"] == res.best_trial), None)
    if best is None:
        raise ConfigError(f"{anchor}: no trial of the search completed")
    final = best.get("final_metrics") or {}
    name = best.get("metric_name") or res.metric
    rec = next((r for r in res.trials if r["number"] == res.recommendation_trial), {})
    return {"metric": float(final.get(name, res.best_value)), "metric_name": name,
            "valid_loss": float(final.get("valid_loss", float("nan"))),
            "roc_auc_macro": float(final.get("roc_auc_macro", float("nan"))),
            "wall_time_s": float(res.spent_s), "tune_budget_s": res.budget_s, "tune_trials": res.n_trials,
            "tune_pruned": res.n_pruned, "tune_best_trial": res.best_trial, "tune_value": res.best_value,
            "tune_recommendation_metric": float((rec.get("final_metrics") or {}).get(name, float("nan"))),
            "tune_best_config": None if res.best_config is None else res.best_config.to_json(indent=None),
            "tune_portfolio_trials": sum(r.get("portfolio") is not None for r in res.trials),
            "tune_history": json.dumps([[r["number"], r["state"], r["value"], r[ROLE_ATTR], r.get("wall_time_s"),
                                         (r.get("final_metrics") or {}).get(name)] for r in res.trials])}


def anytime_metric(history: str, budget: str) -> float | None:
    """The main metric a search with the smaller ``budget`` would have ended with, read off a
    larger search's ``tune_history`` (see :func:`~finetune_advisor.tune.ledger.replay`): its best
    complete trial among those that budget lets start. None when none completed.

    >>> h = json.dumps([[0, "COMPLETE", 0.8, "recommendation", 10.0, 0.8], [1, "PRUNED", 0.5, "search", 4.0, None],
    ...                 [2, "COMPLETE", 0.9, "search", 10.0, 0.9], [3, "COMPLETE", 0.95, "search", 10.0, 0.95]])
    >>> anytime_metric(h, "2.5x"), anytime_metric(h, "4x")
    (0.9, 0.95)
    """
    trials = [SimpleNamespace(number=n, state=SimpleNamespace(name=state), value=value,
                              user_attrs={ROLE_ATTR: role, "wall_time_s": wall}, metric=metric)
              for n, state, value, role, wall, metric in json.loads(history)]
    complete = [t for t in replay(trials, parse_budget(budget)) if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value, default=None)
    return None if best is None else best.metric
