"""What a tune run found (:class:`TuneResult`) and its folder: ``tune.json`` (the result),
``best_config.json`` (a Config ``finetune-advisor train --config`` takes as is), ``trials.csv``
and the plots (:mod:`.plots`). :func:`read_tune` is the one reader of the folder (the report
reads it through here)."""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .._io import to_jsonable, write_text_atomic
from ..config import Config
from ..exceptions import FinetuneAdvisorError
from .budget import Budget
from .ledger import ROLE_ATTR, SEARCH, ledger
from .space import PARAMETERS, SearchSpace

__all__ = ["TuneResult", "TuneFolderError", "TUNE_FILES", "summarise", "write_outputs", "read_tune"]

# File names by kind; tune.json is written last (a folder with one holds a finished run).
TUNE_FILES: Mapping[str, str] = MappingProxyType({
    "best_config": "best_config.json", "trials": "trials.csv", "history_plot": "history.png",
    "importance_plot": "importance.png", "result": "tune.json"})
TRIAL_COLUMNS = ("number", "state", "value", ROLE_ATTR, *PARAMETERS, "epochs_planned", "epochs_run",
                 "wall_time_s", "retry_of", "error")


class TuneFolderError(FinetuneAdvisorError):
    """A folder holds no tune output."""


@dataclass
class TuneResult:
    """What :func:`~finetune_advisor.tune.tune` found and spent.

    Attributes
    ----------
    metric : str
        The trials' value: ``accuracy`` (single-label) or ``roc_auc_macro`` (multi-label).
    best_trial, best_value : int, float
        The best completed trial (None when none completed).
    recommendation_trial, recommendation_value : int, float
        Trial 0, the recommendation at full fidelity.
    n_trials, n_complete, n_pruned, n_failed : int
        Finished trials (complete + pruned + failed while training), and each kind.
    budget : str
        As given (``"5x"``, ``"20m"``); ``budget_s`` in seconds; ``unit_s`` is trial 0's wall time.
    spent_s : float
        The wall time of every trial run (all workers).
    stopped : str
        ``"budget"`` or ``"trials"`` (the cap).
    best_config, recommendation : Config
        The best trial's Config (changed fields' reasons say ``"tuned: trial k of n, ..."``) and
        the starting one.
    trials : list of dict
        One row per trial (``trials.csv``).
    space : dict
        The ranges searched (:class:`~.space.SearchSpace`).
    files : dict
        Written files by kind (:data:`TUNE_FILES`).
    """

    study_name: str
    storage: str
    metric: str
    best_trial: int | None
    best_value: float | None
    recommendation_trial: int | None
    recommendation_value: float | None
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    budget: str
    budget_s: float | None
    unit_s: float | None
    spent_s: float
    stopped: str
    best_config: Config | None = None
    recommendation: Config | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    space: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def improvement(self) -> float | None:
        """Best value minus the recommendation's (None when either is unknown)."""
        if self.best_value is None or self.recommendation_value is None:
            return None
        return self.best_value - self.recommendation_value

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: what ``tune.json`` holds."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["best_config"] = None if self.best_config is None else self.best_config.to_dict()
        d["recommendation"] = None if self.recommendation is None else self.recommendation.to_dict()
        d["improvement"] = self.improvement
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TuneResult":
        d = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for k in ("best_config", "recommendation"):
            if d.get(k) is not None:
                d[k] = Config.from_dict(d[k])
        return cls(**d)

    def _against_expectation(self) -> list[str]:
        """Where the best trial lands against the accuracy the advice expected before training
        (``measurements.expected_accuracy``, from the linear probe); nothing when there was none.

        >>> from finetune_advisor.measurements import Measurements
        >>> rec = Config(measurements=Measurements(expected_accuracy=0.78, expected_accuracy_low=0.7,
        ...                                        expected_accuracy_high=0.85))
        >>> TuneResult(study_name="s", storage="", metric="accuracy", best_trial=2, best_value=0.9,
        ...            recommendation_trial=0, recommendation_value=0.8, n_trials=3, n_complete=3, n_pruned=0,
        ...            n_failed=0, budget="3x", budget_s=None, unit_s=None, spent_s=1.0, stopped="budget",
        ...            recommendation=rec)._against_expectation()[0]
        "the search beat the expected accuracy: 0.900 is above the advice's range 0.70-0.85 (about 0.78, from the linear probe)"
        """
        m = None if self.recommendation is None else self.recommendation.measurements
        if m is None or m.expected_accuracy is None or self.best_value is None or self.metric != "accuracy":
            return []
        low, high = m.expected_accuracy_low, m.expected_accuracy_high
        where = ("beat the expected accuracy: {v} is above" if self.best_value > high
                 else "fell short of the expected accuracy: {v} is below" if self.best_value < low
                 else "met the expected accuracy: {v} is within")
        return [f"the search {where.format(v=f'{self.best_value:.3f}')} the advice's range {low:.2f}-{high:.2f} "
                f"(about {m.expected_accuracy:.2f}, from the linear probe)"]

    def summary_lines(self) -> list[str]:
        """A few lines for a terminal."""
        lines = []
        if self.best_value is not None:
            rec = "" if self.recommendation_value is None else \
                f"; the recommendation (trial {self.recommendation_trial}): {self.recommendation_value:.4f}"
            lines.append(f"best {self.metric}: {self.best_value:.4f} (trial {self.best_trial} of {self.n_trials}{rec})")
            lines += self._against_expectation()
        budget = f"{self.budget}" + ("" if self.budget_s is None else f" = {self.budget_s:.0f} s")
        lines.append(f"budget {budget}, spent {self.spent_s:.0f} s on {self.n_trials} trial(s): {self.n_complete} "
                     f"complete, {self.n_pruned} pruned, {self.n_failed} failed (stopped: {self.stopped})")
        lines += [f"{kind}: {path}" for kind, path in self.files.items()]
        lines += [f"note: {n}" for n in self.notes]
        return lines


