"""The recommendation: a frozen, JSON-serialisable :class:`Config` whose every decision
carries the reason it was chosen.

>>> from finetune_advisor.config import Config, DECISION_FIELDS
>>> cfg = Config.study_defaults()
>>> cfg.backbone, cfg.batch_size, cfg.beta2, cfg.dropout
('resnet34', 64, 0.99, (0.5, 0.25))
>>> Config.from_json(cfg.to_json()) == cfg
True
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

from .exceptions import ConfigError
from .measurements import Measurements

SCHEMA_VERSION = 1

# Profiles: the study's schedule for GPUs, and a small one that runs on 2 CPU cores.
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {"image_size": 224, "head_epochs": 5, "unfrozen_epochs": 15, "max_images_per_class": None},
    "cpu": {"image_size": 64, "head_epochs": 2, "unfrozen_epochs": 2, "max_images_per_class": 200},
}

FINE_TUNE_CHOICES = ("none", "last", "all")


@dataclass(frozen=True)
class Augmentation:
    """Arguments for fastai's ``aug_transforms`` (plus Gaussian noise), chosen per invariance."""

    do_flip: bool = True          # horizontal flips
    flip_vert: bool = False       # vertical flips (and 90-degree rotations in fastai)
    max_rotate: float = 10.0      # degrees
    max_lighting: float = 0.2     # brightness/contrast
    max_zoom: float = 1.1         # scale
    max_warp: float = 0.2         # perspective / skew
    noise_std: float = 0.0        # Gaussian pixel noise (0 = off)

    def __post_init__(self):
        _validate(self, _AUGMENTATION_RULES, prefix="augmentation.")


