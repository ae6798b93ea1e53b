"""The learning-rate range test, as the study ran it: record the loss while the learning rate
grows exponentially, smooth the curve with a zero-phase digital low-pass filter, and pick the
learning rate where the smoothed loss falls fastest.

:func:`suggest_lr` is the pure part (numpy + :mod:`scipy.signal`), tested on synthetic curves;
:func:`find_lr` runs the sweep with fastai's own ``Learner.lr_find`` machinery (the ``LRFinder``
callback: exponential schedule, stop on divergence, weights restored) plus a small callback of
ours that records the *raw* per-batch loss, or the loss on a few fixed validation batches.

>>> import numpy as np
>>> lrs = np.logspace(-7, 1, 100)
>>> x = np.log10(lrs)
>>> losses = 2.0 - 0.8 * np.tanh((x + 3.0) / 0.4) + np.where(x > -1, (x + 1) ** 3, 0.0)
>>> s = suggest_lr(lrs, losses)
>>> round(float(np.log10(s.lr)), 1)
-3.0
"""
from __future__ import annotations

import functools
import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .exceptions import LRFinderError

if TYPE_CHECKING:  # heavy imports stay inside the functions that use them
    from fastai.learner import Learner

log = logging.getLogger(__name__)

__all__ = ["Suggestion", "LRFinderResult", "suggest_lr", "find_lr", "plot_lr_finder"]

FILTERS = ("butter", "savgol")
LOSS_KINDS = ("train", "valid")


