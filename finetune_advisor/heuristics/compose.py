"""Composition: every rule into one :class:`Config` with a reason per field, and the typed
:class:`~finetune_advisor.measurements.Measurements` the decisions rest on. Pure."""
from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any, Mapping

from ..config import Config
from ..exceptions import ConfigError
from ..measurements import Measurements
from ._common import Decision, _counts, _unwrap, make_profile, resolve_far  # noqa: F401  (make_profile: doctests)
from ..study import SIMILARITY_THRESHOLD
from .rules import (_profile, augmentation, batch_size, beta2, choose_architecture, dropout, fine_tune_plan,
                    head_epochs, head_size, image_size, learning_rates, multi_label, validation_split, weight_decay)
from .policies import POLICIES, CalibratedRule, calibrated_plan
from .schedule import n_train_images
from .warnings import lr_finder_warnings, warnings_for

if TYPE_CHECKING:
    from ..data import DatasetProfile

def recommend_config(profile: "DatasetProfile", *,
                     similarity: float | None = None,
                     far: bool | None = None,
                     lr_find: float | None = None,
                     backbone: str | None = None,
                     backbone_reason: str | None = None,
                     profile_name: str = "cpu",
                     invariances: Mapping[str, Any] | None = None,
                     measurements: Measurements | Mapping[str, Any] | None = None,
                     threshold: float = SIMILARITY_THRESHOLD,
                     policy: str = "study",
                     rule: CalibratedRule | None = None,
                     evidence: str = "", depth_evidence: str | None = None) -> Config:
    """Compose every rule into a :class:`Config` with one reason per decision field.

    Parameters
    ----------
    profile : DatasetProfile
    similarity : float, optional
        Cosine similarity to ImageNet (or an object with ``.similarity``); None: not measured.
    far : bool, optional
        Overrides ``similarity < threshold`` when given.
    lr_find : float, optional
        The LR finder's rate (or an object with ``.lr``); None: Overture's default 3e-3.
    backbone, backbone_reason : str, optional
        Force the architecture; by default :func:`choose_architecture` picks it.
    profile_name : {"cpu", "paper"}, default="cpu"
        Epochs and image size from ``config.PROFILES``.
    invariances : mapping, optional
        See :func:`augmentation`.
    measurements : mapping, optional
        Merged over the dataset numbers recorded in ``Config.measurements``.
    threshold : float, default=0.72
        The study's near/far similarity threshold.
    policy : {"study", "calibrated"}, default="study"
        Which rules decide the learning rates and the fine-tune depth (:mod:`.policies`).
    rule, evidence : CalibratedRule, str
        The calibrated policy's fitted rule and what it was fitted on (required with
        ``policy="calibrated"``). The study policy's choice is kept in
        ``measurements.alternatives["study"]``.
    depth_evidence : str, optional
        The calibration's measured numbers for its depth near this dataset's size
        (:meth:`Calibration.depth_note`), cited when small data would argue against it.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Unknown profile name or invariance, or a non-positive ``lr_find``.

    Examples
    --------
    >>> cfg = recommend_config(make_profile({"a": 60, "b": 45}), similarity=0.6, profile_name="paper")
    >>> cfg.fine_tune, cfg.unfrozen_epochs, cfg.lr, cfg.valid_pct
    ('all', 5, 0.0003, 0.3)
    >>> Config.from_json(cfg.to_json()) == cfg
    True
    """
    similarity = _unwrap(similarity, "similarity")
    lr_find = _unwrap(lr_find, "lr")
    _profile(profile_name)
    far = resolve_far(similarity, far, threshold)
    d: dict[str, Decision] = {}
    d["profile"] = _profile_decision(profile_name)
    d["backbone"] = (Decision(backbone, backbone_reason or "set by user") if backbone is not None
                     else choose_architecture(profile))
    d["image_size"] = image_size(profile, profile_name)
    d["valid_pct"] = validation_split(profile)
    d["batch_size"] = batch_size(profile, d["valid_pct"].value)
    study = _study_plan(profile, similarity, far, lr_find, profile_name=profile_name, threshold=threshold)
    meas = _measurements(profile, similarity, far, lr_find, threshold).merged(measurements)
    if policy == "calibrated":
        if rule is None:
            raise ConfigError("policy 'calibrated' needs a calibrated rule",
                              hint="load a calibration (finetune_advisor.calibration) or use policy='study'")
        d.update(calibrated_plan(meas, rule, profile_name=profile_name, evidence=evidence,
                                 n_train=training_images(profile, profile_name, d["valid_pct"].value),
                                 batch_size=d["batch_size"].value))
        meas = meas.replace(policy=policy, alternatives={"study": {k: v.value for k, v in study.items()}})
    elif policy == "study":
        d.update(study)
        meas = meas.replace(policy=policy)
    else:
        raise ConfigError(f"unknown policy {policy!r}; choose from {POLICIES}")
    d["weight_decay"], d["beta2"], d["dropout"] = weight_decay(), beta2(), dropout()
    d["head_size"] = head_size(profile)
    d["augmentation"] = augmentation(invariances)
    d["multi_label"] = multi_label(profile)
    if meas.lr_finder_failed and lr_find is None:   # the fallback: say what it did
        lr_why, failed = d["lr"].reason, f"the LR range test failed ({meas.lr_finder_failed})"
        lr_why = (lr_why.replace("(no LR finder run)", f"({failed}, so it is used instead)")
                  if "(no LR finder run)" in lr_why else f"{lr_why}; {failed}, so no finder rate was used")
        d["lr"] = Decision(d["lr"].value, lr_why)
    lr_warnings = lr_finder_warnings(meas.lr_finder if lr_find is not None else None,
                                     meas.lr_finder_failed if lr_find is None else None)
    return Config(**{k: v.value for k, v in d.items()}, reasons={k: v.reason for k, v in d.items()},
                  measurements=meas,
                  warnings=warnings_for(profile, similarity, far, threshold=threshold,
                                        policy=meas.policy or "study", fine_tune=d["fine_tune"].value,
                                        depth_evidence=depth_evidence) + lr_warnings)


