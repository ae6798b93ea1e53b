"""What the bench changed in an advised Config to fit its profile, recorded beside the baseline.

The bench trains every baseline under its profile's schedule (:meth:`BenchProfile.apply`): a
dataset advised 48 px, or a head-only config advised 4 head epochs, is trained at the profile's
64 px and epoch budget. Where that changes what trains, the study keeps both configs: the
trained one as the baseline (``baseline:<dataset>|<fraction>``) and the advised one under
``advised:<dataset>|<fraction>``, so the results can say which baselines are not what
``recommend`` said. This module writes that record and reads it back.
"""
from __future__ import annotations

from typing import Any

from ..config import Config
from .records import BASELINE_PREFIX, baseline_attr

ADVISED_PREFIX = "advised:"

__all__ = ["ADVISED_PREFIX", "changed_fields", "record_advised", "read_adapted"]


def changed_fields(advised: Config, trained: Config) -> dict[str, list[Any]]:
    """``{field: [advised, trained]}`` for every decision field the two differ in.

    >>> changed_fields(Config(image_size=48, head_epochs=4), Config(image_size=64, head_epochs=4))
    {'image_size': [48, 64]}
    """
    a, t = advised.decisions(), trained.decisions()
    return {f: [a[f], t[f]] for f in a if a[f] != t[f]}


def _advised_attr(dataset: str, fraction: float) -> str:
    return ADVISED_PREFIX + baseline_attr(dataset, fraction)[len(BASELINE_PREFIX):]


def record_advised(study, dataset: str, fraction: float, advised: Config, trained: Config) -> dict[str, list[Any]]:
    """Store ``advised`` beside the baseline when training it under the profile changes it;
    return the changed fields (empty: nothing stored, the baseline is the advice)."""
    changes = changed_fields(advised, trained)
    if changes:
        study.set_user_attr(_advised_attr(dataset, fraction), advised.to_json(indent=None))
    return changes


def read_adapted(study) -> dict[str, dict[str, list[Any]]]:
    """``"<dataset>|<fraction>"`` -> ``{field: [advised, trained]}`` for the baselines a study
    trained otherwise than advised (an Optuna study or a :class:`BenchStudy`)."""
    attrs = study.user_attrs
    out: dict[str, dict[str, list[Any]]] = {}
    for key, text in attrs.items():
        if not key.startswith(ADVISED_PREFIX):
            continue
        where = key[len(ADVISED_PREFIX):]
        trained = attrs.get(BASELINE_PREFIX + where)
        if trained is not None:
            out[where] = changed_fields(Config.from_json(text), Config.from_json(trained))
    return dict(sorted(out.items()))
