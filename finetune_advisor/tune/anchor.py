"""bench's ``tune@<N>x`` anchor: :func:`~finetune_advisor.tune.tune` from a bench cell's baseline
with a budget of N of its runs, on the same data and protocol (fraction, seed, image cap), its
best trial recorded as the cell's result."""
from __future__ import annotations

import tempfile
from typing import Any

from ..bench.grid import TUNE_ANCHOR_PREFIX, is_tune_anchor
from ..config import Config
from ..data import Dataset
from ..exceptions import ConfigError
from .search import tune

__all__ = ["tune_anchor_trial"]


def tune_anchor_trial(config: Config, dataset: Dataset, anchor: str, *, seed: int,
                      max_images_per_class: int | None = None, **tune_kwargs: Any) -> dict[str, Any]:
    """Tune from ``config`` with the anchor's budget; the bench trial's user attrs.

    ``metric`` (the value the bench study records) is the best trial's main metric (accuracy, or
    accuracy_multi beside its ``roc_auc_macro`` on a multi-label dataset); ``wall_time_s`` is
    the whole search's. The search's own study lives in a temporary folder: a bench worker
    killed during it runs the anchor again from the start.

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
            "tune_best_config": None if res.best_config is None else res.best_config.to_json(indent=None)}
