"""The learning-rate range test, as the study ran it: record the loss while the learning rate
grows exponentially (:func:`find_lr`, on a fastai Learner), smooth the curve with a zero-phase
low-pass filter and pick where it falls fastest (:func:`suggest_lr`, pure)."""
from ..measurements import LRFinderResult
from .plot import plot_lr_finder
from .range_test import find_lr
from .suggest import Suggestion, suggest_lr

__all__ = ["Suggestion", "LRFinderResult", "suggest_lr", "find_lr", "plot_lr_finder"]
