"""The fastai pieces of the range test. This module imports fastai, so :func:`find_lr` imports it
when it runs; the callback is defined here at module level (no class built at run time)."""
from __future__ import annotations

import math

import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.schedule import steep, valley

__all__ = ["RawLossRecorder", "fastai_suggest_funcs"]


class RawLossRecorder(Callback):
    """Record each training batch's learning rate and raw loss (or a fixed validation loss);
    stop the sweep at the first non-finite loss. Runs after fastai's ``Recorder`` (order 50)
    and before ``LRFinder`` (order 60), so the batch on which LRFinder stops is recorded too."""

    order = 55
    run_valid = False

    def __init__(self, valid_batches: list | None = None):
        self.rec_valid = valid_batches
        self.rec_lrs: list[float] = []
        self.rec_losses: list[float] = []
        self.rec_train_losses: list[float] = []   # always kept: the fallback curve

    def before_fit(self):
        self.rec_lrs, self.rec_losses, self.rec_train_losses = [], [], []

    def after_batch(self):
        train_loss = float(self.learn.loss.detach().float().mean())
        value = train_loss if self.rec_valid is None else self._valid_loss()
        self.rec_lrs.append(float(self.learn.opt.hypers[-1]["lr"]))
        self.rec_losses.append(value)
        self.rec_train_losses.append(train_loss)
        if not (math.isfinite(train_loss) and math.isfinite(value)):
            raise CancelFitException()  # diverged: nothing later is meaningful

    def _valid_loss(self) -> float:
        model, n_inp = self.learn.model, self.learn.dls.n_inp
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        try:
            with torch.no_grad():
                for b in self.rec_valid:
                    xb, yb = b[:n_inp], b[n_inp:]
                    n = len(yb[0]) if len(yb) else 1
                    total += float(self.learn.loss_func(model(*xb), *yb).float().mean()) * n
                    count += n
        finally:
            model.train(was_training)
        return total / max(count, 1)


def _nan_when_too_short(func):
    def wrapped(lrs, losses, num_it):
        try:
            return func(lrs, losses, num_it)
        except (IndexError, RuntimeError, ValueError):
            return math.nan, (math.nan, math.nan)
    wrapped.__name__ = func.__name__  # lr_find names its result fields after the functions
    return wrapped


def fastai_suggest_funcs() -> tuple:
    """fastai's ``valley`` and ``steep``, made to return NaN instead of raising on a curve too
    short for them (fastai trims 10% + 5 points and everything after a NaN first)."""
    return _nan_when_too_short(valley), _nan_when_too_short(steep)
