"""The LR range test on cached features: the head alone, trained over the frozen body's
pooled features (:class:`~finetune_advisor.learner.features.FeatureCache`).

The study ran its finder on the frozen network with only the head trained; with the body
frozen its output does not depend on the learning rate, so this is the same experiment
without recomputing the body at every step. What differs, and why the pick can differ from
the full-network test (``method="full"``): no augmentation, and the body's BatchNorm layers
use their ImageNet statistics (fastai trains them in the frozen phase, ``train_bn=True``).

The head is the one the learner trains (fastai's ``create_head`` with the spec's head size and
dropout, the output layer at the label priors); the optimiser is fastai's (Adam with decoupled
weight decay, ``beta2`` and ``weight_decay`` from the spec, no decay on BatchNorm and biases).
The rate rises exponentially over ``num_it`` steps; after each step the loss is recorded
(validation loss on the held-out cached features by default, as the study did). Steps cost
microseconds, so ``n_sweeps`` seeded sweeps are averaged for a smooth, stable curve; the pick
is :func:`~finetune_advisor.lr_finder.suggest.suggest_lr` (zero-phase filter, steepest slope),
with fastai's ``valley`` / ``steep`` and Lightning's steepest-gradient pick computed on the
same curve for comparison.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import numpy as np

from .. import _progress
from ..exceptions import LRFinderError
from ..learner.features import FeatureCache
from ..learner.model import build_head
from ..learner.spec import LearnerSpec
from ..measurements import LRFinderResult
from .suggest import NoDescentError, suggest_lr

__all__ = ["find_lr_cached", "ema_smooth", "lightning_pick"]

log = logging.getLogger(__name__)

LOSS_KINDS = ("valid", "train")
MAX_VALID = 256           # validation rows whose loss is recorded after each step


def ema_smooth(losses: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """fastai's / Lightning's debiased exponential moving average of a loss curve."""
    out, avg = np.empty(len(losses)), 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def lightning_pick(lrs: np.ndarray, losses: np.ndarray, skip_begin: int = 10, skip_end: int = 1) -> float | None:
    """PyTorch Lightning's ``_LRFinder.suggestion``: the steepest ``np.gradient`` of the
    EMA-smoothed loss (index spacing), ignoring the first and last few points."""
    smooth = ema_smooth(np.asarray(losses, float))
    cut = smooth[skip_begin:len(smooth) - skip_end]
    finite = np.isfinite(cut)
    if finite.sum() < 3:
        return None
    n = int(np.argmax(~finite)) if not finite.all() else len(cut)
    if n < 3:
        return None
    return float(lrs[skip_begin + int(np.gradient(cut[:n]).argmin())])


def _fastai_picks(lrs: np.ndarray, losses: np.ndarray, num_it: int) -> tuple[float | None, float | None]:
    """fastai's ``valley`` and ``steep`` as ``lr_find`` computes them (on its EMA-smoothed loss,
    the first 10% and last 5 points cut)."""
    import torch

    from .recorder import fastai_suggest_funcs      # imports fastai

    smooth = ema_smooth(losses)
    finite = np.isfinite(smooth)
    n = int(np.argmax(~finite)) if not finite.all() else len(smooth)
    lo, hi = num_it // 10, n - 5
    if hi - lo < 3:
        return None, None
    lr_t, loss_t = torch.tensor(lrs[lo:hi]), torch.tensor(smooth[lo:hi])
    picks = []
    for func in fastai_suggest_funcs():
        lr, _ = func(lr_t, loss_t, num_it)
        picks.append(float(lr) if lr is not None and math.isfinite(float(lr)) else None)
    return picks[0], picks[1]


def _sweep(cache: FeatureCache, spec: LearnerSpec, lrs: np.ndarray, loss: str, seed: int) -> np.ndarray:
    """One sweep: the head trained at each rate in turn; the losses after each step, shape
    (2, steps): the recorded one (``loss``) and the training batch's (the fallback curve)."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = build_head(cache.width // 2, cache.priors, spec, multi_label=cache.multi_label, pool=False)
    decay = [p for m in head.modules() if isinstance(m, nn.Linear) for p in [m.weight]]
    rest = [p for p in head.parameters() if all(p is not q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=float(lrs[0]), betas=(0.9, spec.beta2), eps=1e-5,
                            foreach=True)   # one kernel per step, not one per tensor (most of a step's time)
    loss_fn = nn.BCEWithLogitsLoss() if cache.multi_label else nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(cache.train_x), torch.from_numpy(cache.train_y)
    # The validation loss after every step is most of a step's cost (the head's first layer is
    # 2 x n_features wide): a fixed sample of at most MAX_VALID rows records it.
    keep = np.sort(np.random.default_rng(0).permutation(len(cache.valid_x))[:MAX_VALID])
    vx, vy = torch.from_numpy(cache.valid_x[keep]), torch.from_numpy(cache.valid_y[keep])
    bs = max(2, min(int(spec.batch_size), len(tx)))      # BatchNorm1d needs 2 rows
    order, pos = rng.permutation(len(tx)), 0
    out = np.full((2, len(lrs)), np.nan)
    for i, lr in enumerate(lrs):
        if pos + bs > len(order):
            order, pos = rng.permutation(len(tx)), 0
        idx = torch.from_numpy(order[pos:pos + bs])
        pos += bs
        for g in opt.param_groups:
            g["lr"] = float(lr)
        head.train()
        batch_loss = loss_fn(head(tx[idx]), ty[idx])
        opt.zero_grad()
        batch_loss.backward()
        opt.step()
        if loss == "valid":
            head.eval()
            with torch.no_grad():
                value = float(loss_fn(head(vx), vy))
        else:
            value = float(batch_loss.detach())
        out[:, i] = value, float(batch_loss.detach())
        if not math.isfinite(value):
            break
    return out


def find_lr_cached(cache: FeatureCache, spec: LearnerSpec, *, start_lr: float = 1e-7, end_lr: float = 10.0,
                   num_it: int = 100, n_sweeps: int = 3, loss: str = "valid", seed: int = 0,
                   suggest_kwargs: Mapping[str, Any] | None = None, progress: bool = False) -> LRFinderResult:
    """The range test on ``cache`` (see the module docstring); ``n_sweeps`` seeded sweeps of
    ``num_it`` steps from ``start_lr`` to ``end_lr`` averaged into one curve. ``progress``:
    the sweeps done, on stderr.

    Raises
    ------
    LRFinderError
        The averaged loss never descends (or is not finite from the start).
    """
    import torch

    if loss not in LOSS_KINDS:
        raise LRFinderError(f"loss must be one of {LOSS_KINDS}, got {loss!r}")
    if not (0 < start_lr < end_lr) or num_it < 8 or n_sweeps < 1:
        raise LRFinderError(f"need 0 < start_lr < end_lr, num_it >= 8 and n_sweeps >= 1; got {start_lr}, "
                            f"{end_lr}, {num_it}, {n_sweeps}")
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(num_it) / (num_it - 1))
    # One thread: the head's tensors are tiny, so more threads only wait on each other (measured
    # on a busy 2-core machine: 116 s with 2 threads, 5.5 s with 1), and the curve, summed in one
    # order, is the same whatever the machine's thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            curves = np.stack([_sweep(cache, spec, lrs, loss, seed + k)
                               for k in _progress.progress(range(n_sweeps), total=n_sweeps,
                                                           desc="LR range test (cached features)",
                                                           enabled=progress)])
    finally:
        torch.set_num_threads(threads)
    # a sweep that diverged ends in NaN: the mean is cut at the first point any sweep lost
    losses, train_losses = curves.mean(axis=0)
    if not math.isfinite(losses[0]):
        raise LRFinderError("the loss is not finite from the first step of the cached LR range test",
                            hint="check the inputs (NaN features) and the labels")
    try:
        s = suggest_lr(lrs, losses, **dict(suggest_kwargs or {}))
    except NoDescentError as exc:
        # As in the full test: a head that starts at the label priors can leave the validation
        # loss flat (protein-hpa: 200 images, 28 labels); the training loss still shows the descent.
        if loss != "valid":
            raise LRFinderError(f"cached LR range test: {exc.message}", hint=exc.hint) from None
        try:
            s = suggest_lr(lrs, train_losses, **dict(suggest_kwargs or {}))
        except NoDescentError:
            raise LRFinderError(f"cached LR range test: {exc.message}", hint=exc.hint) from None
        log.warning("cached LR range test: the validation loss is flat (%s); suggesting from the training loss "
                    "of the same sweeps", exc.message)
        losses, loss = train_losses, "train"
    valley, steep = _fastai_picks(lrs, losses, num_it)
    finite = np.isfinite(losses)
    return LRFinderResult(
        lr=s.lr, lrs=tuple(lrs.tolist()), losses_raw=tuple(losses.tolist()),
        losses_smooth=tuple(float(v) for v in s.smoothed), index=s.index, fastai_valley=valley,
        fastai_steep=steep, loss_kind=loss, n_steps=int(finite.sum()),
        diverged=bool(s.diverged or not finite.all()), method="cached", n_sweeps=n_sweeps,
        lightning_steepest=lightning_pick(lrs, losses))