def training_images(profile: "DatasetProfile", profile_name: str, valid_pct: float) -> int:
    """Images a training run steps through an epoch: each class capped at the profile's
    ``max_images_per_class``, less the validation split (the layout's own, or ``valid_pct``).

    >>> training_images(make_profile({"a": 300, "b": 50}), "cpu", 0.2)     # 200 + 50 capped, 20% held out
    200
    """
    cap = _profile(profile_name).get("max_images_per_class")
    counts = [min(int(c), cap) if cap else int(c) for c in profile.images_per_class.values()]
    if profile.n_valid:           # the layout names its validation images; the rest trains
        return max(1, sum(counts) - min(int(profile.n_valid), sum(counts) - 1))
    return n_train_images(sum(counts), valid_pct)


def _profile_decision(name: str) -> Decision:
    p = _profile(name)
    what = "the study's schedule for a GPU" if name == "paper" else "a short schedule for a few CPU cores"
    return Decision(name, f"profile {name!r}: {what} ({p['image_size']} px, {p['head_epochs']} head + "
                          f"{p['unfrozen_epochs']} unfrozen epochs at most)")


def _study_plan(profile: "DatasetProfile", similarity: float | None, far: bool | None, lr_find: float | None, *,
                profile_name: str, threshold: float) -> dict[str, Decision]:
    """The study policy's rates and depth: each published rule applied on its own."""
    plan = fine_tune_plan(profile, similarity, far, profile_name=profile_name, threshold=threshold)
    plan.update(learning_rates(lr_find, far, similarity=similarity, threshold=threshold,
                               fine_tune=plan["fine_tune"].value))
    plan["head_epochs"] = head_epochs(profile_name, plan["fine_tune"].value)
    return plan


def _measurements(profile: "DatasetProfile", similarity: float | None, far: bool | None,
                  lr_find: float | None, threshold: float) -> Measurements:
    """The numbers the decisions rest on."""
    counts = _counts(profile)
    res = profile.resolution or {}
    return Measurements(
        n_images=int(profile.n_images), n_classes=int(profile.n_classes),
        images_per_class={"median": float(statistics.median(counts)) if counts else 0.0,
                          "min": counts[0] if counts else 0, "max": counts[-1] if counts else 0},
        imbalance_sd=float(profile.imbalance_sd), n_corrupt=int(profile.n_corrupt),
        mean_resolution=(float(res["mean_w"]), float(res["mean_h"])) if res.get("mean_w") and res.get("mean_h") else None,
        similarity_threshold=float(threshold), far=far,
        similarity_score=None if similarity is None else float(similarity),
        lr_find=None if lr_find is None else float(lr_find))
