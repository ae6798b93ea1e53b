"""What a training run did and measured (:class:`TrainResult`), and the values of its history's
``phase`` column."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._io import to_jsonable
from ..config import Config

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TrainResult", "FROZEN", "UNFROZEN"]

FROZEN, UNFROZEN = "frozen", "unfrozen"     # values of the history's ``phase`` column


@dataclass
class TrainResult:
    """What :func:`~finetune_advisor.train.train` did and measured.

    Attributes
    ----------
    config : Config
        The configuration trained.
    history : pandas.DataFrame
        One row per epoch: ``epoch`` (1-based, across phases), ``phase`` (``"frozen"`` or
        ``"unfrozen"``), ``phase_epoch``, ``train_loss``, ``valid_loss``, the metrics
        (``accuracy``, ``error_rate`` or ``accuracy_multi``, ``f1_score``), ``lr_body``/
        ``lr_head`` (peak LRs of the last body group and the head) and ``seconds``.
    final_metrics : dict
        Last epoch's ``valid_loss`` and metrics.
    baseline : dict
        Majority-class baseline on the validation set (see
        :func:`~finetune_advisor.train.majority_baseline`).
    wall_time_s : float
        Whole call, data preparation and exports included.
    backbone : str
        Name of the backbone actually used (differs from ``config.backbone`` after a fallback).
    n_train, n_valid, n_unreadable : int
        Images used for training / validation, and images skipped because they did not decode.
    files : dict
        Written files by kind (``config``, ``history``, ``curves``, ``model``, ``result``).
    notes : list of str
        Fallbacks and other things the user should know.
    learner : fastai Learner
        The trained learner (not part of :meth:`to_dict`).
    """

    config: Config
    history: "pd.DataFrame"
    final_metrics: dict[str, float]
    baseline: dict[str, Any]
    wall_time_s: float
    backbone: str
    n_train: int
    n_valid: int
    n_unreadable: int = 0
    unreadable: tuple[str, ...] = ()
    seed: int = 0
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    learner: Any = field(default=None, repr=False, compare=False)

    @property
    def main_metric(self) -> str:
        """``accuracy`` (single-label) or ``accuracy_multi`` (multi-label)."""
        return self.baseline["metric"]

    @property
    def beats_baseline(self) -> bool:
        """Whether the model beats the majority-class baseline on the validation set, by a
        margin (:func:`~finetune_advisor.train.baseline.beats_baseline`): a tie is not a win.

        Single-label: at least one more validation image right than the majority class gets
        (both accuracies compared as counts of ``n_valid``, so float32 0.30000001 against
        float64 0.3 is a tie). Multi-label: validation loss (mean binary cross-entropy) below
        the prior predictor's ``baseline["log_loss"]`` by a relative 1e-3, a proper scoring
        rule. ``accuracy_multi`` at a 0.5 threshold is not used: with rare labels the
        all-negative answer wins it unless a label's probability crosses 0.5 (xray-nih: 14 of
        15 labels below 25%); it is reported beside ``roc_auc_macro``.
        """
        from .baseline import beats_baseline
        return beats_baseline(self.final_metrics, self.baseline, self.n_valid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (history as a list of records; no Learner, no DataFrame):
        what ``result.json`` holds."""
        records = json.loads(self.history.to_json(orient="records")) if self.history is not None else []
        return {
            "config": self.config.to_dict(),
            "backbone": self.backbone,
            "seed": self.seed,
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "n_unreadable": self.n_unreadable,
            "unreadable": list(self.unreadable),
            "final_metrics": {k: float(v) for k, v in self.final_metrics.items()},
            "baseline": to_jsonable(self.baseline),
            "beats_baseline": self.beats_baseline,
            "wall_time_s": float(self.wall_time_s),
            "history": records,
            "files": dict(self.files),
            "notes": list(self.notes),
        }
