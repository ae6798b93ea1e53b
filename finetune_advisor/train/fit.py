"""Fine-tune as a :class:`~finetune_advisor.config.Config` says, in the study's two phases: the head
with the body frozen, then (unless ``fine_tune == "none"``) the last body stage or the whole
body with discriminative learning rates; measured against the majority baseline."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence


from .._progress import fastai_ticker, is_terminal, progress_to_stderr
from ..backbones import Backbone, create_backbone
from ..config import Config
from ..data import UNDECODABLE_IMAGE, Dataset, format_skips, read_dataset
from ..learner import LearnerSpec, build_dataloaders, build_learner
from .baseline import macro_roc_auc, majority_baseline
from .result import FROZEN, UNFROZEN, TrainResult
from .run_folder import write_result, write_run

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd   # loaded where used: 0.5 s that `import finetune_advisor` need not pay
    from fastai.data.core import DataLoaders

__all__ = ["train"]

N_GROUPS = 3     # parameter groups: early body, last body stage, head (see split_body_head)


def _group_lrs(lr: float | slice, n_groups: int) -> list[float]:
    """Per-group LRs as fastai's ``Optimizer.set_hyper`` spreads them (``even_mults``)."""
    if not isinstance(lr, slice):
        return [float(lr)] * n_groups
    if not lr.start:
        return [lr.stop / 10] * (n_groups - 1) + [lr.stop]
    step = (lr.stop / lr.start) ** (1 / (n_groups - 1))
    return [lr.start * step ** i for i in range(n_groups)]


def train(config: Config, dataset_or_path: Dataset | str | os.PathLike, *,
          out_dir: str | os.PathLike | None = None, seed: int = 0, backbone: Backbone | None = None,
          weights=None, num_workers: int = 0, progress: bool = True,
          max_images_per_class: int | None = None, callbacks: Sequence = (),
          dls: "DataLoaders | None" = None) -> TrainResult:
    """Fine-tune as ``config`` says and measure it.

    Phase 1 (``"frozen"``): ``fit_one_cycle(head_epochs, config.lr)`` with the body frozen.
    Phase 2 (``"unfrozen"``, unless ``fine_tune == "none"``): ``freeze_to(-2)`` for
    ``"last"`` or ``unfreeze()`` for ``"all"``, then ``fit_one_cycle(unfrozen_epochs,
    slice(lr_finetune / lr_divisor, lr_finetune))``: fastai spreads the slice geometrically
    over the three groups, so the early body gets ``lr_finetune / lr_divisor``, the last
    stage ``lr_finetune / sqrt(lr_divisor)`` and the head ``lr_finetune``.

    Parameters
    ----------
    config : Config
    dataset_or_path : Dataset or path
        A path is read with :func:`finetune_advisor.data.read_dataset`.
    out_dir : path, optional
        Write ``config.json``, ``history.csv``, ``curves.png``, ``model.pkl`` (``learn.export``;
        reload with ``fastai.learner.load_learner``) and ``result.json`` there; read them
        back with :func:`~finetune_advisor.train.read_run`.
    seed : int, default=0
        ``set_seed(seed, reproducible=True)``: split, subset, head init, shuffling and
        augmentation are repeatable (same machine, same thread count).
    backbone : Backbone, optional
        Default ``create_backbone(config.backbone, weights=weights, fallback=True)``.
    weights : path, optional
        Local state_dict for the backbone.
    num_workers : int, default=0
    progress : bool, default=True
        Show fastai's progress bars and epoch table (on stderr, so stdout stays clean);
        ``False`` hides both.
    max_images_per_class : int, optional
        See :func:`~finetune_advisor.learner.build_dataloaders` (``None``: the config
        profile's cap).
    callbacks : sequence of fastai Callbacks, default=()
        Added to both phases' ``fit_one_cycle`` (the same instances, so one can count epochs
        across phases; e.g. :class:`finetune_advisor.tune.pruning.PruningCallback`). An exception
        one raises ends the run and propagates.
    dls : fastai DataLoaders, optional
        Loaders built elsewhere over ``dataset``'s items (``benchmarks/gpu_fidelity.py`` keeps
        decoded tensors on the GPU); default :func:`~finetune_advisor.learner.build_dataloaders`.
        Their datasets' ``items`` are the training and validation :class:`Item` s.

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError, ConfigError, BackboneNotFoundError

    Examples
    --------
    >>> res = train(Config(profile="cpu"), "pets/", out_dir="run1")   # doctest: +SKIP
    >>> res.final_metrics["accuracy"] > res.baseline["value"]         # doctest: +SKIP
    True
    """
    from fastai.torch_core import set_seed

    from .callbacks import HistoryCallback   # imports fastai

    t_start = time.perf_counter()
    dataset = dataset_or_path if isinstance(dataset_or_path, Dataset) else read_dataset(dataset_or_path)
    multi = bool(dataset.multi_label or config.multi_label)
    spec = LearnerSpec.from_config(config)
    notes: list[str] = []

    set_seed(seed, reproducible=True)
    if backbone is None:
        backbone = create_backbone(config.backbone, weights=weights, fallback=True)
    notes.extend(backbone.notes)
    set_seed(seed, reproducible=True)
    if dls is None:
        dls = build_dataloaders(dataset, spec, seed=seed, num_workers=num_workers,
                                max_images_per_class=max_images_per_class, backbone=backbone)
    if getattr(dls, "unreadable", None):
        notes.append(f"{format_skips({UNDECODABLE_IMAGE: len(dls.unreadable)})}, e.g. {dls.unreadable[0]}")
    learn = build_learner(spec, dataset, backbone=backbone, dls=dls, seed=seed, path=out_dir)

    train_items, valid_items = list(dls.train_ds.items), list(dls.valid_ds.items)
    baseline = majority_baseline(train_items, valid_items, multi_label=multi, classes=list(dls.vocab))

    rows: list[dict[str, Any]] = []
    # Off a terminal (a log file, CI) fastai's bars would redraw into the file once per batch:
    # a line every few seconds and one per epoch instead.
    lines = progress and not is_terminal()
    ticker = (lambda phase: [fastai_ticker(f"training ({phase})")]) if lines else (lambda phase: [])
    with contextlib.ExitStack() as quiet:
        if progress and not lines:
            quiet.enter_context(progress_to_stderr())
        else:
            quiet.enter_context(learn.no_bar())
            quiet.enter_context(learn.no_logging())
        if config.head_epochs > 0:
            learn.fit_one_cycle(config.head_epochs, config.lr,
                                cbs=[HistoryCallback(rows, FROZEN, 0, _group_lrs(config.lr, N_GROUPS)),
                                     *ticker("head"), *callbacks])
        if config.fine_tune != "none" and config.unfrozen_epochs > 0:
            if config.fine_tune == "last":
                learn.freeze_to(-2)
            else:
                learn.unfreeze()
            lrs = slice(config.lr_finetune / config.lr_divisor, config.lr_finetune)
            learn.fit_one_cycle(config.unfrozen_epochs, lrs,
                                cbs=[HistoryCallback(rows, UNFROZEN, len(rows), _group_lrs(lrs, N_GROUPS)),
                                     *ticker("unfrozen"), *callbacks])

    history, final = _history_and_final(rows, learn)
    diverged = diverged_note(history, config)
    if diverged:
        notes.append(diverged)
        log.warning("%s", diverged)
    if multi:
        with learn.no_bar(), learn.no_logging():
            probs, targets = learn.get_preds()
        final["roc_auc_macro"] = macro_roc_auc(probs.numpy(), targets.numpy())

    result = TrainResult(config=config, history=history, final_metrics=final, baseline=baseline,
                         wall_time_s=0.0, backbone=backbone.name, n_train=len(train_items),
                         n_valid=len(valid_items), n_unreadable=len(getattr(dls, "unreadable", ())),
                         unreadable=tuple(getattr(dls, "unreadable", ())), seed=seed, notes=notes, learner=learn)
    if out_dir is not None:
        write_run(result, learn, Path(out_dir))
    result.wall_time_s = time.perf_counter() - t_start
    if out_dir is not None:
        write_result(result)
    return result


