"""What :func:`finetune_advisor.recommend.advise` can be told: :class:`AdviseOptions`, validated
once when built (scikit-learn's habit: check at the entry point, say what was found and what is
allowed)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from . import data, heuristics
from .config import PROFILES
from .exceptions import ConfigError
from .hardware import AUTO_PROFILE, auto_profile

__all__ = ["AdviseOptions", "LR_FINDER_METHODS", "LR_LOSSES", "MIN_LR_STEPS"]

MIN_LR_STEPS = 8  # suggest_lr needs 8 points (the sweep records lr_steps + 1)
LR_LOSSES = ("valid", "train")
LR_FINDER_METHODS = ("auto", "cached", "full")


@dataclass(frozen=True)
class AdviseOptions:
    """Everything :func:`advise` can be told, checked once when built.

    ``backbone=None`` lets the size rule pick the ResNet; when its weights cannot be had
    (offline) and ``fallback`` is true, the shipped EfficientNet-Lite0 is used and the Config
    says so. ``similarity=False`` / ``lr_finder=False`` skip those measurements (the rules then
    use the study's defaults and say so). ``lr_finder_fallback=True``: when the range test cannot
    suggest a rate, use the study's default as ``lr_finder=False`` would, and keep the reason in
    ``measurements.lr_finder_failed`` instead of raising. ``policy``: ``"calibrated"`` (default:
    the rule fitted on a calibration sweep for this backbone and profile, from ``calibration`` or
    the ones shipped; without one, the study policy with a warning saying why) or ``"study"``
    (the published rules exactly). ``lr_finder_method``: ``"cached"`` (the body runs once per
    image and the range test trains the head on the cached features; LogME and a linear probe
    are measured on the same features), ``"full"`` (the study's procedure: the range test trains
    the frozen network end to end) or ``"auto"`` (default: ``full`` for the study policy, whose
    rules take the finder's pick as the rate, and ``cached`` otherwise). On the shared
    datasets the cached pick lies 0.3 to 0.7 decades below the full one, its valley 0.5 to 1.2
    (``docs/lr-finder-cached-vs-full.md``), too far for the published rules.

    Examples
    --------
    >>> AdviseOptions(profile="paper", seed=3).profile
    'paper'
    >>> AdviseOptions().profile        # paper where torch sees a CUDA or MPS device, else cpu (hardware.py)
    'auto'
    >>> AdviseOptions(threshold=2)
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.ConfigError: threshold must be a number in (0, 1), got 2
    """

    backbone: str | Callable | None = None
    weights: str | Path | None = None
    pretrained: bool = True
    fallback: bool = True
    reference: str | Path | None = None
    profile: str = AUTO_PROFILE
    invariances: Mapping[str, bool] | None = None
    threshold: float | None = None
    layout: str = "auto"
    csv_path: str | Path | None = None
    label_sep: str | None = None
    filename_regex: str | None = None
    allow_outside_paths: bool = False       # CSV image names outside the dataset folder (read_dataset)
    similarity: bool = True
    lr_finder: bool = True
    lr_loss: str = "valid"
    lr_steps: int = 100
    lr_finder_fallback: bool = False
    max_images: int = 4000
    bootstrap: int = 200
    seed: int = 0
    progress: bool = True
    policy: str = "calibrated"
    calibration: str | Path | None = None
    lr_finder_method: str = "auto"
    budget: str | None = None       # wall-clock time for training ("15m"): the schedule is shortened to fit

    def __post_init__(self):
        if self.profile not in PROFILES and self.profile != AUTO_PROFILE:
            raise ConfigError(f"unknown profile {self.profile!r}; choose one of {[AUTO_PROFILE, *sorted(PROFILES)]}")
        if self.threshold is not None and not (isinstance(self.threshold, (int, float))
                                               and 0 < float(self.threshold) < 1):
            raise ConfigError(f"threshold must be a number in (0, 1), got {self.threshold!r}")
        if self.layout not in data.LAYOUTS:
            raise ConfigError(f"layout must be one of {data.LAYOUTS}, got {self.layout!r}")
        if self.policy not in heuristics.POLICIES:
            raise ConfigError(f"policy must be one of {heuristics.POLICIES}, got {self.policy!r}")
        if self.lr_finder_method not in LR_FINDER_METHODS:
            raise ConfigError(f"lr_finder_method must be one of {LR_FINDER_METHODS}, got {self.lr_finder_method!r}")
        if self.lr_loss not in LR_LOSSES:
            raise ConfigError(f"lr_loss must be one of {LR_LOSSES}, got {self.lr_loss!r}")
        for name, low in (("lr_steps", 1), ("max_images", 1), ("bootstrap", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.lr_finder and self.lr_steps < MIN_LR_STEPS:
            raise ConfigError(f"lr_steps={self.lr_steps} is too few for the LR range test (at least {MIN_LR_STEPS})",
                              hint="raise lr_steps (CLI --lr-steps), or skip the test with lr_finder=False "
                                   "(--no-lr-finder)")
        if self.budget is not None:
            heuristics.parse_duration(self.budget)          # "15m"; a clear error now, not after the measurements
            if not (self.lr_finder and self.finder_method == "cached"):
                raise ConfigError("a training budget needs the cached LR range test, whose forward pass over "
                                  "the training images measures this machine's throughput",
                                  hint="drop --no-lr-finder / --lr-finder full, or the training budget")
        if self.filename_regex:
            try:
                re.compile(self.filename_regex)
            except re.error as exc:
                raise ConfigError(f"filename_regex {self.filename_regex!r} is not a valid regular expression: {exc}",
                                  hint="it needs one group that captures the label, e.g. '^(.+)_\\d+$'") from None

    def replace(self, **changes: Any) -> "AdviseOptions":
        return dataclasses.replace(self, **changes)

    @property
    def finder_method(self) -> str:
        """The range test run: ``auto`` resolved (the full network's for the study policy).

        >>> AdviseOptions().finder_method, AdviseOptions(policy="study").finder_method
        ('cached', 'full')
        >>> AdviseOptions(policy="study", lr_finder_method="cached").finder_method
        'cached'
        """
        if self.lr_finder_method != "auto":
            return self.lr_finder_method
        return "full" if self.policy == "study" else "cached"

    @property
    def profile_name(self) -> str:
        """The profile itself: ``auto`` resolved by the accelerator torch sees (:mod:`.hardware`)."""
        return auto_profile()[0] if self.profile == AUTO_PROFILE else self.profile

    @classmethod
    def build(cls, options: "AdviseOptions | None" = None, **overrides: Any) -> "AdviseOptions":
        """``options`` (default: the defaults) with ``overrides`` applied; unknown names are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown}; valid options are {sorted(known)}")
        base = options or cls()
        return dataclasses.replace(base, **overrides) if overrides else base

    def read_kwargs(self) -> dict[str, Any]:
        """The options :func:`finetune_advisor.data.read_dataset` takes."""
        kw: dict[str, Any] = {"layout": self.layout, "csv_path": self.csv_path, "label_sep": self.label_sep,
                              "allow_outside_paths": self.allow_outside_paths}
        if self.filename_regex:
            kw["filename_regex"] = self.filename_regex
        return kw