@dataclass(frozen=True)
class Config:
    """How to fine-tune an ImageNet-pretrained network on one dataset, with reasons.

    Decision fields are listed in ``DECISION_FIELDS``; ``reasons`` must hold a one-sentence
    reason for each of them. ``measurements`` (:class:`~finetune_advisor.measurements.Measurements`)
    holds the numbers the decisions rest on (similarity, raw EMD, LR-finder rate, dataset
    counts); a JSON dict given here is converted. ``warnings`` holds advice.
    """

    backbone: str = "resnet34"
    profile: str = "paper"
    image_size: int = 224
    batch_size: int = 64
    valid_pct: float = 0.2
    lr: float = 3e-3                 # head (frozen phase) learning rate
    lr_finetune: float = 3e-4        # max LR of the unfrozen phase (head group)
    lr_divisor: float = 10.0         # body LR = lr_finetune / lr_divisor (discriminative LRs)
    weight_decay: float = 0.1
    beta2: float = 0.99              # AdamW second-moment decay
    dropout: tuple[float, float] = (0.5, 0.25)   # fastai head ps=(p1, p2)
    head_size: int = 512             # fastai head lin_ftrs=[head_size]
    head_epochs: int = 5
    fine_tune: str = "all"           # "none" | "last" (last block + head) | "all"
    unfrozen_epochs: int = 15
    multi_label: bool = False
    augmentation: Augmentation = field(default_factory=Augmentation)
    reasons: Mapping[str, str] = field(default_factory=dict)
    measurements: Measurements = field(default_factory=Measurements)
    warnings: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        # Checked once, here (also on every dataclasses.replace): each message says what was found
        # and what is allowed, the way scikit-learn's _param_validation does.
        _validate(self, _CONFIG_RULES)
        object.__setattr__(self, "dropout", _dropout(self.dropout))
        if isinstance(self.warnings, str) or not all(isinstance(w, str) for w in self.warnings):
            raise ConfigError(f"warnings must be a list of strings, got {self.warnings!r}")
        object.__setattr__(self, "warnings", tuple(self.warnings))
        if not isinstance(self.measurements, Measurements):     # a JSON dict, or None
            if self.measurements is not None and not isinstance(self.measurements, Mapping):
                raise ConfigError(f"measurements must be a JSON object, got {self.measurements!r}")
            object.__setattr__(self, "measurements", Measurements.from_dict(self.measurements))
        if isinstance(self.augmentation, Mapping):
            _check_keys(self.augmentation, AUGMENTATION_FIELDS, "augmentation")
            object.__setattr__(self, "augmentation", Augmentation(**self.augmentation))
        elif not isinstance(self.augmentation, Augmentation):
            raise ConfigError(f"augmentation must be a JSON object with fields {list(AUGMENTATION_FIELDS)}, "
                              f"got {self.augmentation!r}")
        if not isinstance(self.reasons, Mapping):
            raise ConfigError(f"reasons must be a JSON object of field -> reason, got {self.reasons!r}")
        if self.reasons:
            missing = [f for f in DECISION_FIELDS if f not in self.reasons]
            extra = [k for k in self.reasons if k not in DECISION_FIELDS]
            if missing or extra:
                raise ConfigError(f"reasons must cover exactly the decision fields; "
                                  f"missing {missing}, unexpected {extra}")

    # --- construction -------------------------------------------------------------
    @classmethod
    def study_defaults(cls) -> "Config":
        """The study's Table 1 baseline (ResNet-34, bs 64, wd 0.1, beta2 0.99, ps (0.5, 0.25))."""
        return cls()

    def replace(self, reason: str = "set by user", **changes: Any) -> "Config":
        """Return a copy with ``changes`` applied; each changed field's reason becomes ``reason``."""
        _check_keys(changes, DECISION_FIELDS, "Config.replace")
        reasons = dict(self.reasons)
        reasons.update({k: reason for k in changes})
        return dataclasses.replace(self, reasons=reasons, **changes)

    # --- JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["augmentation"] = dataclasses.asdict(self.augmentation)
        d["dropout"] = list(self.dropout)
        d["warnings"] = list(self.warnings)
        d["reasons"] = dict(self.reasons)
        d["measurements"] = self.measurements.to_dict()
        return d

    def decisions(self) -> dict[str, Any]:
        """What training reads of this Config (its decision fields) as JSON values: two Configs
        that train the same way compare equal here whatever their reasons and measurements."""
        data = self.to_dict()
        return {f: data[f] for f in DECISION_FIELDS}

    def to_json(self, **kwargs: Any) -> str:
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        if not isinstance(data, Mapping):
            raise ConfigError(f"a Config must be a JSON object, got {type(data).__name__}")
        _check_keys(data, ALL_FIELDS, "Config")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(f"Config schema_version {version} is not supported (expected {SCHEMA_VERSION})")
        try:
            config = cls(**data)
        except TypeError as exc:  # wrong value types
            raise ConfigError(f"invalid Config: {exc}") from None
        # A saved Config holds every decision: a missing one (say lr) must not become the default.
        missing = [f for f in DECISION_FIELDS if f not in data]
        if missing:
            raise ConfigError(f"the Config is missing field(s) {missing}: a saved Config holds every decision, "
                              f"and a missing one would silently become the default")
        return config

    @classmethod
    def from_json(cls, text: str) -> "Config":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Config is not valid JSON: {exc}") from None
        return cls.from_dict(data)


