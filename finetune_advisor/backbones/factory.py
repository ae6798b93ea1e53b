"""``create_backbone``: resolve a name, a ``module:function`` spec or a callable to a
:class:`Backbone`, falling back to the shipped EfficientNet-Lite0 when weights are unavailable."""
from __future__ import annotations

import difflib
import logging
import os

from ..exceptions import BackboneNotFoundError, WeightsUnavailableError
from .loaders import from_callable, import_callable
from .registry import FALLBACK_BACKBONE, Backbone, BackboneSpec, get_backbone_entry, list_backbones, spec_name

__all__ = ["create_backbone"]

log = logging.getLogger(__name__)


def create_backbone(spec: BackboneSpec = "resnet34", *, weights: str | os.PathLike | None = None,
                    pretrained: bool = True, fallback: bool = False) -> Backbone:
    """Resolve ``spec`` to a :class:`Backbone`.

    Parameters
    ----------
    spec : str or callable, default="resnet34"
        A registered name (:func:`list_backbones`: the torchvision ResNets and
        ``efficientnet_lite0``), a ``module:function`` or ``file.py:function`` spec, or an
        architecture callable.
    weights : path, optional
        A local state_dict to load into the architecture (no download).
    pretrained : bool, default=True
        ``False`` gives random weights (for tests).
    fallback : bool, default=False
        When the pretrained weights cannot be obtained (e.g. offline), say so in one log
        line and return the shipped ``efficientnet_lite0`` instead of raising.

    Raises
    ------
    BackboneNotFoundError
        Unknown name, unloadable spec or weights, or weights unavailable without fallback.

    Examples
    --------
    >>> bb = create_backbone("resnet18", pretrained=False)
    >>> bb.name, bb.n_features, bb.key
    ('resnet18', 512, 'resnet18-random')
    """
    try:
        return _create(spec, weights=weights, pretrained=pretrained)
    except WeightsUnavailableError as exc:  # only missing weights fall back; a typo stays an error
        if not fallback or spec == FALLBACK_BACKBONE:
            raise
        log.warning("%s: using the shipped ImageNet %s instead", exc.message, FALLBACK_BACKBONE)
        bb = _create(FALLBACK_BACKBONE, weights=None, pretrained=pretrained)
        bb.fallback_from = spec_name(spec)
        bb.notes.append(f"{spec_name(spec)} unavailable ({exc.message}); used {FALLBACK_BACKBONE}")
        return bb


def _create(spec: BackboneSpec, *, weights, pretrained: bool) -> Backbone:
    if callable(spec):
        return from_callable(spec, spec_name(spec), weights=weights, pretrained=pretrained)
    if not isinstance(spec, str) or not spec:
        raise BackboneNotFoundError(f"backbone must be a name, a 'module:function' spec or a callable, got {spec!r}")
    entry = get_backbone_entry(spec)
    if entry is not None:
        return entry.factory(weights=weights, pretrained=pretrained)
    if ":" in spec:
        return from_callable(import_callable(spec), spec_name(spec), weights=weights, pretrained=pretrained)
    close = difflib.get_close_matches(spec, list_backbones(), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else \
        f"use one of {', '.join(list_backbones())} or a 'module:function' spec"
    raise BackboneNotFoundError(f"unknown backbone {spec!r}", hint=hint)