# --------------------------------------------------------------------------------------
# Pure part: smoothing and the steepest-slope pick
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Suggestion:
    """What :func:`suggest_lr` picked, and the curve it picked it from.

    Attributes
    ----------
    lr : float
        The learning rate at the steepest descent of the smoothed loss.
    index : int
        Position in the input arrays of the swept rate nearest ``lr`` (with ``refine``, ``lr``
        lies within half a step of ``lrs[index]``).
    smoothed : numpy.ndarray
        The smoothed loss over the points used (the input's first ``len(smoothed)`` points:
        everything before the first non-finite loss and before the loss diverged).
    slope : numpy.ndarray
        ``d smoothed / d log10(lr)``, same length as ``smoothed``.
    search : tuple of int
        ``(start, stop)``: the index range searched for the steepest slope (``stop`` is the
        smoothed minimum, inclusive).
    diverged : bool
        True when the input had a non-finite loss or a loss above ``div_factor`` times its start.
    """

    lr: float
    index: int
    smoothed: np.ndarray
    slope: np.ndarray
    search: tuple[int, int]
    diverged: bool


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], *,
               filter: str = "butter",
               order: int = 2,
               cutoff: float = 0.75,
               skip_start: float = 0.1,
               div_factor: float = 4.0,
               min_points: int = 8,
               min_drop: float = 0.02,
               refine: bool = True) -> Suggestion:
    """Pick the learning rate with the steepest negative slope of the smoothed loss.

    The study's recipe: the raw loss of an LR range test is noisy, so it is smoothed with a
    digital low-pass filter before differentiating; the LR with the largest negative slope
    ``d loss / d log10(lr)`` is the suggestion.

    Steps: keep the points before the first non-finite loss (a NaN/inf means the run had
    diverged: nothing after it is meaningful); cut where the loss exceeds ``div_factor`` times
    its starting level (this bounds how far the filter can smear an exploding tail back into
    the curve); smooth with a zero-phase filter (``filtfilt`` runs the filter forwards and
    backwards, so the minimum and the steepest point are not shifted to higher LRs as a causal
    filter or fastai's EMA would shift them); search from ``skip_start`` up to the smoothed
    minimum (past it the loss rises: the divergent tail).

    Parameters
    ----------
    lrs : sequence of float
        Learning rates, positive and strictly increasing (an exponential schedule, so the
        points are evenly spaced in ``log10(lr)``).
    losses : sequence of float
        The loss recorded at each learning rate (raw, not EMA-smoothed); NaN/inf allowed.
    filter : {"butter", "savgol"}, default="butter"
        ``"butter"``: Butterworth low-pass (``scipy.signal.butter``) applied with
        ``scipy.signal.filtfilt`` -- flat pass band, so the descent keeps its shape.
        ``"savgol"``: Savitzky-Golay polynomial smoothing (``scipy.signal.savgol_filter``)
        with a window of about ``1 / cutoff`` decades.
    order : int, default=2
        Butterworth order, or Savitzky-Golay polynomial order. Order 2 (4 after ``filtfilt``)
        rolls off fast enough to kill batch noise while ringing very little at the curve's
        kink where the loss turns up.
    cutoff : float, default=0.75
        Cut-off frequency in cycles per decade of learning rate (converted to scipy's
        fraction of Nyquist from the curve's own point spacing, so ``num_it`` does not change
        the smoothing). A loss descent spans one to two decades, i.e. under ~0.7 cycles per
        decade, while per-batch noise is white up to the Nyquist frequency (6 cycles per
        decade for fastai's 100 steps over 8 decades); 0.75 keeps the first and removes
        ~90% of the noise power. Tuned on synthetic tanh descents (widths 0.15-0.5 decades,
        divergence starting 0.5-1.2 decades after the steepest point, batch noise 5-20% of
        the loss): mean error 0.03 decades, 95th percentile 0.1; lower cut-offs (0.3-0.5)
        blur the divergent tail into the descent, higher ones (>= 1) let noise through.
        fastai's EMA (beta 0.98) + steepest gradient is 0.2 decades late on average there.
    skip_start : float, default=0.1
        Leading part of the curve excluded from the search, as a fraction of the points used
        (< 1) or a number of points (>= 1). The filter's start-up transient lives there, and
        at the smallest LRs nothing is learnt yet (fastai's ``lr_find`` skips 10% too).
    div_factor : float, default=4.0
        A loss above ``div_factor`` times its starting level counts as divergence (fastai's
        ``LRFinder`` stops at 4x its best smoothed loss).
    min_points : int, default=8
        Fewest usable (finite, not diverged) points accepted.
    refine : bool, default=True
        Place the steepest point between sweep points: the vertex of the parabola through
        the slope at the steepest point and its two neighbours (in log10(lr)). Without it
        the suggestion can only be one of the swept rates (0.08 decades apart for 100 steps
        over 1e-7..10), a quantisation as large as half the 1.5x stability goal.
    min_drop : float, default=0.02
        The smoothed loss must fall by at least this fraction of its level before the minimum;
        a flat, noisy curve otherwise yields an arbitrary "steepest" wiggle.

    Returns
    -------
    Suggestion
        ``lr``, its ``index`` in the inputs, the ``smoothed`` curve and its ``slope``.

    Raises
    ------
    LRFinderError
        If the inputs are malformed, the loss is non-finite from the first step, fewer than
        ``min_points`` points are usable, or the smoothed loss never decreases.

    Examples
    --------
    >>> lrs = np.logspace(-6, 0, 60)
    >>> losses = 1.5 - 0.5 * np.tanh((np.log10(lrs) + 2.5) / 0.5)
    >>> s = suggest_lr(lrs, losses)
    >>> f"{s.lr:.1e}", s.index, len(s.smoothed) == len(lrs)
    ('3.2e-03', 34, True)
    >>> suggest_lr(lrs, np.full(60, np.nan))
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.LRFinderError: the loss is not finite from the first step ...
    """
    x, y = _check_curve(lrs, losses, min_points)
    n, diverged = _usable_length(y, div_factor)
    if n < min_points:
        raise LRFinderError(
            f"only {n} usable points in the LR range test (need at least {min_points}); the loss "
            f"diverged at lr={10 ** x[n]:.2e}",
            hint="lower end_lr, raise num_it, or check the data and loss function")
    x, y = x[:n], y[:n]
    smoothed = _smooth(x, y, filter=filter, order=order, cutoff=cutoff)
    slope = np.gradient(smoothed, x)
    stop = _check_descends(smoothed, x, min_drop)
    start = _search_start(skip_start, stop)
    index = start + int(np.argmin(slope[start:stop + 1]))
    if slope[index] >= 0:
        raise _NoDescentError(f"the smoothed loss never decreases between lr={10 ** x[start]:.2e} and "
                              f"lr={10 ** x[stop]:.2e}; no learning rate can be suggested",
                              hint="start the sweep at a lower start_lr")
    lr = float(np.asarray(lrs, dtype=float).ravel()[index])  # the input value, not 10**log10
    if refine and start < index < stop and index + 1 < len(slope):
        s0, s1, s2 = slope[index - 1:index + 2]
        curvature = s0 - 2 * s1 + s2
        if curvature > 0:  # a proper minimum: the vertex lies within half a step of index
            offset = 0.5 * (s0 - s2) / curvature
            lr = float(10 ** (x[index] + offset * (x[index + 1] - x[index - 1]) / 2))
    return Suggestion(lr=lr, index=index, smoothed=smoothed, slope=slope, search=(start, stop), diverged=diverged)


