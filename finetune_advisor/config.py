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
        object.__setattr__(self, "dropout", tuple(float(p) for p in self.dropout))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        if not isinstance(self.measurements, Measurements):     # a JSON dict, or None
            object.__setattr__(self, "measurements", Measurements.from_dict(self.measurements))
        if isinstance(self.augmentation, Mapping):
            object.__setattr__(self, "augmentation", Augmentation(**self.augmentation))
        if self.fine_tune not in FINE_TUNE_CHOICES:
            raise ConfigError(f"fine_tune={self.fine_tune!r} is not one of {FINE_TUNE_CHOICES}")
        if self.profile not in PROFILES:
            raise ConfigError(f"profile={self.profile!r} is not one of {sorted(PROFILES)}")
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
            return cls(**data)
        except TypeError as exc:  # wrong value types
            raise ConfigError(f"invalid Config: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> "Config":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Config is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], who: str) -> None:
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{who} got unknown field(s) {unknown}; valid fields are {sorted(valid)}")


FINE_TUNE_CHOICES = ("none", "last", "all")
ALL_FIELDS = tuple(f.name for f in dataclasses.fields(Config))
DECISION_FIELDS = tuple(f for f in ALL_FIELDS
                        if f not in ("reasons", "measurements", "warnings", "schema_version"))