DIVERGED_PREFIX = "training diverged"


def diverged_note(history, config: Config) -> str | None:
    """What to say when a loss became NaN or infinite (the model is then useless), else None.

    >>> import pandas as pd
    >>> h = pd.DataFrame({"epoch": [1, 2], "phase": ["frozen", "frozen"], "train_loss": [0.7, float("nan")],
    ...                   "valid_loss": [0.6, float("nan")]})
    >>> diverged_note(h, Config(lr=1e6))
    'training diverged: the train loss is nan from epoch 2 (frozen phase); lower the learning rate (lr 1e+06; try 1e+05 or less, or the recommendation)'
    """
    import numpy as np

    for column in ("train_loss", "valid_loss"):
        if column not in history:
            continue
        values = history[column].astype(float).to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            row = history.iloc[int(bad.argmax())]
            return (f"{DIVERGED_PREFIX}: the {column.replace('_', ' ')} is {values[bad.argmax()]:g} from epoch "
                    f"{int(row['epoch'])} ({row['phase']} phase); lower the learning rate (lr {config.lr:.0e}; "
                    f"try {config.lr / 10:.0e} or less, or the recommendation)")
    return None


def _history_and_final(rows: list[dict[str, Any]], learn) -> tuple[pd.DataFrame, dict[str, float]]:
    """The per-epoch history and the last epoch's ``valid_loss`` and metrics (the untrained
    model's, measured now, when no epoch ran)."""
    columns = ["epoch", "phase", "phase_epoch", "train_loss", "valid_loss"]
    import pandas as pd

    history = pd.DataFrame(rows)
    if history.empty:
        history = pd.DataFrame(columns=columns)
    metric_cols = [c for c in history.columns if c not in (*columns, "lr_body", "lr_head", "seconds")]
    final = {} if history.empty else \
        {k: float(history.iloc[-1][k]) for k in ("valid_loss", *metric_cols)}
    if not final:
        values = learn.validate()
        final = dict(zip(["valid_loss", *[m.name for m in learn.metrics]], map(float, values)))
    return history, final
