"""The backbone registry: each name carries its factory, input normalisation, similarity
threshold and shipped similarity reference (timm's ``_registry`` pattern), and :class:`Backbone`,
what every factory returns.

>>> entry = get_backbone_entry("efficientnet_lite0")
>>> entry.n_features, entry.shipped_reference
(1280, 'reference_efficientnet_lite0_128px_k20.npz')
>>> list_backbones("resnet1*")
['resnet18', 'resnet101', 'resnet152']
"""
from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Union

from ..study import SIMILARITY_THRESHOLD

__all__ = ["Backbone", "BackboneEntry", "BackboneSpec", "BACKBONES", "register_backbone", "get_backbone_entry",
           "list_backbones", "spec_name"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite expects (x*255 - 127) / 128, i.e. mean 127/255 and std 128/255.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3

FALLBACK_BACKBONE = "efficientnet_lite0"

BackboneSpec = Union[str, Callable[..., "object"]]


@dataclass
class Backbone:
    """A pretrained feature extractor and what is needed to feed it.

    ``body`` maps a normalised image batch (N, 3, H, W) to a feature map (N, C, h, w);
    ``features`` pools it to the penultimate features (N, C).
    """

    name: str
    body: "object"  # torch.nn.Module
    n_features: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained: bool = True
    source: str = ""
    fallback_from: str | None = None
    notes: list[str] = field(default_factory=list)

    def features(self, x):
        """Penultimate features: global average pool of the body's output."""
        return self.body(x).mean(dim=(2, 3))

    def concat_features(self, x):
        """What fastai's head takes: the body's output max- and average-pooled, concatenated
        (``AdaptiveConcatPool2d``: max first), shape (N, 2C)."""
        fmap = self.body(x)
        return self.concat_pool(fmap)

    @staticmethod
    def concat_pool(fmap):
        import torch

        return torch.cat([fmap.amax(dim=(2, 3)), fmap.mean(dim=(2, 3))], dim=1)

    def new_body(self):
        """A fresh copy of the body, for training (which changes its weights)."""
        return copy.deepcopy(self.body)

    @property
    def key(self) -> str:
        """Identifies the weights, for caching references (random init never matches real)."""
        return self.name if self.pretrained else f"{self.name}-random"


@dataclass(frozen=True)
class BackboneEntry:
    """A registered name: ``factory(weights=None, pretrained=True) -> Backbone`` and its metadata.

    ``threshold`` is the near/far similarity cut-off for this backbone's features (the study's
    value until calibrated per backbone); ``shipped_reference`` names the similarity reference
    in ``finetune_advisor/resources`` built with it, if the package ships one.
    """

    name: str
    factory: Callable[..., Backbone]
    n_features: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    threshold: float = SIMILARITY_THRESHOLD
    shipped_reference: str | None = None


# Filled once, at import, by the @register_backbone decorators in loaders.py (and by users who
# register their own); read through the read-only view BACKBONES.
_REGISTRY: dict[str, BackboneEntry] = {}
BACKBONES: Mapping[str, BackboneEntry] = MappingProxyType(_REGISTRY)


def register_backbone(name: str, *, n_features: int, mean: tuple[float, float, float] = IMAGENET_MEAN,
                      std: tuple[float, float, float] = IMAGENET_STD, threshold: float = SIMILARITY_THRESHOLD,
                      shipped_reference: str | None = None) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    """Decorator: register ``factory(weights=None, pretrained=True) -> Backbone`` under ``name``;
    the factory is returned unchanged."""
    def decorate(factory: Callable[..., Backbone]) -> Callable[..., Backbone]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = BackboneEntry(name=name, factory=factory, n_features=int(n_features), mean=tuple(mean),
                                        std=tuple(std), threshold=float(threshold),
                                        shipped_reference=shipped_reference)
        return factory
    return decorate


def get_backbone_entry(name: str) -> BackboneEntry | None:
    """The registry entry for ``name``, or None when it is not a registered name."""
    return _REGISTRY.get(name)


def list_backbones(pattern: str | None = None) -> list[str]:
    """Names accepted without a spec or a weights file, in registration order; ``pattern`` is
    an ``fnmatch`` filter (``"resnet*"``)."""
    return [n for n in _REGISTRY if pattern is None or fnmatch.fnmatchcase(n, pattern)]


def spec_name(spec: BackboneSpec) -> str:
    """A short, stable name for a spec: used in configs and cache keys.

    >>> spec_name("resnet34"), spec_name("my_models.py:tiny_net")
    ('resnet34', 'tiny_net')
    """
    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__)
    if ":" in spec and not spec.startswith(("http:", "https:")):
        return spec.rsplit(":", 1)[1]
    return spec
