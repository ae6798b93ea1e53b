"""The fastai callback that records training's per-epoch history. This module imports fastai, so
:func:`~finetune_advisor.train.train` imports it when it runs."""
from __future__ import annotations

import time
from typing import Sequence

from fastai.callback.core import Callback
from fastai.learner import Recorder

__all__ = ["HistoryCallback"]


class HistoryCallback(Callback):
    """Append one row per epoch (Recorder's values, peak LRs, seconds) to ``rows``."""

    order = Recorder.order + 1      # after the Recorder has stored the epoch's values

    def __init__(self, rows: list, phase: str, first_epoch: int, lr_max: Sequence[float]):
        self.rows, self.phase, self.first_epoch = rows, phase, first_epoch
        self.lr_max = [float(v) for v in lr_max]

    def before_fit(self):
        # peak LRs of the one-cycle schedule; NaN for the last body group while frozen
        frozen = getattr(self.learn.opt, "frozen_idx", 0) > len(self.lr_max) - 2
        self.lr_body = float("nan") if frozen else self.lr_max[-2]
        self.lr_head = self.lr_max[-1]

    def before_epoch(self):
        self.t0 = time.perf_counter()

    def after_epoch(self):
        rec = self.learn.recorder
        values = list(rec.values[-1])
        names = list(rec.metric_names[1:1 + len(values)])
        row = {"epoch": self.first_epoch + self.epoch + 1, "phase": self.phase,
               "phase_epoch": self.epoch + 1}
        row.update({n: float(v) for n, v in zip(names, values)})
        row.update(lr_body=self.lr_body, lr_head=self.lr_head, seconds=time.perf_counter() - self.t0)
        self.rows.append(row)
