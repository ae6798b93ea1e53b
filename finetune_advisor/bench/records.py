"""What a bench study records beside its trials, as study user attrs (each baseline Config,
where each dataset was read, whether it is a tune study), and how far it is. This module owns
those attrs: it writes and reads them."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from ..config import Config
from .datasets import BenchDataset

__all__ = ["BASELINE_PREFIX", "DATASETS_ATTR", "TUNE_MARK", "baseline_attr", "read_baselines", "write_datasets",
           "read_datasets", "keys_by_state", "study_kind", "study_status"]

BASELINE_PREFIX = "baseline:"


def baseline_attr(dataset: str, fraction: float) -> str:
    """The study user attr that holds the baseline Config of ``dataset`` at ``fraction``.

    >>> baseline_attr("pets", 1.0), baseline_attr("pets", 0.2)
    ('baseline:pets|1', 'baseline:pets|0.2')
    """
    return f"{BASELINE_PREFIX}{dataset}|{fraction:g}"


def read_baselines(study, fraction: float = 1.0) -> dict[str, Config]:
    """Dataset name -> the baseline Config a study stored for ``fraction`` (an Optuna study or
    a :class:`BenchStudy`)."""
    suffix = baseline_attr("", fraction)[len(BASELINE_PREFIX):]
    return {key[len(BASELINE_PREFIX):-len(suffix)]: Config.from_json(text)
            for key, text in study.user_attrs.items() if key.startswith(BASELINE_PREFIX) and key.endswith(suffix)}


DATASETS_ATTR = "datasets"


def write_datasets(study, datasets: "Iterable[BenchDataset]") -> None:
    """Store where each available dataset was read (path, origin, multi-label) as the study's
    ``datasets`` attr, for workers and readers that were not given the list."""
    study.set_user_attr(DATASETS_ATTR, {d.name: {"path": str(d.path), "origin": d.origin, "multi_label": d.multi_label}
                                        for d in datasets if d.available})


def read_datasets(study) -> dict[str, BenchDataset]:
    """Dataset name -> the :class:`BenchDataset` a study stored with :func:`write_datasets` (an
    Optuna study or a :class:`BenchStudy`). The path is as stored: it may not exist here."""
    return {name: BenchDataset(name, Path(info["path"]), info.get("multi_label"), info.get("origin", "custom"))
            for name, info in (study.user_attrs.get(DATASETS_ATTR) or {}).items()}


def keys_by_state(study) -> dict[str, dict[str, int]]:
    """Trial key -> {state name: number of trials}."""
    out: dict[str, dict[str, int]] = {}
    for t in study.get_trials(deepcopy=False):
        k = t.user_attrs.get("key")
        if k is not None:
            d = out.setdefault(k, {})
            d[t.state.name] = d.get(t.state.name, 0) + 1
    return out


TUNE_MARK = "tune_version"      # the user attr a tune study sets first (tune.search): bench's readers tell it apart


def study_kind(study) -> str:
    """``"tune"`` for a study that ``finetune-advisor tune`` made (same storage format, no grid),
    else ``"bench"``."""
    return "tune" if TUNE_MARK in study.user_attrs else "bench"


def study_status(study) -> dict[str, Any]:
    """How far a study (a :class:`BenchStudy` or an Optuna study) is: trials by state, grid keys
    done, per dataset, an ETA, and the baselines trained otherwise than advised
    (``trained_otherwise_than_advised``, :mod:`.adapted`); ``kind`` says which. A tune study has
    no grid: its trials by state and the best value so far."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    attrs = study.user_attrs
    if study_kind(study) == "tune":
        done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
        best = max(done, key=lambda t: t.value, default=None)
        return {"study": study.study_name, "kind": "tune", "n_trials": len(trials), "states": dict(states),
                "best_value": None if best is None else float(best.value),
                "best_trial": None if best is None else best.number, "budget": attrs.get("budget")}
    from .adapted import read_adapted     # which reads the baseline attrs this module owns

    n_grid = int(attrs.get("n_grid", 0))
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("key")]
    keys_done = {t.user_attrs["key"] for t in complete}
    per_ds: dict[str, int] = Counter(t.user_attrs.get("dataset") for t in complete)
    times = [float(t.user_attrs.get("wall_time_s", 0)) for t in complete if t.user_attrs.get("wall_time_s")]
    remaining = max(n_grid - len(keys_done), 0)
    mean_t = sum(times) / len(times) if times else None
    return {"study": study.study_name, "kind": "bench", "n_grid": n_grid, "n_done": len(keys_done),
            "n_remaining": remaining,
            "states": dict(states), "done_by_dataset": dict(per_ds),
            "duplicate_complete_keys": len(complete) - len(keys_done),
            "mean_trial_s": mean_t, "eta_s_one_worker": None if mean_t is None else mean_t * remaining,
            "missing_datasets": attrs.get("missing_datasets", {}), "failed_datasets": attrs.get("failed_datasets", {}),
            "trained_otherwise_than_advised": read_adapted(study),
            "grid_enqueued": bool(attrs.get("grid_enqueued"))}
