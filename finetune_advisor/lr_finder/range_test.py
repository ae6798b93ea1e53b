"""The LR range test on a fastai Learner: fastai's own ``Learner.lr_find`` sweep (exponential
schedule, stop on divergence, weights restored) plus a callback of ours that records the raw
per-batch loss, or the loss on a few fixed validation batches; BatchNorm warmed up first."""
from __future__ import annotations

import itertools
import logging
import math
import random
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .._progress import fastai_ticker
from ..exceptions import LRFinderError
from ..measurements import LRFinderResult
from .suggest import NoDescentError, suggest_lr

if TYPE_CHECKING:  # pragma: no cover
    from fastai.learner import Learner

log = logging.getLogger(__name__)

__all__ = ["find_lr", "LOSS_KINDS"]

LOSS_KINDS = ("train", "valid")
HINT_NO_VALID = "give the DataLoaders a validation split, or use loss='train'"


def find_lr(learn: "Learner", *,
            start_lr: float = 1e-7,
            end_lr: float = 10.0,
            num_it: int = 100,
            loss: str = "valid",
            valid_batches: int = 2,
            bn_warmup: int = 30,
            seed: int | None = None,
            stop_div: bool = True,
            suggest_kwargs: Mapping[str, Any] | None = None,
            progress: bool = False) -> LRFinderResult:
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
    progress : bool, default=False
        Show the steps done on stderr (a line redrawn on a terminal, else a line every few
        seconds), also under ``learn.no_bar()``.

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
    """
    from . import recorder   # imports fastai (whose schedule module patches Learner.lr_find)

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
    rec = recorder.RawLossRecorder(valid)
    snapshot = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    cbs = [rec] + ([fastai_ticker("LR range test", epochs=False, total=num_it)] if progress else [])
    learn.add_cbs(cbs)
    try:
        if loss == "valid":
            _warm_up_batchnorm(learn, bn_warmup)
        suggestions = learn.lr_find(start_lr=start_lr, end_lr=end_lr, num_it=num_it, stop_div=stop_div,
                                    show_plot=False, suggest_funcs=recorder.fastai_suggest_funcs())
    finally:
        learn.remove_cbs(cbs)
        _restore_if_changed(learn.model, snapshot, expected=loss == "valid" and bn_warmup > 0)
        for rng, state in rngs:
            rng.setstate(state)
    return _result(rec, suggestions, loss, num_it, suggest_kwargs or {})


def _result(rec: Any, suggestions: Any, loss: str, num_it: int,
            suggest_kwargs: Mapping[str, Any]) -> LRFinderResult:
    lrs = np.asarray(rec.rec_lrs, dtype=float)
    raw = np.asarray(rec.rec_losses, dtype=float)
    if raw.size and not np.isfinite(raw[0]):
        raise LRFinderError(
            f"the {loss} loss is not finite from the first step of the LR range test (lr={lrs[0]:.2e}): "
            "the model or the data produce NaN/inf before any learning rate can matter",
            hint="check the inputs (normalisation, NaN pixels), the labels and the loss function")
    try:
        s = suggest_lr(lrs, raw, **suggest_kwargs)
    except NoDescentError as exc:
        # A head that starts at the label priors can leave the validation loss flat through
        # the sweep (protein-hpa, 200 images, 28 labels: a 0.4% drop); the training loss of
        # the same sweep, recorded alongside for free, still shows the descent.
        if loss != "valid":
            raise
        train = np.asarray(rec.rec_train_losses, dtype=float)
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


def _warm_up_batchnorm(learn: "Learner", n_batches: int) -> None:
    """Run ``n_batches`` training batches forward in train mode under ``no_grad``: only the
    BatchNorm running statistics change (see ``find_lr``'s ``bn_warmup``)."""
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
                            hint=HINT_NO_VALID)
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