# --- validation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Number:
    """A finite real number in an interval (scikit-learn's ``Interval(Real, low, high, closed=...)``)."""

    low: float = -math.inf
    high: float = math.inf
    closed: str = "neither"    # "left" | "right" | "both" | "neither"
    note: str = ""

    def describe(self) -> str:
        left, right = self.closed in ("left", "both"), self.closed in ("right", "both")
        if self.high == math.inf:
            text = f"a finite number {'>=' if left else '>'} {self.low:g}"
        else:
            text = f"a number in {'[' if left else '('}{self.low:g}, {self.high:g}{']' if right else ')'}"
        return f"{text} ({self.note})" if self.note else text

    def check(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _invalid(name, self.describe(), value)
        v = float(value)
        left, right = self.closed in ("left", "both"), self.closed in ("right", "both")
        if not (math.isfinite(v) and (v >= self.low if left else v > self.low)
                and (v <= self.high if right else v < self.high)):
            raise _invalid(name, self.describe(), value)
        return v


@dataclass(frozen=True)
class _Integer:
    """An integer >= ``low`` (16.7 and True are refused)."""

    low: int

    def describe(self) -> str:
        return f"an integer >= {self.low}"

    def check(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < self.low:
            raise _invalid(name, self.describe(), value)
        return int(value)


class _Boolean:
    """``true`` or ``false`` (not "yes", not 1)."""

    def describe(self) -> str:
        return "true or false"

    def check(self, name: str, value: Any) -> bool:
        numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
        if not (isinstance(value, bool) or numpy_bool):
            raise _invalid(name, self.describe(), value)
        return bool(value)


@dataclass(frozen=True)
class _Choice:
    options: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise _invalid(name, self.describe(), value)
        return value


class _Name:
    def describe(self) -> str:
        return "a non-empty string"

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _invalid(name, self.describe(), value)
        return value


def _invalid(name: str, allowed: str, value: Any) -> ConfigError:
    """``lr must be a finite number > 0, got -0.001``: the field, what is allowed, what was found."""
    return ConfigError(f"{name} must be {allowed}, got {value!r}")


def _validate(obj: Any, rules: Mapping[str, Any], prefix: str = "") -> None:
    """Check (and normalise: numpy scalars to Python ones) every field of ``obj`` named in ``rules``."""
    for name, rule in rules.items():
        object.__setattr__(obj, name, rule.check(prefix + name, getattr(obj, name)))


_PROBABILITY = _Number(0.0, 1.0, "left")


def _dropout(value: Any) -> tuple[float, float]:
    """The head's dropout ``(p1, p2)``, each in [0, 1)."""
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__") or len(value) != 2:
        raise _invalid("dropout", "two numbers (p1, p2), each in [0, 1)", value)
    p1, p2 = value
    return _PROBABILITY.check("dropout[0]", p1), _PROBABILITY.check("dropout[1]", p2)


_CONFIG_RULES: dict[str, Any] = {
    "backbone": _Name(), "profile": _Choice(tuple(sorted(PROFILES))),
    "image_size": _Integer(1), "batch_size": _Integer(1), "head_size": _Integer(1),
    "head_epochs": _Integer(0), "unfrozen_epochs": _Integer(0),
    "valid_pct": _Number(0.0, 1.0, "neither", "the validation fraction; the rest trains"),
    "lr": _Number(0.0), "lr_finetune": _Number(0.0), "lr_divisor": _Number(0.0),
    "weight_decay": _Number(0.0, closed="left"), "beta2": _Number(0.0, 1.0),
    "fine_tune": _Choice(FINE_TUNE_CHOICES), "multi_label": _Boolean(),
    "schema_version": _Integer(1),
}
_AUGMENTATION_RULES: dict[str, Any] = {
    "do_flip": _Boolean(), "flip_vert": _Boolean(),
    "max_rotate": _Number(0.0, 180.0, "both", "degrees"), "max_lighting": _PROBABILITY,
    "max_zoom": _Number(1.0, closed="left", note="1 = no zoom"), "max_warp": _PROBABILITY,
    "noise_std": _Number(0.0, closed="left"),
}


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], who: str) -> None:
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{who} got unknown field(s) {unknown}; valid fields are {sorted(valid)}")


AUGMENTATION_FIELDS = tuple(f.name for f in dataclasses.fields(Augmentation))
ALL_FIELDS = tuple(f.name for f in dataclasses.fields(Config))
DECISION_FIELDS = tuple(f for f in ALL_FIELDS
                        if f not in ("reasons", "measurements", "warnings", "schema_version"))
