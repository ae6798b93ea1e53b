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

The time a schedule takes is estimated from the throughput ``recommend`` measures anyway (the
cached range test's forward pass over the training images, decoding included), scaled by the
work per image of each phase and by the pixel count (:class:`TimeModel`); :func:`fit_to_budget`
shortens the schedule, and if need be the resolution, to a wall-clock budget.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..exceptions import ConfigError

__all__ = ["StepRule", "steps_per_epoch", "n_train_images", "SCHEDULE_MARK", "split_schedule", "TimeModel",
           "Schedule", "fit_to_budget", "parse_duration", "format_duration", "DURATION_UNITS"]

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


# --- time -----------------------------------------------------------------------------------

DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh])\s*$", re.IGNORECASE)
_DURATION_HINT = "give wall-clock time with a unit, e.g. 90s, 15m or 2h"


def parse_duration(text: str, *, what: str = "budget") -> float:
    """``"15m"`` -> 900.0 seconds (``s``, ``m``, ``h``); anything else is a :class:`ConfigError`.

    >>> parse_duration("15m"), parse_duration("1.5h"), parse_duration("90s")
    (900.0, 5400.0, 90.0)
    >>> parse_duration("fast")
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.ConfigError: budget 'fast' is not a duration (give wall-clock time with a unit, e.g. 90s, 15m or 2h)
    """
    match = _DURATION.match(str(text))
    if match is None:
        raise ConfigError(f"{what} {str(text)!r} is not a duration ({_DURATION_HINT})")
    seconds = float(match.group(1)) * DURATION_UNITS[match.group(2).lower()]
    if not seconds > 0:
        raise ConfigError(f"{what} {str(text)!r} must be more than nothing ({_DURATION_HINT})")
    return seconds


def format_duration(seconds: float) -> str:
    """``format_duration(95) == '1.6 min'``; seconds under a minute, hours above 90 minutes."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Schedule:
    """What a training run does: epochs of each phase at one image size, on ``n_train`` /
    ``n_valid`` images (after the profile's cap and the validation split)."""

    head_epochs: int
    unfrozen_epochs: int
    image_size: int
    n_train: int
    n_valid: int


@dataclass(frozen=True)
class TimeModel:
    """Wall time of a training run, from a measured forward throughput.

    Work is counted in forward passes of one image at the measured size: a frozen-body
    training image costs ``frozen`` of them (the body's forward, the head's backward,
    augmentation), an unfrozen one ``unfrozen`` (forward and backward through the whole
    network, about three forwards), a validation image ``valid``; the pixel count scales it.
    ``overhead_s``: building the learner and the first batch. The shape (a training image of the
    unfrozen phase costs three of the frozen phase's) is first principles; the scale (1.9: fastai's
    augmentation, the optimiser, the per-epoch bookkeeping on top of a bare forward pass) and the
    overhead were fitted on ``benchmarks/train_time_estimate.py``'s first run (5 datasets at 10 and
    100 images a class, EfficientNet-Lite0, 64 px) and checked on other datasets by its second.

    >>> TimeModel().seconds(Schedule(2, 2, 64, n_train=800, n_valid=200), images_per_s=100.0, measured_size=64)
    138.8
    """

    frozen: float = 1.9
    unfrozen: float = 5.7
    valid: float = 1.9
    overhead_s: float = 2.0

    def seconds(self, schedule: Schedule, *, images_per_s: float, measured_size: int) -> float:
        if not images_per_s > 0:
            raise ConfigError(f"a time estimate needs a positive throughput, got {images_per_s!r}")
        per_image = (schedule.image_size / measured_size) ** 2 / images_per_s
        work = (schedule.head_epochs * (schedule.n_train * self.frozen + schedule.n_valid * self.valid)
                + schedule.unfrozen_epochs * (schedule.n_train * self.unfrozen + schedule.n_valid * self.valid))
        return round(self.overhead_s + work * per_image, 1)


MIN_BUDGET_IMAGE_SIZE = 32       # below this a budget is too small: say so rather than train on thumbnails


def fit_to_budget(schedule: Schedule, budget_s: float, *, images_per_s: float, measured_size: int,
                  model: TimeModel = TimeModel()) -> tuple[Schedule, str]:
    """The longest schedule like ``schedule`` that fits ``budget_s``, and why.

    Epochs shrink in proportion first (at least one of each phase the schedule has); if one
    epoch of each still does not fit, the image size shrinks by quarters (not below
    :data:`MIN_BUDGET_IMAGE_SIZE` px). A budget too small even then is a :class:`ConfigError`
    saying what one epoch takes. A schedule that fits already is returned as it is.

    >>> s = Schedule(5, 15, 224, n_train=1000, n_valid=100)
    >>> fitted, why = fit_to_budget(s, 600, images_per_s=50.0, measured_size=224)
    >>> fitted.head_epochs, fitted.unfrozen_epochs, fitted.image_size
    (2, 4, 224)
    >>> why
    'budget 10.0 min: 5 + 15 epochs would take about 33.0 min here, so 2 + 4 epochs (about 9.3 min)'
    >>> fit_to_budget(s, 60, images_per_s=50.0, measured_size=224)[0].image_size     # one epoch each, smaller
    120
    >>> fit_to_budget(s, 4, images_per_s=50.0, measured_size=224)
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.ConfigError: budget 4 s is too small for one epoch: 1 + 1 epoch(s) at 32 px take about 5 s here (give at least 6 s, or fewer images)
    """
    def cost(s: Schedule) -> float:
        return model.seconds(s, images_per_s=images_per_s, measured_size=measured_size)

    full = cost(schedule)
    if full <= budget_s:
        return schedule, f"budget {format_duration(budget_s)}: the schedule fits (about {format_duration(full)})"
    minimum = (1, 1 if schedule.unfrozen_epochs else 0)
    best = schedule
    total = schedule.head_epochs + schedule.unfrozen_epochs
    for n in range(total, 0, -1):        # shrink both phases in proportion, longest first
        head = max(minimum[0], round(schedule.head_epochs * n / total))
        unfrozen = max(minimum[1], n - head) if schedule.unfrozen_epochs else 0
        best = Schedule(head, unfrozen, schedule.image_size, schedule.n_train, schedule.n_valid)
        if cost(best) <= budget_s:
            break
    size = schedule.image_size
    while cost(best) > budget_s and size > MIN_BUDGET_IMAGE_SIZE:
        size = max(MIN_BUDGET_IMAGE_SIZE, int(size * 0.75) // 8 * 8)
        best = Schedule(*minimum, size, schedule.n_train, schedule.n_valid)
    if cost(best) > budget_s:
        raise ConfigError(f"budget {format_duration(budget_s)} is too small for one epoch: "
                          f"{' + '.join(map(str, minimum)).replace(' + 0', '')} epoch(s) at {best.image_size} px "
                          f"take about {format_duration(cost(best))} here",
                          hint=f"give at least {format_duration(math.ceil(cost(best)))}, or fewer images")
    what = f"{best.head_epochs} + {best.unfrozen_epochs} epochs"
    if best.image_size != schedule.image_size:
        what += f" at {best.image_size} px"
    return best, (f"budget {format_duration(budget_s)}: {schedule.head_epochs} + {schedule.unfrozen_epochs} epochs "
                  f"would take about {format_duration(full)} here, so {what} (about {format_duration(cost(best))})")
