"""How long each phase trains: the profile's fixed epochs, or a number of optimiser steps.

A fixed number of epochs gives a small dataset few steps: ten images a class, five classes,
batch 16 and 2 + 2 epochs is about 12 steps in all. BiT's HyperRule (Kolesnikov et al., ECCV
2020) keeps the learning rate and sets the schedule's length in steps by dataset size. The step
rule here gives each phase ``steps`` optimiser steps: ``ceil(steps / steps_per_epoch)`` epochs,
at least one, at most ``max_epochs``. Pure functions; which rule the advice uses, and its step
budget, are fitted by a calibration sweep with a schedule axis (``bench run --grid schedule``).

>>> rule = StepRule(steps=32)
>>> rule.epochs(n_train=40, batch_size=8)          # 5 steps an epoch
7
>>> rule.epochs(n_train=4000, batch_size=64)       # 62 steps an epoch: one epoch is enough
1
>>> rule.describe()
'32 optimiser steps a phase (1 to 30 epochs)'
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import ConfigError

__all__ = ["StepRule", "steps_per_epoch", "n_train_images", "SCHEDULE_MARK", "split_schedule"]

SCHEDULE_MARK = ":steps"     # a sweep parameter "lr_all_half:steps32": that arm under StepRule(32)


def n_train_images(n_images: int, valid_pct: float) -> int:
    """Images left to train on after a random ``valid_pct`` split (fastai's ``RandomSplitter``
    holds out ``int(valid_pct * n)``).

    >>> n_train_images(100, 0.15)
    85
    """
    return int(n_images) - int(float(valid_pct) * int(n_images))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one epoch: fastai's training loader drops the last partial batch
    (at least one step, as a batch larger than the data still trains once).

    >>> steps_per_epoch(85, 16), steps_per_epoch(5, 16)
    (5, 1)
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    return max(1, int(n_train) // int(batch_size))


@dataclass(frozen=True)
class StepRule:
    """``steps`` optimiser steps a phase, as epochs: ``ceil(steps / steps_per_epoch)`` in
    ``[1, max_epochs]``."""

    steps: int
    max_epochs: int = 30

    def __post_init__(self):
        if self.steps < 1 or self.max_epochs < 1:
            raise ConfigError(f"a step rule needs steps and max_epochs >= 1, got {self.steps}, {self.max_epochs}")

    def epochs(self, n_train: int, batch_size: int, phases: int = 1) -> int:
        """Epochs that give ``phases`` phases' worth of steps (``phases=2``: a head-only run
        spends the head's and the unfrozen phase's budget on the head)."""
        need = math.ceil(self.steps * phases / steps_per_epoch(n_train, batch_size))
        return min(max(1, need), self.max_epochs * phases)

    def describe(self) -> str:
        return f"{self.steps} optimiser steps a phase (1 to {self.max_epochs} epochs)"


def split_schedule(parameter: str) -> tuple[str, StepRule | None]:
    """A sweep parameter's arm and step rule: ``"lr_all_half:steps32"`` ->
    ``("lr_all_half", StepRule(32))``; without the mark, the profile's fixed epochs (None).

    >>> split_schedule("lr_all_half:steps32")
    ('lr_all_half', StepRule(steps=32, max_epochs=30))
    >>> split_schedule("lr_head_only")
    ('lr_head_only', None)
    """
    arm, mark, steps = parameter.partition(SCHEDULE_MARK)
    if not mark:
        return parameter, None
    if not steps.isdigit() or int(steps) < 1:
        raise ConfigError(f"bad schedule in sweep parameter {parameter!r}: expected <arm>{SCHEDULE_MARK}<N>, N >= 1")
    return arm, StepRule(int(steps))
