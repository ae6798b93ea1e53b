"""The predictors a calibration sweep did not measure, measured once per dataset and kept in the study.

A calibration sweep runs ``--no-lr-finder`` so that its grid of absolute rates does not depend
on any finder; its baselines therefore hold the similarity and the dataset's size, but not the
LR range test's pick, fastai's valley, LogME or the linear probe. :func:`measure_predictors`
runs :func:`~finetune_advisor.recommend.advise` on each dataset with the sweep's backbone and
profile, exactly as a user's ``recommend`` would (cached range test, transferability on the
same features), and stores the measurements in the study's user attrs
(``measured:<dataset>``); :func:`read_measured` reads them back for the fit. The similarity is
not measured again: the baseline's is kept.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

from ..config import Config
from ..measurements import Measurements

__all__ = ["MEASURED_PREFIX", "measure_predictors", "read_measured", "with_measured"]

log = logging.getLogger(__name__)

MEASURED_PREFIX = "measured:"
# What a stored measurement keeps: the stages the sweep skipped (the rest is in the baseline).
_KEPT = ("lr_finder", "lr_finder_failed", "transferability", "timings_s", "backbone_source")


def read_measured(study) -> dict[str, Measurements]:
    """The measurements :func:`measure_predictors` stored in ``study`` (an Optuna study), per dataset."""
    return {key[len(MEASURED_PREFIX):]: Measurements.from_dict(value)
            for key, value in study.user_attrs.items() if key.startswith(MEASURED_PREFIX)}


def with_measured(baseline: Measurements, measured: Measurements | None) -> Measurements:
    """``baseline`` with the stages ``measured`` adds (its LR range test and transferability).

    >>> from finetune_advisor.measurements import LRFinderResult
    >>> base = Measurements(similarity_score=0.6)
    >>> m = with_measured(base, Measurements(transferability={"logme": 1.5}))
    >>> m.score, m.transferability["logme"]
    (0.6, 1.5)
    """
    if measured is None:
        return baseline
    return baseline.replace(**{name: getattr(measured, name) for name in _KEPT
                               if getattr(measured, name) is not None})


def measure_predictors(study, baselines: Mapping[str, Config], paths: Mapping[str, str], *,
                       profile: str, datasets: Sequence[str] | None = None, overwrite: bool = False,
                       advise_fn: Callable[..., Any] | None = None, progress: bool = True) -> dict[str, Measurements]:
    """Measure the finder's pick, fastai's valley, LogME and the probe on each dataset once.

    Parameters
    ----------
    study : optuna.Study
        The calibration sweep; results go to its user attrs ``measured:<dataset>``.
    baselines : mapping
        Dataset name → the sweep's baseline Config (its ``backbone`` is what is measured with).
    paths : mapping
        Dataset name → its folder, or its :class:`~finetune_advisor.bench.BenchDataset` (a sized
        name, ``pets@10``, is measured on its subsample).
    profile : str
        The Config profile the sweep advised at (its image size is the range test's).
    datasets : sequence of str, optional
        Only these (default: every dataset of ``baselines``).
    overwrite : bool, default=False
        Measure again where a measurement is already stored.
    advise_fn : callable, optional
        ``advise_fn(path, **options) -> Recommendation``; default
        :func:`finetune_advisor.recommend.advise` (tests pass a stub).

    Returns
    -------
    dict
        Dataset name → the stored measurements (old and new).

    Examples
    --------
    >>> measure_predictors(study, baselines, paths, profile="cpu")   # doctest: +SKIP
    """
    from .._progress import progress as progress_iter

    if advise_fn is None:
        from ..recommend import advise as advise_fn
    stored = read_measured(study)
    todo = [d for d in (datasets or sorted(baselines)) if d in baselines and (overwrite or d not in stored)]
    for name in progress_iter(todo, total=len(todo), desc="measuring predictors", enabled=progress and bool(todo)):
        cfg = baselines[name]
        source = paths[name]
        source = source.advise_source() if hasattr(source, "advise_source") else source   # a BenchDataset
        rec = advise_fn(source, backbone=cfg.backbone, profile=profile, similarity=False,
                        lr_finder=True, lr_finder_fallback=True, progress=False)
        kept = with_measured(Measurements(), rec.config.measurements)
        study.set_user_attr(MEASURED_PREFIX + name, kept.to_dict())
        stored[name] = kept
        lr = kept.lr_finder
        log.info("calibrate: measured %s: finder %s, valley %s, transferability %s", name,
                 None if lr is None else f"{lr.lr:.2e}", None if lr is None else lr.fastai_valley,
                 kept.transferability)
    return stored
