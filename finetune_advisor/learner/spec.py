"""What building a fastai Learner needs to know, and nothing else: a :class:`LearnerSpec`, made
from a :class:`~finetune_advisor.config.Config` or directly from the heuristics' decisions.

>>> from finetune_advisor.config import Config
>>> spec = LearnerSpec.from_config(Config(profile="cpu", image_size=64))
>>> spec.image_size, spec.batch_size, spec.max_images_per_class
(64, 64, 200)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..config import PROFILES, Augmentation, Config

_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _config_default(name: str) -> Any:
    """The Config's own default for ``name`` (one copy of each default)."""
    f = _CONFIG_FIELDS[name]
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory)
    return field(default=f.default)


@dataclass(frozen=True)
class LearnerSpec:
    """The fields of a Config that the DataLoaders and the Learner are built from.

    Defaults are the Config's. ``max_images_per_class`` is the per-class cap already resolved
    from the profile (None: no cap); ``lr`` is the Learner's default learning rate.
    """

    image_size: int = _config_default("image_size")
    batch_size: int = _config_default("batch_size")
    valid_pct: float = _config_default("valid_pct")
    multi_label: bool = _config_default("multi_label")
    augmentation: Augmentation = _config_default("augmentation")
    backbone: str = _config_default("backbone")
    dropout: tuple[float, float] = _config_default("dropout")
    head_size: int = _config_default("head_size")
    weight_decay: float = _config_default("weight_decay")
    beta2: float = _config_default("beta2")
    lr: float = _config_default("lr")
    max_images_per_class: int | None = PROFILES[_CONFIG_FIELDS["profile"].default]["max_images_per_class"]

    def __post_init__(self) -> None:
        object.__setattr__(self, "dropout", tuple(float(p) for p in self.dropout))

    @classmethod
    def from_config(cls, config: Config) -> "LearnerSpec":
        """The spec of ``config``; the cap is ``PROFILES[config.profile]["max_images_per_class"]``."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "max_images_per_class"]
        return cls(**{n: getattr(config, n) for n in names},
                   max_images_per_class=PROFILES[config.profile].get("max_images_per_class"))


def as_spec(spec_or_config: LearnerSpec | Config) -> LearnerSpec:
    """``spec_or_config`` as a :class:`LearnerSpec` (a Config is converted)."""
    if isinstance(spec_or_config, LearnerSpec):
        return spec_or_config
    if isinstance(spec_or_config, Config):
        return LearnerSpec.from_config(spec_or_config)
    raise TypeError(f"expected a LearnerSpec or a Config, got {type(spec_or_config).__name__}")
