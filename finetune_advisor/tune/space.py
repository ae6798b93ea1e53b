"""What ``tune`` searches: a few fields of a :class:`~finetune_advisor.config.Config`, in ranges
around the recommendation (pure: no torch, no Optuna import; a trial is anything with Optuna's
``suggest_float`` / ``suggest_int`` / ``suggest_categorical``).

The parameters, from the calibration sweep's evidence on what matters:

- ``lr``: the head's rate, log scale, the recommendation x 10^[-1.5, +1.5] clipped to
  [1e-5, 0.3];
- ``fine_tune``: ``"none"`` (the head only) or ``"all"`` (plus the recommendation's own depth);
- ``lr_ratio``: the unfrozen phase's rate over the head's (``lr_finetune / lr``), log scale in
  [0.05, 1]; only when the body is unfrozen;
- ``dropout_p1``: the head's first dropout, in [0, 0.5];
- ``head_epochs`` and ``unfrozen_epochs``: from half to twice the recommendation's. As in the
  calibration sweep's ``head_only`` arm, ``fine_tune="none"`` spends both on the head
  (``head_epochs += unfrozen_epochs``, ``unfrozen_epochs = 0``).

Every range also holds the recommendation's own value, so :meth:`SearchSpace.params_of` gives
parameters that :meth:`SearchSpace.config_for` turns back into the recommendation exactly.

>>> from finetune_advisor.config import Config
>>> rec = Config(profile="cpu", lr=2e-3, lr_finetune=1e-3, head_epochs=2, unfrozen_epochs=2)
>>> space = SearchSpace.around(rec)
>>> space.lr == (2e-3 * 10 ** -1.5, 2e-3 * 10 ** 1.5), space.fine_tune
(True, ('none', 'all'))
>>> space.config_for(rec, space.params_of(rec)) == rec
True
>>> head_only = space.config_for(rec, {**space.params_of(rec), "fine_tune": "none"}, reason="tuned")
>>> head_only.fine_tune, head_only.head_epochs, head_only.unfrozen_epochs, head_only.reasons.get("fine_tune")
('none', 4, 0, None)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..config import Config
from ..exceptions import ConfigError

__all__ = ["SearchSpace", "PARAMETERS", "LR_DECADES", "LR_LIMITS", "RATIO_RANGE", "DROPOUT_RANGE"]

PARAMETERS = ("lr", "fine_tune", "lr_ratio", "dropout_p1", "head_epochs", "unfrozen_epochs")
LR_DECADES = 1.5                 # the head rate: the recommendation x 10^[-1.5, +1.5] ...
LR_LIMITS = (1e-5, 0.3)          # ... clipped to these
RATIO_RANGE = (0.05, 1.0)        # lr_finetune / lr (fastai's fine_tune: 0.5; Overture: <= 0.1)
DROPOUT_RANGE = (0.0, 0.5)       # the head's p1
DEPTHS = ("none", "all")         # the calibration arms' depths (heuristics.policies.ARMS)


def _span(low: float, high: float, value: float) -> tuple[float, float]:
    return min(low, value), max(high, value)


@dataclass(frozen=True)
class SearchSpace:
    """The ranges searched, fixed per study (stored with it: :meth:`to_dict` / :meth:`from_dict`).

    Build it with :meth:`around` from the recommendation; each field is a ``(low, high)``
    range, ``fine_tune`` the depths tried.
    """

    lr: tuple[float, float]
    fine_tune: tuple[str, ...]
    lr_ratio: tuple[float, float]
    dropout_p1: tuple[float, float]
    head_epochs: tuple[int, int]
    unfrozen_epochs: tuple[int, int]

    @classmethod
    def around(cls, config: Config) -> "SearchSpace":
        """The ranges around ``config`` (see the module docstring); each holds ``config``'s value."""
        lo, hi = config.lr * 10 ** -LR_DECADES, config.lr * 10 ** LR_DECADES
        lr = _span(max(lo, LR_LIMITS[0]), min(hi, LR_LIMITS[1]), config.lr)
        depths = DEPTHS if config.fine_tune in DEPTHS else (*DEPTHS, config.fine_tune)
        h, u = config.head_epochs, config.unfrozen_epochs
        return cls(lr=lr, fine_tune=depths, lr_ratio=_span(*RATIO_RANGE, config.lr_finetune / config.lr),
                   dropout_p1=_span(*DROPOUT_RANGE, config.dropout[0]),
                   head_epochs=(min(max(1, h // 2), h), max(2, 2 * h)),
                   unfrozen_epochs=(min(max(1, u // 2), u), max(2, 2 * u)))

    # --- trials -------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> dict[str, Any]:
        """The parameters of ``trial`` (an ``optuna.Trial``; an enqueued one returns its own).

        ``lr_ratio`` is asked only when the body is unfrozen.

        >>> import optuna
        >>> space = SearchSpace.around(Config(lr=1e-3, lr_finetune=1e-4))
        >>> space.suggest(optuna.trial.FixedTrial({"lr": 1e-2, "fine_tune": "none", "dropout_p1": 0.1,
        ...                                        "head_epochs": 3, "unfrozen_epochs": 10}))["fine_tune"]
        'none'
        """
        params = {"lr": trial.suggest_float("lr", *self.lr, log=True),
                  "fine_tune": trial.suggest_categorical("fine_tune", list(self.fine_tune)),
                  "dropout_p1": trial.suggest_float("dropout_p1", *self.dropout_p1),
                  "head_epochs": trial.suggest_int("head_epochs", *self.head_epochs),
                  "unfrozen_epochs": trial.suggest_int("unfrozen_epochs", *self.unfrozen_epochs)}
        if params["fine_tune"] != "none":
            params["lr_ratio"] = trial.suggest_float("lr_ratio", *self.lr_ratio, log=True)
        return params

    @staticmethod
    def params_of(config: Config) -> dict[str, Any]:
        """The parameters that reproduce ``config`` (for ``study.enqueue_trial``)."""
        params = {"lr": float(config.lr), "fine_tune": config.fine_tune, "dropout_p1": float(config.dropout[0]),
                  "head_epochs": int(config.head_epochs), "unfrozen_epochs": int(config.unfrozen_epochs)}
        if config.fine_tune != "none":
            params["lr_ratio"] = float(config.lr_finetune / config.lr)
        return params

    def params_at(self, base: Config, lr: float, fine_tune: str, lr_ratio: float | None = None) -> dict[str, Any]:
        """``base``'s parameters with another rate, depth and (unfrozen) rate ratio, each clipped
        into the space: a calibration portfolio's cell as a trial to enqueue.

        >>> space = SearchSpace.around(Config(lr=2e-3, lr_finetune=1e-3))
        >>> p = space.params_at(Config(lr=2e-3, lr_finetune=1e-3), 1.0, "all", 0.1)
        >>> round(p["lr"], 4), p["fine_tune"], p["lr_ratio"]
        (0.0632, 'all', 0.1)
        """
        params = {**self.params_of(base), "lr": float(min(max(lr, self.lr[0]), self.lr[1])), "fine_tune": fine_tune}
        params.pop("lr_ratio", None)
        if fine_tune != "none":
            ratio = base.lr_finetune / base.lr if lr_ratio is None else lr_ratio
            params["lr_ratio"] = float(min(max(ratio, self.lr_ratio[0]), self.lr_ratio[1]))
        return params

    @staticmethod
    def config_for(base: Config, params: Mapping[str, Any], reason: str = "tuned") -> Config:
        """``base`` with ``params`` applied; only fields whose value changes get ``reason``.

        Values equal to ``base``'s up to float rounding keep ``base``'s, so
        ``config_for(c, params_of(c)) == c``.
        """
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise ConfigError(f"unknown tune parameter(s) {unknown}; valid ones are {list(PARAMETERS)}")
        lr = float(params.get("lr", base.lr))
        fine_tune = params.get("fine_tune", base.fine_tune)
        head = int(params.get("head_epochs", base.head_epochs))
        unfrozen = int(params.get("unfrozen_epochs", base.unfrozen_epochs))
        if fine_tune == "none":      # the calibration sweep's head_only arm: every epoch on the head
            values = {"lr_finetune": lr * base.lr_finetune / base.lr, "head_epochs": head + unfrozen,
                      "unfrozen_epochs": 0}
        else:
            ratio = float(params.get("lr_ratio", base.lr_finetune / base.lr))
            values = {"lr_finetune": lr * ratio, "head_epochs": head, "unfrozen_epochs": unfrozen}
        values.update(lr=lr, fine_tune=fine_tune,
                      dropout=(float(params.get("dropout_p1", base.dropout[0])), base.dropout[1]))
        changes = {k: v for k, v in values.items() if not _same(getattr(base, k), v)}
        if not changes:
            return base
        if not base.reasons:
            return dataclasses.replace(base, **changes)
        return base.replace(reason=reason, **changes)

    @staticmethod
    def planned_epochs(config: Config) -> int:
        """The epochs ``train`` runs for ``config`` (the unfrozen ones only when it unfreezes)."""
        return config.head_epochs + (config.unfrozen_epochs if config.fine_tune != "none" else 0)

    # --- storage ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchSpace":
        return cls(lr=tuple(map(float, data["lr"])), fine_tune=tuple(data["fine_tune"]),
                   lr_ratio=tuple(map(float, data["lr_ratio"])), dropout_p1=tuple(map(float, data["dropout_p1"])),
                   head_epochs=tuple(map(int, data["head_epochs"])),
                   unfrozen_epochs=tuple(map(int, data["unfrozen_epochs"])))

    def describe(self) -> list[tuple[str, str]]:
        """``(parameter, range)`` rows for a table.

        >>> SearchSpace.around(Config(lr=1e-3, lr_finetune=1e-4)).describe()[0]
        ('lr', '3.16e-05 .. 0.0316 (log)')
        """
        def r(pair, log=False):
            return f"{pair[0]:.3g} .. {pair[1]:.3g}" + (" (log)" if log else "")
        return [("lr", r(self.lr, True)), ("fine_tune", ", ".join(self.fine_tune)),
                ("lr_ratio", r(self.lr_ratio, True) + " when unfrozen"), ("dropout_p1", r(self.dropout_p1)),
                ("head_epochs", r(self.head_epochs)),
                ("unfrozen_epochs", r(self.unfrozen_epochs) + " (on the head when fine_tune is none)")]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    return a == b
