"""What to expect before training: the linear probe's accuracy on the cached features against
the fine-tuned accuracy of the advice, across a calibration's datasets, leave-one-dataset-out
(pure).

For each single-label calibration dataset the advice's accuracy is read off its sweep curve at
the rate of the rule fitted without it (``best_score - loo_regret``). A line ``accuracy = a + b ×
probe`` is fitted on the other datasets and predicts the one left out; the interval is the
10th to 90th percentile of those left-out errors. The line is kept only when its left-out error
beats predicting the other datasets' mean accuracy; otherwise the probe predicts nothing useful
and no number is shown (a negative result, said plainly).

>>> per = {d: {"best_score": s, "loo_regret": 0.0, "multi_label": False, "predictors": {"probe_accuracy": p}}
...        for d, s, p in [("a", 0.50, 0.40), ("b", 0.60, 0.50), ("c", 0.70, 0.60), ("d", 0.81, 0.70)]}
>>> fit = expectation_fit(per)
>>> fit["useful"], round(fit["slope"], 2), fit["n_datasets"]
(True, 1.03, 4)
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["expectation_fit", "MIN_DATASETS"]

MIN_DATASETS = 4          # fewer, and a left-out line rests on two points


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def expectation_fit(per_dataset: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The probe → fine-tuned accuracy line and its leave-one-out errors (see the module)."""
    rows = []
    for d, row in sorted(per_dataset.items()):
        probe = ((row.get("predictors") or {}).get("probe_accuracy"))
        if row.get("multi_label") or probe is None or not math.isfinite(probe):
            continue
        rows.append((d, float(probe), float(row["best_score"]) - float(row.get("loo_regret") or 0.0)))
    if len(rows) < MIN_DATASETS:
        return {"useful": False, "n_datasets": len(rows),
                "why": f"only {len(rows)} single-label calibration datasets with a probe accuracy"}
    names = [r[0] for r in rows]
    x, y = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    errors, mean_errors = {}, {}
    for i, d in enumerate(names):
        keep = np.arange(len(rows)) != i
        a, b = _line(x[keep], y[keep])
        errors[d] = float(y[i] - (a + b * x[i]))
        mean_errors[d] = float(y[i] - y[keep].mean())
    mae = float(np.mean(np.abs(list(errors.values()))))
    mean_mae = float(np.mean(np.abs(list(mean_errors.values()))))
    intercept, slope = _line(x, y)
    out = {"intercept": round(intercept, 4), "slope": round(slope, 4), "n_datasets": len(rows),
           "loo_mae": round(mae, 4), "mean_only_loo_mae": round(mean_mae, 4),
           "error_q10": round(float(np.quantile(list(errors.values()), 0.1)), 4),
           "error_q90": round(float(np.quantile(list(errors.values()), 0.9)), 4),
           "probe_range": [round(float(x.min()), 4), round(float(x.max()), 4)],
           "loo_errors": {d: round(e, 4) for d, e in errors.items()}, "useful": mae < mean_mae}
    if not out["useful"]:
        out["why"] = (f"the probe predicts the advice's accuracy no better than the calibration datasets' mean "
                      f"(left-out error {mae:.3f} vs {mean_mae:.3f})")
    return out