def _trial_row(t: Any) -> dict[str, Any]:
    a = t.user_attrs
    row = {"number": t.number, "state": t.state.name, "value": t.value, ROLE_ATTR: a.get(ROLE_ATTR, SEARCH)}
    row.update({p: t.params.get(p) for p in PARAMETERS})
    row.update({k: a.get(k) for k in ("epochs_planned", "epochs_run", "wall_time_s", "error", "metric_name",
                                      "final_metrics", "portfolio")})
    row["retry_of"] = a.get("retry_of", t.system_attrs.get("failed_trial"))
    return row


def summarise(study: Any, base: Config, metric: str, budget: Budget, stopped: str) -> TuneResult:
    """The :class:`TuneResult` of ``study`` (a :class:`~finetune_advisor.bench.storage.BenchStudy`)."""
    from ..storage_url import masked_url

    trials = study.get_trials(deepcopy=False)
    led = ledger(trials)
    best_config = None
    if led.best is not None:
        value, number = led.best
        best = next(t for t in trials if t.number == number)
        why = f"tuned: trial {number} of {led.n_finished}, {metric} {value:.4f}"
        if led.recommendation_trial is not None:
            why += f" (the recommendation: {led.recommendation_trial[0]:.4f})"
        best_config = SearchSpace.config_for(base, best.params, reason=why)
    rec_value, rec_number = led.recommendation_trial or (None, None)
    return TuneResult(
        study_name=study.study_name, storage=masked_url(study.url), metric=metric,
        best_trial=None if led.best is None else led.best[1], best_value=None if led.best is None else led.best[0],
        recommendation_trial=rec_number, recommendation_value=rec_value, n_trials=led.n_finished,
        n_complete=led.n_complete, n_pruned=led.n_pruned, n_failed=led.n_failed, budget=budget.text,
        budget_s=budget.seconds(led.unit_s), unit_s=led.unit_s, spent_s=led.spent_s, stopped=stopped,
        best_config=best_config, recommendation=base, trials=[_trial_row(t) for t in trials],
        space=dict(study.user_attrs.get("space") or {}))


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(TRIAL_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in TRIAL_COLUMNS})
    return buf.getvalue()


def write_outputs(result: TuneResult, study: Any, out: str | os.PathLike) -> TuneResult:
    """Write the folder (``tune.json`` last) and record the paths in ``result.files``.
    ``study`` (the Optuna study) feeds the plots; a plot that cannot be drawn is a note."""
    from .plots import write_plots

    out = Path(out)
    files: dict[str, str] = {}
    if result.best_config is not None:
        files["best_config"] = str(write_text_atomic(out / TUNE_FILES["best_config"], result.best_config.to_json()))
    files["trials"] = str(write_text_atomic(out / TUNE_FILES["trials"], _csv(result.trials)))
    plots, notes = write_plots(study, out, {k: TUNE_FILES[k] for k in ("history_plot", "importance_plot")})
    files.update(plots)
    files["result"] = str(out / TUNE_FILES["result"])
    result.files, result.notes = files, notes
    write_text_atomic(out / TUNE_FILES["result"], json.dumps(result.to_dict(), indent=2, allow_nan=False))
    return result


def read_tune(out_dir: str | os.PathLike) -> TuneResult:
    """The :class:`TuneResult` a tune run wrote to ``out_dir`` (``tune.json``, with the Config
    from ``best_config.json``); ``files`` lists those present.

    Raises
    ------
    TuneFolderError
        No ``tune.json`` there, or one that cannot be read.

    Examples
    --------
    >>> res = read_tune("finetune-advisor-tune")      # doctest: +SKIP
    >>> res.best_config.lr                             # doctest: +SKIP
    0.0042
    """
    out = Path(out_dir)
    path = out / TUNE_FILES["result"]
    if not path.is_file():
        raise TuneFolderError("no tune.json: not a tune output folder", path=out,
                              hint="run 'finetune-advisor tune DATASET --out DIR' and pass that DIR")
    try:
        result = TuneResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, FinetuneAdvisorError) as exc:
        raise TuneFolderError(f"tune.json cannot be read ({exc})", path=path,
                              hint="run tune again with the same --out to rewrite it") from None
    best = out / TUNE_FILES["best_config"]
    if best.is_file():
        try:
            result.best_config = Config.from_json(best.read_text(encoding="utf-8"))
        except (OSError, FinetuneAdvisorError) as exc:
            result.notes.append(f"best_config.json cannot be read ({exc}); the one in tune.json is shown")
    result.files = {k: str(out / name) for k, name in TUNE_FILES.items() if (out / name).is_file()}
    return result
