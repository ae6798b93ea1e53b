"""The fastai callback that makes a training run a multi-fidelity Optuna trial: after each epoch
(counted across both phases) it reports the validation metric, and stops the run when the
pruner says so. This module imports fastai and Optuna, so :mod:`.search` imports it when it
trains."""
from __future__ import annotations

from typing import Any, Callable

import optuna
from fastai.callback.core import Callback, CancelFitException
from fastai.learner import Recorder

__all__ = ["PruningCallback"]


class PruningCallback(Callback):
    """``trial.report(sign * metric, step=epoch)`` after every epoch; when ``prune`` and
    ``trial.should_prune()`` (asked either way, so the pruner records the trial's values), the
    fit is cancelled and :class:`optuna.TrialPruned` raised
    once fastai has closed it (so ``train`` stops before its next phase).

    Pass one instance to :func:`finetune_advisor.train.train` (``callbacks=[cb]``): it goes to
    both phases, and ``step`` counts epochs across them. ``on_epoch(step, value)`` is called
    after each report (progress).
    """

    order = Recorder.order + 20     # after the Recorder has the epoch's values (and after the ticker)

    def __init__(self, trial: "optuna.Trial", metric: str, *, sign: float = 1.0, prune: bool = True,
                 on_epoch: Callable[[int, float], Any] | None = None):
        self.trial, self.metric, self.sign, self.prune, self.on_epoch = trial, metric, sign, prune, on_epoch
        self.step = 0
        self.pruned = False

    def after_epoch(self):
        rec = self.learn.recorder
        values = list(rec.values[-1])
        names = list(rec.metric_names[1:1 + len(values)])
        value = self.sign * float(dict(zip(names, values))[self.metric])
        self.step += 1
        self.trial.report(value, step=self.step)
        if self.on_epoch is not None:
            self.on_epoch(self.step, value)
        should = self.trial.should_prune()     # asked even when not pruning: pruners record rung values
        if self.prune and should:
            self.pruned = True
            raise CancelFitException()

    def after_fit(self):
        if self.pruned:
            raise optuna.TrialPruned(f"pruned after epoch {self.step}")
