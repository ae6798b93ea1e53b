"""Reuse the finished trials of an earlier study instead of training them again.

A trial is reused only when it is the same experiment: the earlier study ran with the same
settings (profile, fractions, grid and anchors; its datasets and seeds may differ), and the
trial has the same key (dataset, fraction, label, seed) and the same Config decisions, field
for field (:data:`~finetune_advisor.config.DECISION_FIELDS`: everything training reads; the
reasons and measurements only explain them, and a refit rewords the reasons of a rate it left
alone). A reused trial is copied as COMPLETE with every user attr it had (its metric, history,
wall time), this study's Config and key attrs, and ``reused_from`` (``"<study>#<number>"``), so
tables can say how much of a study was trained afresh. The study policy's baselines (the advice
each dataset's configs are made from) are copied the same way, once per (dataset, fraction), so
the configs built on them match.

This is what lets a validation be redone on a refitted calibration at the cost of the configs
that changed: the anchors (fastai's ``fine_tune``, the ``lr_find`` valley, the study policy)
do not depend on the fit.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from ..config import Config
from ..exceptions import ConfigError
from .grid import TrialSpec
from .records import BASELINE_PREFIX
from .storage import BenchStudy

__all__ = ["REUSED_ATTR", "check_reusable", "reuse_baselines", "reuse_trials"]

log = logging.getLogger(__name__)

REUSED_ATTR = "reused_from"
_MAY_DIFFER = ("datasets", "seeds")     # the settings a reusing study may choose differently (and more anchors)


def check_reusable(settings: Mapping[str, Any], source: BenchStudy) -> None:
    """Refuse ``source`` unless it ran with ``settings`` (all but its datasets and seeds; its
    anchors may be fewer: a study that adds an anchor copies the others' trials).

    >>> check_reusable({"profile": {"image_size": 64}}, type("S", (), {"user_attrs": {}, "study_name": "old"})())
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.ConfigError: cannot reuse trials of study 'old': it has no settings (not a bench study, or never prepared)
    >>> old = type("S", (), {"user_attrs": {"settings": {"anchors": ["a"], "seeds": [0]}}, "study_name": "old"})()
    >>> check_reusable({"anchors": ["a", "b"], "seeds": [1]}, old)            # more anchors, other seeds: fine
    >>> check_reusable({"anchors": ["b"]}, old)
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.ConfigError: cannot reuse trials of study 'old': it ran with other anchors (anchors: ['a']) (reuse only a study run with the same profile, fractions, grid and anchors)
    """
    theirs = source.user_attrs.get("settings")
    if theirs is None:
        raise ConfigError(f"cannot reuse trials of study {source.study_name!r}: it has no settings "
                          f"(not a bench study, or never prepared)")
    differ = sorted(k for k in {*settings, *theirs} if k not in _MAY_DIFFER and settings.get(k) != theirs.get(k)
                    and not (k == "anchors" and set(theirs.get(k) or ()) <= set(settings.get(k) or ())))
    if differ:
        raise ConfigError(f"cannot reuse trials of study {source.study_name!r}: it ran with other "
                          f"{', '.join(differ)} ({'; '.join(f'{k}: {theirs.get(k)!r}' for k in differ)})",
                          hint="reuse only a study run with the same profile, fractions, grid and anchors")


def reuse_baselines(study: BenchStudy, source: BenchStudy, attr_keys: Sequence[str]) -> int:
    """Copy the baselines ``attr_keys`` (``baseline:<dataset>|<fraction>``) that ``study`` lacks
    and ``source`` has; returns how many were copied."""
    mine, theirs = study.user_attrs, source.user_attrs
    copied = 0
    for key in attr_keys:
        if not key.startswith(BASELINE_PREFIX):
            raise ValueError(f"not a baseline attr: {key!r}")
        if key not in mine and key in theirs:
            study.set_user_attr(key, theirs[key])
            copied += 1
    return copied


def reuse_trials(study: BenchStudy, source: BenchStudy, specs: Sequence[TrialSpec]) -> list[TrialSpec]:
    """Add to ``study``, as COMPLETE, every trial of ``source`` that is one of ``specs`` (same key,
    same decisions); returns the specs reused. The caller passes only the specs it would enqueue."""
    import optuna
    from optuna.trial import TrialState

    done = {}
    for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = t.user_attrs.get("key")
        if key is not None:
            done.setdefault(key, t)      # bench keeps one COMPLETE trial per key; the first if not
    reused = []
    for spec in specs:
        old = done.get(spec.key)
        if old is None or _decisions(old.user_attrs.get("config")) != _decisions(spec.config.to_json(indent=None)):
            continue
        attrs = {**old.user_attrs, **spec.user_attrs(), REUSED_ATTR: f"{source.study_name}#{old.number}"}
        study.study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=old.values, params=old.params, distributions=old.distributions,
            user_attrs=attrs))
        reused.append(spec)
    if reused:
        log.info("bench: reused %d finished trial(s) of study %s (same key, same training config)", len(reused),
                 source.study_name)
    return reused


def _decisions(config_json: str | None) -> dict | None:
    """What training reads of a stored Config (:meth:`Config.decisions`)."""
    return None if config_json is None else Config.from_json(config_json).decisions()
