"""What one bench cell does with data: the fraction of a dataset it uses, the recommended
baseline for that fraction (through the same rules as ``advise``), and the default trainer."""
from __future__ import annotations

import dataclasses
import json
from typing import Any, MutableMapping

from ..config import Config
from ..data import Dataset, profile_dataset
from ..exceptions import ConfigError
from ..recommend import Recommendation, advise, configure
from ..train import train
from .datasets import BenchDataset, default_reference
from .grid import MEASURED_ANCHORS, BenchProfile, is_tune_anchor

__all__ = ["fraction_subset", "advise_baseline", "train_trial"]


def fraction_subset(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A class-stratified ``fraction`` of ``dataset`` (at least 1 image per class), the same for
    every trial: the seed is the run's data seed, not the trial's. The draw is the package's one
    sampler, :func:`finetune_advisor.data.stratified_indices` (through :meth:`Dataset.subset`).

    >>> from pathlib import Path
    >>> from finetune_advisor.data import Item
    >>> ds = Dataset(Path("d"), "folders", tuple(Item(Path(f"d/{c}/{i}.jpg"), (c,)) for c in "ab" for i in range(10)),
    ...              ("a", "b"), multi_label=False)
    >>> fraction_subset(ds, 0.25).class_counts(), fraction_subset(ds, 1.0) is ds
    ({'a': 3, 'b': 3}, True)
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    if fraction >= 1:
        return dataset
    return dataset.subset(fraction=fraction, seed=seed)


def advise_baseline(dataset: BenchDataset, fraction: float, profile: BenchProfile,
                    options: dict[str, Any] | None = None, *,
                    cache: MutableMapping[tuple, Recommendation] | None = None) -> Config:
    """The recommended Config for ``fraction`` of ``dataset`` at ``profile``'s config profile
    (what ``recommend`` says; :func:`~finetune_advisor.bench.prepare_study` then trains it under
    the bench's schedule and records what that changed).

    Similarity and the LR range test are measured once on the whole dataset (kept in ``cache``,
    e.g. :attr:`BenchStudy.advice`), or on its subsample for a sized name (``pets@10``); for a
    fraction, :func:`finetune_advisor.recommend.configure`
    (the last step of ``advise``) re-runs the rules on the subset's profile with those
    measurements. ``options`` go to :func:`finetune_advisor.recommend.advise` (None values keep
    its defaults); without a ``reference`` there, the shared Tiny-ImageNet sample is used when
    present (:func:`default_reference`). A range test that cannot suggest a rate does not stop
    the bench: the study's default rate is used, and ``measurements.lr_finder_failed`` says why.
    """
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    opts.setdefault("progress", False)
    if opts.get("similarity", True) and "reference" not in opts:
        ref = default_reference()
        if ref is not None:
            opts["reference"] = str(ref)
    key = (dataset.name, str(dataset.path), profile.config_profile, json.dumps(opts, sort_keys=True, default=str))
    rec = None if cache is None else cache.get(key)
    if rec is None:
        rec = advise(dataset.advise_source(), profile=profile.config_profile, lr_finder_fallback=True, **opts)
        if cache is not None:
            cache[key] = rec
    cfg = rec.config
    if fraction < 1:
        measured = cfg.measurements.stages().replace(fraction=float(fraction))
        cfg = configure(profile_dataset(fraction_subset(rec.dataset, fraction)), measured, rec.options,
                        backbone=cfg.backbone, backbone_reason=cfg.reasons["backbone"])
    return cfg


def train_trial(config: Config, dataset: BenchDataset, *, fraction: float, seed: int, profile: BenchProfile,
                cache: MutableMapping[str, Dataset] | None = None, anchor: str | None = None) -> dict[str, Any]:
    """Default ``run_trial_fn``: :func:`finetune_advisor.train.train` on the fraction; returns
    the trial's user attrs (``metric`` is the value the study records).

    ``cache`` (e.g. :attr:`BenchStudy.datasets`) keeps each dataset read once per process.
    ``anchor="tune@<N>x"``: ``finetune-advisor tune`` from ``config`` with a budget of N runs
    instead, its best trial's metric recorded
    (:func:`finetune_advisor.tune.anchor.tune_anchor_trial`)."""
    key = f"{dataset.name}|{dataset.path}"
    full = None if cache is None else cache.get(key)
    if full is None:
        full = dataset.read()          # "pets@10": its subsample
        if cache is not None:
            cache[key] = full
    if anchor is not None and is_tune_anchor(anchor):
        from ..tune.anchor import tune_anchor_trial    # tune imports bench: loaded when used
        return tune_anchor_trial(config, fraction_subset(full, fraction), anchor, seed=seed,
                                 max_images_per_class=profile.max_images_per_class,
                                 leave_out=dataset.name)   # never a portfolio chosen on this dataset
    subset = fraction_subset(full, fraction)
    found = {}
    if anchor in MEASURED_ANCHORS:     # fastai_lr_find: the rate a fastai user's learn.lr_find() gives here
        valley = fastai_lr_find_valley(config, subset, seed=seed, max_images_per_class=profile.max_images_per_class)
        changes = dict(lr=valley, lr_finetune=valley / 2)     # fine_tune halves base_lr when it unfreezes
        config = config.replace(reason=f"fastai's learn.lr_find() valley {valley:.2e} on the frozen learner",
                                **changes) if config.reasons else dataclasses.replace(config, **changes)
        found = {"lr_find_valley": valley}
    res = train(config, subset, seed=seed, progress=False, max_images_per_class=profile.max_images_per_class)
    metric = res.main_metric
    hist = res.history
    best = int(hist[metric].astype(float).values.argmax()) + 1 if len(hist) and metric in hist else 0
    return {"metric": float(res.final_metrics[metric]), "metric_name": metric,
            "valid_loss": float(res.final_metrics.get("valid_loss", float("nan"))),
            "best_metric": float(hist[metric].max()) if best else float("nan"),
            "epochs_to_best": best, "wall_time_s": float(res.wall_time_s),
            # multi-label: a ranking metric beside accuracy_multi, which the all-negative answer wins
            "roc_auc_macro": float(res.final_metrics.get("roc_auc_macro", float("nan"))),
            "n_train": res.n_train, "n_valid": res.n_valid, "backbone_used": res.backbone, **found}


def fastai_lr_find_valley(config: Config, dataset: Dataset, *, seed: int = 0,
                          max_images_per_class: int | None = None) -> float:
    """fastai's own ``learn.lr_find()`` (its defaults: 1e-7 to 10, 100 steps, the valley) on the
    frozen learner of ``config``, on the images training will use: what a fastai user does before
    ``fine_tune(epochs, base_lr=valley)``. The learner's weights are restored by lr_find."""
    from fastai.callback.schedule import valley as fastai_valley
    from fastai.torch_core import set_seed

    from ..learner import build_learner

    set_seed(seed, reproducible=True)
    learn = build_learner(config, dataset, seed=seed, max_images_per_class=max_images_per_class)
    with learn.no_bar(), learn.no_logging():
        suggestion = learn.lr_find(suggest_funcs=(fastai_valley,), show_plot=False)
    return float(suggestion.valley)