def _check_curve(lrs: Sequence[float], losses: Sequence[float], min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(log10(lrs), losses)`` as float arrays, or raise with what is wrong."""
    lr = np.asarray(lrs, dtype=float).ravel()
    y = np.asarray(losses, dtype=float).ravel()
    if lr.shape != y.shape:
        raise LRFinderError(f"lrs and losses differ in length ({lr.size} vs {y.size})")
    if lr.size < min_points:
        raise LRFinderError(f"the LR range test has {lr.size} points; at least {min_points} are needed",
                            hint="raise num_it")
    if not (np.all(np.isfinite(lr)) and np.all(lr > 0) and np.all(np.diff(lr) > 0)):
        raise LRFinderError("lrs must be positive, finite and strictly increasing (an exponential sweep)")
    if not np.isfinite(y[0]):
        raise LRFinderError(
            f"the loss is not finite from the first step (loss={y[0]} at lr={lr[0]:.2e}): the model "
            "or the data produce NaN/inf before any learning rate can matter",
            hint="check the inputs (normalisation, NaN pixels), the labels and the loss function")
    return np.log10(lr), y


def _usable_length(y: np.ndarray, div_factor: float) -> tuple[int, bool]:
    """Number of leading points before the first non-finite or divergent loss, and whether
    the curve was cut."""
    bad = ~np.isfinite(y)
    n = int(np.argmax(bad)) if bad.any() else y.size
    # The starting level: a median, so one noisy first batch does not set it.
    start_level = float(np.median(y[:max(3, n // 20)][np.isfinite(y[:max(3, n // 20)])]))
    if start_level > 0:
        over = y[:n] > div_factor * start_level
        if over.any():
            n = int(np.argmax(over))
    return n, n < y.size


def _smooth(x: np.ndarray, y: np.ndarray, *, filter: str, order: int, cutoff: float) -> np.ndarray:
    """Zero-phase low-pass ``y`` sampled at (evenly spaced) ``x = log10(lr)``."""
    from scipy import signal

    if filter not in FILTERS:
        raise LRFinderError(f"filter={filter!r} is not one of {FILTERS}")
    if cutoff <= 0 or order < 1:
        raise LRFinderError(f"need cutoff > 0 and order >= 1 (got cutoff={cutoff}, order={order})")
    step = float(np.median(np.diff(x)))  # decades per point
    if filter == "butter":
        wn = 2.0 * cutoff * step          # cycles/decade -> fraction of Nyquist (0.5 cycles/point)
        if wn >= 1.0:                     # points so sparse that nothing is above the cut-off
            return y.copy()
        b, a = signal.butter(order, wn)
        # filtfilt pads by 3*len(a) points by default and refuses shorter curves: pad less.
        padlen = min(3 * max(len(a), len(b)), y.size - 1)
        return signal.filtfilt(b, a, y, padlen=padlen)
    window = int(round(1.0 / (cutoff * step))) | 1   # ~1/cutoff decades, odd
    window = min(window, y.size if y.size % 2 else y.size - 1)
    if window <= order:
        return y.copy()
    return signal.savgol_filter(y, window, order, mode="interp")


class _NoDescentError(LRFinderError):
    """The curve never falls: what find_lr's fallback to the training loss catches."""


def _check_descends(smoothed: np.ndarray, x: np.ndarray, min_drop: float) -> int:
    """Index of the smoothed minimum; raise when the curve does not fall before it."""
    stop = int(np.argmin(smoothed))
    peak = float(np.max(smoothed[:stop + 1]))
    drop = (peak - smoothed[stop]) / max(abs(peak), 1e-12)
    if stop == 0 or drop < min_drop:
        raise _NoDescentError(
            f"the smoothed loss never decreases meaningfully between lr={10 ** x[0]:.2e} and "
            f"lr={10 ** x[-1]:.2e} (largest drop {100 * drop:.1f}% < {100 * min_drop:.0f}%); "
            "no learning rate can be suggested",
            hint="start the sweep at a lower start_lr or raise end_lr; check that the model can learn")
    return stop


def _search_start(skip_start: float, stop: int) -> int:
    """First index searched: ``skip_start`` as a fraction (< 1) of the points or a count."""
    start = int(skip_start * (stop + 1)) if skip_start < 1 else int(skip_start)
    return start if start < stop else 0


# --------------------------------------------------------------------------------------
# The range test on a fastai Learner
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LRFinderResult:
    """An LR range test and what was suggested from it.

    ``lrs`` and ``losses_raw`` hold one entry per step (NaN where the loss was not finite);
    ``losses_smooth`` covers the first ``len(losses_smooth)`` steps (before divergence).
    ``fastai_valley``/``fastai_steep`` are fastai's own suggestions from the same run (on its
    EMA-smoothed training loss), or None when fastai could not make one.
    """

    lr: float
    lrs: tuple[float, ...]
    losses_raw: tuple[float, ...]
    losses_smooth: tuple[float, ...]
    index: int
    fastai_valley: float | None
    fastai_steep: float | None
    loss_kind: str
    n_steps: int
    diverged: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: lists of floats, with None for NaN/inf."""
        return {"lr": self.lr, "lrs": list(self.lrs), "losses_raw": [_finite_or_none(v) for v in self.losses_raw],
                "losses_smooth": list(self.losses_smooth), "index": self.index,
                "fastai_valley": self.fastai_valley, "fastai_steep": self.fastai_steep,
                "loss_kind": self.loss_kind, "n_steps": self.n_steps, "diverged": self.diverged}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LRFinderResult":
        """Inverse of :meth:`to_dict` (None losses become NaN)."""
        d = dict(data)
        d["lrs"] = tuple(float(v) for v in d["lrs"])
        d["losses_raw"] = tuple(math.nan if v is None else float(v) for v in d["losses_raw"])
        d["losses_smooth"] = tuple(float(v) for v in d["losses_smooth"])
        return cls(**d)


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def find_lr(learn: "Learner", *,
            start_lr: float = 1e-7,
            end_lr: float = 10.0,
            num_it: int = 100,
            loss: str = "valid",
            valid_batches: int = 2,
            bn_warmup: int = 30,
            seed: int | None = None,
            stop_div: bool = True,
            suggest_kwargs: Mapping[str, Any] | None = None) -> LRFinderResult:
    """Run the LR range test on ``learn`` as it is now (freeze it first: the study ran the
    test on the frozen network) and suggest a learning rate with :func:`suggest_lr`.

    fastai's ``Learner.lr_find`` does the sweep (its ``LRFinder`` callback: exponential
    schedule from ``start_lr`` to ``end_lr`` over ``num_it`` batches, stop once its smoothed
    loss passes 4x its best, weights and optimizer restored afterwards) and returns its own
    ``valley`` and ``steep`` suggestions. A recording callback added for the duration keeps
    each batch's learning rate and raw loss, before fastai's EMA; it also stops the sweep at
    the first non-finite loss. The weights are compared with a snapshot afterwards and put
    back from it if anything (an exception included) left them changed.

    Parameters
    ----------
    learn : fastai.learner.Learner
        With its DataLoaders; ``learn.path`` must be writable (fastai saves the weights there
        during the test).
    start_lr, end_lr : float, default=1e-7, 10
        The sweep's range (fastai's defaults).
    num_it : int, default=100
        Number of batches (fastai's default).
    loss : {"valid", "train"}, default="valid"
        ``"valid"``: after each step, the mean loss on the first ``valid_batches``
        validation batches, in eval mode under ``no_grad`` -- what the study recorded.
        ``"train"``: the raw loss of each training batch; cheaper (no extra forward passes)
        but noisier. Measured (``benchmarks/lr_finder_tuning.py``, real ResNet-50, 64 px,
        40 images a class): on xray-nih the training-loss curve of a prior-initialised
        head is batch noise around a 2% descent and its steepest point fell at 1.5e-5;
        the validation curve descends cleanly and gives 2.1e-3. When the validation loss
        never falls by ``min_drop`` (a head started at the label priors on a tiny
        multi-label set), the training loss of the same sweep, always recorded, is used and
        ``loss_kind`` says ``"train"``.
    valid_batches : int, default=2
        Validation batches evaluated per step when ``loss="valid"``.
    bn_warmup : int, default=30
        With ``loss="valid"``: training batches run forward (train mode, no gradients)
        before the sweep, so BatchNorm's running statistics move from ImageNet's to this
        data's first. Without it they drift during the sweep's first ~20 steps (momentum
        0.1), and the validation loss, evaluated with them, falls at learning rates far too
        small to learn anything (measured: Pets, 40 images a class, valid loss 1.58 -> 1.20
        between lr 1e-7 and 6e-7, which the pick took for the descent). Training losses use
        batch statistics and need no warm-up. Undone with the weights afterwards.
    seed : int, optional
        Seeds python, numpy and torch (fastai's ``set_seed``) for a repeatable sweep.
    stop_div : bool, default=True
        Stop when the loss diverges (fastai's rule).
    suggest_kwargs : mapping, optional
        Passed to :func:`suggest_lr` (``filter``, ``cutoff``, ...).

    Returns
    -------
    LRFinderResult

    Raises
    ------
    LRFinderError
        When the loss is not finite from the first step, the curve is too short or never
        decreases, the learner has no training batches, or ``loss="valid"`` but it has no
        validation batches.

    Examples
    --------
    >>> learn.freeze()                                      # doctest: +SKIP
    >>> result = find_lr(learn, loss="valid", seed=0)       # doctest: +SKIP
    >>> result.lr, result.fastai_valley                     # doctest: +SKIP
    (0.0063..., 0.0125...)
    >>> plot_lr_finder(result, divided_lr=result.lr / 10)   # doctest: +SKIP
    """
    import fastai.callback.schedule  # noqa: F401  (patches Learner.lr_find onto Learner)

    if loss not in LOSS_KINDS:
        raise LRFinderError(f"loss={loss!r} is not one of {LOSS_KINDS}")
    if not 0 < start_lr < end_lr:
        raise LRFinderError(f"need 0 < start_lr < end_lr (got {start_lr}, {end_lr})")
    if len(learn.dls.train) == 0:
        raise LRFinderError("the learner has no training batches (fastai drops the last incomplete batch)",
                            hint="use a batch size at most half the number of training images")
    valid = _fixed_valid_batches(learn, valid_batches) if loss == "valid" else None
    # fastai DataLoaders shuffle with their own random.Random, which set_seed does not touch:
    # seed them for a repeatable sweep, and give them their state back so that the sweep does
    # not change the order of the training that follows.
    rngs = [(dl.rng, dl.rng.getstate()) for dl in learn.dls.loaders
            if isinstance(getattr(dl, "rng", None), random.Random)]
    if seed is not None:
        from fastai.torch_core import set_seed
        set_seed(seed)
        for rng, _ in rngs:
            rng.seed(seed)
    recorder = _recorder_class()(valid)
    snapshot = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    learn.add_cb(recorder)
    try:
        if loss == "valid":
            _warm_up_batchnorm(learn, bn_warmup)
        suggestions = learn.lr_find(start_lr=start_lr, end_lr=end_lr, num_it=num_it, stop_div=stop_div,
                                    show_plot=False, suggest_funcs=_fastai_suggest_funcs())
    finally:
        learn.remove_cb(recorder)
        _restore_if_changed(learn.model, snapshot, expected=loss == "valid" and bn_warmup > 0)
        for rng, state in rngs:
            rng.setstate(state)
    return _result(recorder, suggestions, loss, num_it, suggest_kwargs or {})


def _result(recorder: Any, suggestions: Any, loss: str, num_it: int,
            suggest_kwargs: Mapping[str, Any]) -> LRFinderResult:
    lrs = np.asarray(recorder.rec_lrs, dtype=float)
    raw = np.asarray(recorder.rec_losses, dtype=float)
    if raw.size and not np.isfinite(raw[0]):
        raise LRFinderError(
            f"the {loss} loss is not finite from the first step of the LR range test (lr={lrs[0]:.2e}): "
            "the model or the data produce NaN/inf before any learning rate can matter",
            hint="check the inputs (normalisation, NaN pixels), the labels and the loss function")
    try:
        s = suggest_lr(lrs, raw, **suggest_kwargs)
    except _NoDescentError as exc:
        # A head that starts at the label priors can leave the validation loss flat through
        # the sweep (protein-hpa, 200 images, 28 labels: a 0.4% drop); the training loss of
        # the same sweep, recorded alongside for free, still shows the descent.
        if loss != "valid":
            raise
        train = np.asarray(recorder.rec_train_losses, dtype=float)
        try:
            s = suggest_lr(lrs, train, **suggest_kwargs)
        except LRFinderError:
            raise exc from None
        log.warning("LR range test: the validation loss is flat (%s); suggesting from the training loss "
                    "of the same sweep", exc.message)
        raw, loss = train, "train"
    return LRFinderResult(
        lr=s.lr, lrs=tuple(lrs.tolist()), losses_raw=tuple(raw.tolist()),
        losses_smooth=tuple(float(v) for v in s.smoothed), index=s.index,
        fastai_valley=_finite_float(getattr(suggestions, "valley", None)),
        fastai_steep=_finite_float(getattr(suggestions, "steep", None)),
        loss_kind=loss, n_steps=int(raw.size),
        diverged=bool(s.diverged or raw.size < num_it or not np.all(np.isfinite(raw))))


def _finite_float(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fastai_suggest_funcs() -> tuple:
    """fastai's ``valley`` and ``steep``, made to return NaN instead of raising on a curve too
    short for them (fastai trims 10% + 5 points and everything after a NaN first)."""
    from fastai.callback.schedule import steep, valley

    def safe(func):
        def wrapped(lrs, losses, num_it):
            try:
                return func(lrs, losses, num_it)
            except (IndexError, RuntimeError, ValueError):
                return math.nan, (math.nan, math.nan)
        wrapped.__name__ = func.__name__  # lr_find names its result fields after the functions
        return wrapped
    return safe(valley), safe(steep)


def _warm_up_batchnorm(learn: "Learner", n_batches: int) -> None:
    """Run ``n_batches`` training batches forward in train mode under ``no_grad``: only the
    BatchNorm running statistics change (see ``find_lr``'s ``bn_warmup``)."""
    import itertools

    import torch

    if n_batches <= 0:
        return
    model, was_training = learn.model, learn.model.training
    model.train()
    try:
        with torch.no_grad():
            batches = itertools.chain.from_iterable(itertools.repeat(learn.dls.train))  # epochs, as needed
            for batch in itertools.islice(batches, n_batches):
                model(*batch[:learn.dls.n_inp])
    finally:
        model.train(was_training)


def _fixed_valid_batches(learn: "Learner", k: int) -> list:
    """The first ``k`` validation batches, kept for evaluating after every step."""
    if k < 1:
        raise LRFinderError(f"valid_batches must be >= 1 (got {k})")
    dl = learn.dls.valid if len(learn.dls.loaders) > 1 else None
    batches = []
    if dl is not None and len(dl) > 0:
        for b in dl:
            batches.append(b)
            if len(batches) == k:
                break
    if not batches:
        raise LRFinderError("loss='valid' needs validation batches, but the learner has none",
                            hint="give the DataLoaders a validation split, or use loss='train'")
    return batches


def _restore_if_changed(model: Any, snapshot: Mapping[str, Any], *, expected: bool = False) -> None:
    """Put ``snapshot`` back when the model's state differs from it (fastai restores the weights
    in ``after_fit``, which an exception during the sweep skips). ``expected``: the BatchNorm
    warm-up ran before fastai's own save, so a difference is normal (logged at debug level)."""
    import torch

    state = model.state_dict()
    same = state.keys() == snapshot.keys() and all(
        torch.equal(state[k], snapshot[k]) or (state[k].is_floating_point()
                                               and torch.equal(state[k].isnan(), snapshot[k].isnan())
                                               and torch.equal(state[k].nan_to_num(), snapshot[k].nan_to_num()))
        for k in snapshot)
    if not same:
        (log.debug if expected else log.warning)(
            "the LR range test left the weights changed; restoring them from a snapshot")
        model.load_state_dict(snapshot)


@functools.lru_cache(maxsize=None)
def _recorder_class() -> type:
    """The recording callback class (it subclasses fastai's ``Callback``, so it is built on
    first use: importing this module must not import fastai)."""
    from fastai.callback.core import Callback, CancelFitException

    class _RawLossRecorder(Callback):
        """Record each training batch's learning rate and raw loss (or a fixed validation
        loss); stop the sweep at the first non-finite loss. Runs after fastai's ``Recorder``
        (order 50) and before ``LRFinder`` (order 60), so the batch on which LRFinder stops
        is recorded too."""

        order = 55
        run_valid = False

        def __init__(self, valid_batches: list | None = None):
            self.rec_valid = valid_batches
            self.rec_lrs: list[float] = []
            self.rec_losses: list[float] = []
            self.rec_train_losses: list[float] = []   # always kept: the fallback curve

        def before_fit(self):
            self.rec_lrs, self.rec_losses, self.rec_train_losses = [], [], []

        def after_batch(self):
            train_loss = float(self.learn.loss.detach().float().mean())
            value = train_loss if self.rec_valid is None else self._valid_loss()
            self.rec_lrs.append(float(self.learn.opt.hypers[-1]["lr"]))
            self.rec_losses.append(value)
            self.rec_train_losses.append(train_loss)
            if not (math.isfinite(train_loss) and math.isfinite(value)):
                raise CancelFitException()  # diverged: nothing later is meaningful

        def _valid_loss(self) -> float:
            import torch

            model, n_inp = self.learn.model, self.learn.dls.n_inp
            was_training = model.training
            model.eval()
            total, count = 0.0, 0
            try:
                with torch.no_grad():
                    for b in self.rec_valid:
                        xb, yb = b[:n_inp], b[n_inp:]
                        n = len(yb[0]) if len(yb) else 1
                        total += float(self.learn.loss_func(model(*xb), *yb).float().mean()) * n
                        count += n
            finally:
                model.train(was_training)
            return total / max(count, 1)

    return _RawLossRecorder


# --------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------
def plot_lr_finder(result: LRFinderResult, ax: Any = None, divided_lr: float | None = None) -> Any:
    """Plot raw and smoothed loss against the learning rate (log scale) with the picks marked.

    Parameters
    ----------
    result : LRFinderResult
    ax : matplotlib.axes.Axes, optional
        Drawn into; a new figure is made when None.
    divided_lr : float, optional
        The learning rate actually recommended when it differs from the pick (e.g. the
        study's ``lr / 10`` for datasets far from ImageNet); drawn as a dashed line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    lrs = np.asarray(result.lrs, dtype=float)
    raw = np.asarray(result.losses_raw, dtype=float)
    smooth = np.asarray(result.losses_smooth, dtype=float)
    ax.plot(lrs, raw, color="0.7", lw=1, label=f"raw {result.loss_kind} loss")
    ax.plot(lrs[:smooth.size], smooth, color="C0", lw=2, label="smoothed")
    ax.plot([result.lr], [smooth[result.index]], "o", color="C3", label=f"steepest {result.lr:.1e}")
    for value, name, color in ((result.fastai_valley, "fastai valley", "C2"),
                               (result.fastai_steep, "fastai steep", "C1")):
        if value is not None:
            ax.axvline(value, color=color, ls=":", label=f"{name} {value:.1e}")
    if divided_lr is not None:
        ax.axvline(divided_lr, color="C3", ls="--", label=f"recommended {divided_lr:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    finite = np.concatenate([raw[np.isfinite(raw)], smooth])
    if finite.size:  # keep the divergent tail from squashing the interesting part
        lo, hi = float(finite.min()), float(np.percentile(finite, 95))
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.legend(fontsize="small")
    return ax
