"""Policies: named sets of rules that decide the learning rates and the fine-tune depth.

- ``study``: the published rules exactly (the LR finder's steepest-slope rate, ÷10 when far
  from ImageNet, Overture's fine-tune LR ≤ head LR / 10 and its size × similarity depth table).
  Each rule was written alone; their product is what the ``cpu-r50-v4`` sweep measured.
- ``calibrated``: the head rate, the unfrozen phase's rate and the depth chosen *together* by
  one fitted :class:`CalibratedRule`: ``log10(lr) = intercept + slope × (x − center)`` for one
  predictor ``x`` measured on the dataset (or none), one depth arm, clipped to the rates the
  calibration sweep covered. Its parameters come from a calibration
  (:mod:`finetune_advisor.calibration`), passed in: this module does no I/O.

>>> rule = CalibratedRule(arm="all_half", intercept=-2.5)
>>> plan = calibrated_plan(Measurements(), rule, profile_name="cpu", evidence="calibrated on 2 datasets")
>>> plan["lr"].value, plan["lr_finetune"].value, plan["fine_tune"].value
(0.0032, 0.0016, 'all')
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..exceptions import ConfigError
from ..measurements import Measurements
from ..study import DISCRIMINATIVE_DIVISOR
from ._common import Decision, _sig2
from .rules import _profile
from .schedule import SCHEDULE_MARK, StepRule, steps_per_epoch

POLICIES = ("study", "calibrated")

# Depth arms of the calibration sweep: (fine_tune, unfrozen-phase LR / head LR). "head_only"
# spends the whole epoch budget on the head, so every arm costs the same epochs.
ARMS: Mapping[str, tuple[str, float | None]] = {
    "head_only": ("none", None),
    "all_half": ("all", 0.5),        # fastai's fine_tune halves the rate when it unfreezes
    "all_tenth": ("all", 0.1),       # Overture's "fine-tune LR <= head LR / 10"
}

# Predictors a rule may use, each read from a Config's measurements the same way when fitting
# and when advising (see predictor_value).
PREDICTORS = ("none", "similarity", "log10_finder_lr", "log10_valley_lr", "log10_images_per_class",
              "log10_classes", "log10_images", "logme", "probe_accuracy")


def predictor_value(name: str, measurements: Measurements) -> float | None:
    """The predictor ``name`` as measured on a dataset; None when it was not measured.

    >>> m = Measurements(images_per_class={"median": 100.0, "min": 5, "max": 300}, similarity_score=0.7)
    >>> predictor_value("log10_images_per_class", m), predictor_value("similarity", m)
    (2.0, 0.7)
    >>> predictor_value("log10_finder_lr", m) is None
    True
    """
    if name == "none":
        return 0.0
    if name == "similarity":
        return measurements.score
    if name in ("log10_finder_lr", "log10_valley_lr"):
        lr = measurements.lr_finder
        rate = None if lr is None else (lr.lr if name == "log10_finder_lr" else lr.fastai_valley)
        return math.log10(rate) if rate and rate > 0 else None
    if name == "log10_images_per_class":
        ipc = measurements.images_per_class or {}
        median = ipc.get("median")
        return math.log10(median) if median else None
    if name in ("log10_classes", "log10_images"):      # the dataset's size: with the batch, its steps an epoch
        count = measurements.n_classes if name == "log10_classes" else measurements.n_images
        return math.log10(count) if count else None
    if name in ("logme", "probe_accuracy"):
        value = (measurements.transferability or {}).get(name)
        return None if value is None else float(value)
    raise ConfigError(f"unknown predictor {name!r}; choose from {PREDICTORS}")


@dataclass(frozen=True)
class CalibratedRule:
    """``log10(lr) = intercept + slope × (x − center)``, clipped to ``[log10_lr_min, log10_lr_max]``,
    with depth ``arm`` (a key of :data:`ARMS`). ``slope = 0`` with predictor ``"none"`` is a
    constant rate. When the predictor was not measured, ``intercept`` alone is used.

    ``steps``: the schedule. None keeps the profile's fixed epochs; N gives each phase N optimiser
    steps (:class:`~finetune_advisor.heuristics.schedule.StepRule`), never fewer epochs than the
    profile's (the floor only binds above the sizes a schedule sweep measured)."""

    arm: str
    intercept: float
    predictor: str = "none"
    slope: float = 0.0
    center: float = 0.0
    log10_lr_min: float = -4.0
    log10_lr_max: float = -1.0
    steps: int | None = None

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ConfigError(f"unknown arm {self.arm!r}; choose from {list(ARMS)}")
        if self.steps is not None and (isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 1):
            raise ConfigError(f"a calibrated rule's steps must be a whole number >= 1 or None, got {self.steps!r}")
        if self.predictor not in PREDICTORS:
            raise ConfigError(f"unknown predictor {self.predictor!r}; choose from {PREDICTORS}")
        if not all(math.isfinite(v) for v in (self.intercept, self.slope, self.center)):
            raise ConfigError(f"a calibrated rule needs finite parameters, got {self}")

    def log10_lr(self, x: float | None) -> float:
        """The rule's rate (log10) for predictor value ``x`` (None: not measured)."""
        raw = self.intercept if x is None else self.intercept + self.slope * (x - self.center)
        return min(max(raw, self.log10_lr_min), self.log10_lr_max)

    @property
    def sweep_arm(self) -> str:
        """The arm as a schedule sweep names it: ``"all_half"``, or ``"all_half:steps32"``."""
        return self.arm if self.steps is None else f"{self.arm}{SCHEDULE_MARK}{self.steps}"

    def describe(self) -> str:
        if self.predictor == "none" or self.slope == 0:
            return f"lr = 10^{self.intercept:.2f}"
        return f"lr = 10^({self.intercept:.2f} {self.slope:+.2f} × ({self.predictor} − {self.center:.3g}))"

    def describe_schedule(self) -> str:
        return "the profile's fixed epochs" if self.steps is None else StepRule(self.steps).describe()

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if out["steps"] is None:        # files written before the schedule axis read the same
            del out["steps"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CalibratedRule":
        return cls(**dict(data))


def calibrated_plan(measurements: Measurements, rule: CalibratedRule, *, profile_name: str,
                    evidence: str, n_train: int | None = None, batch_size: int | None = None) -> dict[str, Decision]:
    """The calibrated policy's learning rates, depth and schedule, decided together (pure).

    ``evidence`` names what the rule was fitted on ("calibrated on 15 datasets, backbone B,
    profile P"); every reason carries it. A rule with ``steps`` sizes each phase's epochs from
    ``n_train`` training images in batches of ``batch_size`` (without them: the profile's epochs).

    >>> plan = calibrated_plan(Measurements(), CalibratedRule("all_half", -2.5, steps=32), profile_name="cpu",
    ...                        evidence="test", n_train=80, batch_size=16)
    >>> plan["head_epochs"].value, plan["unfrozen_epochs"].value
    (7, 7)
    >>> print(plan["head_epochs"].reason)
    calibrated (test): 32 optimiser steps a phase (1 to 30 epochs): 5 steps an epoch, so 7 epochs (35 steps; never fewer than profile 'cpu''s 2)

    >>> rule = CalibratedRule(arm="head_only", intercept=-2.0, predictor="similarity", slope=-2.0, center=0.7)
    >>> plan = calibrated_plan(Measurements(similarity_score=0.6), rule, profile_name="cpu", evidence="test")
    >>> plan["lr"].value, plan["fine_tune"].value, plan["head_epochs"].value, plan["unfrozen_epochs"].value
    (0.016, 'none', 4, 0)
    >>> plan["lr"].reason
    'calibrated (test): lr = 10^(-2.00 -2.00 × (similarity − 0.7)) with similarity 0.6 → 1.6e-02'
    """
    schedule = _profile(profile_name)
    x = predictor_value(rule.predictor, measurements)
    log_lr = rule.log10_lr(x)
    lr = _sig2(10.0 ** log_lr)
    fine_tune, ratio = ARMS[rule.arm]
    why = f"calibrated ({evidence}): {rule.describe()}"
    if rule.predictor != "none" and rule.slope != 0:
        why += (f" with {rule.predictor} {x:.3g}" if x is not None
                else f" ({rule.predictor} not measured: the rule's intercept)")
    why += f" → {lr:.1e}"
    if log_lr in (rule.log10_lr_min, rule.log10_lr_max) and x is not None:
        why += " (clipped to the rates the calibration covered)"
    head, unfrozen = schedule["head_epochs"], schedule["unfrozen_epochs"]
    arm_why = f"calibrated ({evidence}): depth arm {rule.arm!r}"
    stepped = rule.steps is not None and bool(n_train) and bool(batch_size)
    if fine_tune == "none":
        if stepped:
            epochs, step_why = _step_epochs(rule, n_train, batch_size, floor=head + unfrozen, phases=2,
                                            profile_name=profile_name, evidence=evidence)
            head_why = f"{step_why}, both phases' steps on the head ({arm_why})"
        else:
            epochs = head + unfrozen
            head_why = f"{arm_why}: the whole budget ({head} + {unfrozen} epochs of profile {profile_name!r}) on the head"
        return {
            "lr": Decision(lr, why),
            "lr_finetune": Decision(lr, f"{arm_why}: head only, no unfrozen phase (unused)"),
            "lr_divisor": Decision(DISCRIMINATIVE_DIVISOR, f"{arm_why}: unused without an unfrozen phase"),
            "fine_tune": Decision("none", f"{arm_why}: train the head only"),
            "head_epochs": Decision(epochs, head_why),
            "unfrozen_epochs": Decision(0, "head only → no unfrozen epochs"),
        }
    lr_ft = _sig2(lr * ratio)
    if stepped:
        head_decision = Decision(*_step_epochs(rule, n_train, batch_size, floor=head, phases=1,
                                               profile_name=profile_name, evidence=evidence))
        unfrozen_decision = Decision(*_step_epochs(rule, n_train, batch_size, floor=unfrozen, phases=1,
                                                   profile_name=profile_name, evidence=evidence))
    else:
        fixed = " (no training-set size given, so not the rule's steps)" if rule.steps is not None else ""
        head_decision = Decision(head, f"profile {profile_name!r}: {head} head epochs, as in the calibration sweep{fixed}")
        unfrozen_decision = Decision(unfrozen, f"profile {profile_name!r}: {unfrozen} unfrozen epochs, as in the "
                                               f"calibration sweep{fixed}")
    return {
        "lr": Decision(lr, why),
        "lr_finetune": Decision(lr_ft, f"{arm_why}: the unfrozen phase at the head's rate × {ratio:g} = {lr_ft:.1e}"),
        "lr_divisor": Decision(DISCRIMINATIVE_DIVISOR, f"study default, as in the calibration sweep: each earlier "
                                                       f"layer group gets the LR / {DISCRIMINATIVE_DIVISOR:g}"),
        "fine_tune": Decision(fine_tune, f"{arm_why}: unfreeze the whole network after the head"),
        "head_epochs": head_decision,
        "unfrozen_epochs": unfrozen_decision,
    }


def _step_epochs(rule: CalibratedRule, n_train: int, batch_size: int, *, floor: int, phases: int,
                 profile_name: str, evidence: str) -> tuple[int, str]:
    """Epochs for ``phases`` phases of the rule's steps, at least ``floor`` (the profile's), and why."""
    step_rule = StepRule(int(rule.steps))
    per_epoch = steps_per_epoch(n_train, batch_size)
    epochs = max(floor, step_rule.epochs(n_train, batch_size, phases=phases))
    why = (f"calibrated ({evidence}): {step_rule.describe()}: {per_epoch} steps an epoch, so {epochs} epochs "
           f"({epochs * per_epoch} steps; never fewer than profile {profile_name!r}'s {floor})")
    return epochs, why
