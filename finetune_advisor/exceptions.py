"""Error types. Every error a user can cause is a FinetuneAdvisorError: the CLI prints
``error: <message>`` (and the hint) on one line and exits 1, with no traceback."""
from __future__ import annotations

from pathlib import Path


class FinetuneAdvisorError(Exception):
    """Base class: a problem the user can fix. ``path`` names the file, ``hint`` the fix."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = self.message
        if self.path and self.path not in text:
            text = f"{self.path}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class DatasetError(FinetuneAdvisorError):
    """The dataset folder, CSV or an image cannot be used as given."""


class ConfigError(FinetuneAdvisorError):
    """A Config (or its JSON) is invalid."""


class InvalidOptionError(ConfigError, ValueError):
    """An argument's value cannot be used (e.g. a ``filename_regex`` that does not compile); also a
    ValueError, the type such arguments raised before."""


class BackboneNotFoundError(FinetuneAdvisorError):
    """A backbone name, weights file or ``module:function`` spec cannot be resolved or loaded."""


class WeightsUnavailableError(BackboneNotFoundError):
    """The backbone is known but its pretrained weights cannot be had (e.g. offline)."""


class SimilarityReferenceError(FinetuneAdvisorError):
    """The similarity reference (Tiny-ImageNet class means) is missing or does not match."""


class LRFinderError(FinetuneAdvisorError):
    """The LR range test produced no usable curve (e.g. the loss is NaN from the first step)."""


class CalibrationError(ConfigError):
    """A calibration file that cannot be used (unreadable, another format or version, or made
    for another backbone or profile)."""
