"""Optuna's own figures of a tune study, as PNG files: the optimisation history and the parameter
importances (:mod:`optuna.visualization.matplotlib`). A figure that cannot be drawn (too few
completed trials, parameters that never varied) is skipped with a note, never an error."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

from .._plotting import save_png

__all__ = ["write_plots", "importance_problem"]


def importance_problem(study: Any) -> str | None:
    """Why the importances cannot be computed (None: they can): they need two completed trials
    whose parameters differ in a parameter every completed trial has.

    >>> from types import SimpleNamespace as T
    >>> done = T(name="COMPLETE")
    >>> importance_problem(T(get_trials=lambda deepcopy=False: [T(state=done, params={"lr": 0.1})]))
    'parameter importances need at least 2 completed trials (1 so far)'
    """
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return f"parameter importances need at least 2 completed trials ({len(complete)} so far)"
    common = set.intersection(*(set(t.params) for t in complete))
    if not any(len({repr(t.params[p]) for t in complete}) > 1 for p in common):
        return "parameter importances need completed trials whose parameters differ"
    return None


def write_plots(study: Any, out: Path, names: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``history_plot`` and ``importance_plot`` (keys of ``names``, file names in ``out``) for
    the Optuna ``study``; returns ``(files written by kind, notes on those skipped)``."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    files: dict[str, str] = {}
    notes: list[str] = []
    jobs = [("history_plot", vis.plot_optimization_history, None),
            ("importance_plot", vis.plot_param_importances, importance_problem(study))]
    for kind, draw, problem in jobs:
        path = out / names[kind]
        if problem:
            notes.append(f"no {path.name}: {problem}")
            path.unlink(missing_ok=True)     # a stale one from an earlier run would mislead
            continue
        # Optuna sets pyplot's style sheet globally: keep it to this figure
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning
            try:
                ax = draw(study)
            except Exception as exc:  # noqa: BLE001 -- a figure must never cost the results
                notes.append(f"no {path.name}: {type(exc).__name__}: {exc}")
                continue
            fig = ax.figure
            try:
                fig.tight_layout()          # long parameter names stay inside the image
                files[kind] = str(save_png(fig, path))
            finally:
                plt.close(fig)
    return files, notes
