"""The typed contract between the stages: what ``recommend`` measured, as the rules, ``train``,
``bench``, ``report`` and the CLI read it.

A :class:`Config` keeps a :class:`Measurements`; its JSON form (``Measurements.to_dict``) has the
same keys Configs have always had, so a Config written by an older version still loads
(:meth:`Measurements.from_dict` keeps keys it does not know in ``extra``, and round-trips them).

>>> m = Measurements.from_dict({"n_images": 120, "n_classes": 3, "far": True, "lr_find": 1e-3,
...                             "similarity": {"similarity": 0.61, "emd": 0.39}})
>>> m.far, m.score, m.lr_finder is None
(True, 0.61, True)
>>> Measurements.from_dict(m.to_dict()) == m
True
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["SimilarityResult", "LRFinderResult", "RateBand", "Measurements"]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (this module imports no numpy)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


@dataclass(frozen=True)
class SimilarityResult:
    """How near a dataset is to ImageNet, with its uncertainty and an explanation.

    ``matches`` maps each dataset class to up to three reference classes it sends transport
    mass to, as ``(ref_id, ref_name, cosine)`` sorted by cosine (highest first).
    ``short_classes`` maps classes that had fewer than ``images_per_class`` embedded images
    to the number used. ``ci_low``/``ci_high`` is the 95% bootstrap interval (see
    :mod:`finetune_advisor.similarity`); ``bootstrap_bias`` is the median resampled score minus
    ``similarity``. ``failed_paths`` are the ``n_failed`` images left out (undecodable, or
    non-finite features); a Config does not keep them.
    """

    similarity: float
    emd: float
    # None: not recorded (a hand-made or older record); a measurement fills every field.
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None
    far: bool | None = None
    backbone_key: str | None = None
    image_size: int | None = None
    images_per_class: int | None = None
    n_images_embedded: int | None = None
    n_failed: int | None = None
    n_classes_used: int | None = None
    short_classes: Mapping[str, int] | None = None
    matches: Mapping[str, tuple[tuple[str, str | None, float], ...]] | None = None
    class_subsampled: bool | None = None
    bootstrap_rounds: int | None = None
    bootstrap_bias: float | None = None
    reference_source: str | None = None
    reference: str | None = None     # which reference file was used, in words (similarity.describe_reference)
    failed_paths: tuple[str, ...] = ()
    emd_floor: float | None = None   # class-count floor subtracted from the EMD (see similarity.emd_floor)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists for tuples); fields not recorded (None) are left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "failed_paths" and not value):
                continue
            if f.name == "matches":
                value = {c: [[rid, rname, float(cos)] for rid, rname, cos in ms] for c, ms in value.items()}
            elif f.name == "short_classes":
                value = {c: int(n) for c, n in value.items()}
            elif f.name == "failed_paths":
                value = list(value)
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SimilarityResult":
        """Inverse of :meth:`to_dict`; unknown keys (a newer writer's) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in data.items() if k in known}
        if d.get("matches") is not None:
            d["matches"] = {c: tuple((m[0], m[1], float(m[2])) for m in ms) for c, ms in d["matches"].items()}
        if d.get("short_classes") is not None:
            d["short_classes"] = dict(d["short_classes"])
        d["failed_paths"] = tuple(d.get("failed_paths", ()))
        return cls(**d)

    def without_paths(self) -> "SimilarityResult":
        return dataclasses.replace(self, failed_paths=())


@dataclass(frozen=True)
class LRFinderResult:
    """An LR range test and what was suggested from it.

    ``lrs`` and ``losses_raw`` hold one entry per step (NaN where the loss was not finite);
    ``losses_smooth`` covers the first ``len(losses_smooth)`` steps (before divergence). A
    Config keeps the numbers without the curves (:meth:`summary`). ``fastai_valley`` /
    ``fastai_steep`` are fastai's own suggestions from the same run, or None when fastai could
    not make one.
    """

    lr: float | None = None          # None only in a hand-made record without the pick
    lrs: tuple[float, ...] = ()
    losses_raw: tuple[float, ...] = ()
    losses_smooth: tuple[float, ...] = ()
    index: int = -1
    fastai_valley: float | None = None
    fastai_steep: float | None = None
    loss_kind: str = ""
    n_steps: int = 0
    diverged: bool = False
    method: str = "full"                    # "full": the network's range test; "cached": the head's on cached features
    n_sweeps: int = 1                       # seeded sweeps averaged into the curve
    lightning_steepest: float | None = None  # PyTorch Lightning's pick on the same curve

    CURVES = ("lrs", "losses_raw", "losses_smooth")

    @property
    def has_curve(self) -> bool:
        return len(self.lrs) > 0

    def summary(self) -> "LRFinderResult":
        """The numbers without the curves (what a Config keeps)."""
        return dataclasses.replace(self, lrs=(), losses_raw=(), losses_smooth=())

    def to_dict(self, curves: bool = True) -> dict[str, Any]:
        """JSON-friendly: lists of floats, with None for NaN/inf; ``curves=False`` leaves them out."""
        d = {"lr": self.lr, "lrs": list(self.lrs), "losses_raw": [_finite_or_none(v) for v in self.losses_raw],
             "losses_smooth": list(self.losses_smooth), "index": self.index,
             "fastai_valley": self.fastai_valley, "fastai_steep": self.fastai_steep,
             "loss_kind": self.loss_kind, "n_steps": self.n_steps, "diverged": self.diverged,
             "method": self.method, "n_sweeps": self.n_sweeps, "lightning_steepest": self.lightning_steepest}
        if not curves or not self.has_curve:
            for k in self.CURVES:
                d.pop(k)
        return {k: _plain(v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LRFinderResult":
        """Inverse of :meth:`to_dict` (None losses become NaN); unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in data.items() if k in known}
        d["lrs"] = tuple(float(v) for v in d.get("lrs", ()))
        d["losses_raw"] = tuple(math.nan if v is None else float(v) for v in d.get("losses_raw", ()))
        d["losses_smooth"] = tuple(float(v) for v in d.get("losses_smooth", ()))
        return cls(**d)


@dataclass(frozen=True)
class RateBand:
    """How sure the calibrated rate is: read off the calibration's sweep, leave-one-dataset-out
    (:mod:`finetune_advisor.calibration.sensitivity`). Rates are absolute head learning rates;
    costs are mean (and worst-dataset) losses of accuracy (macro ROC AUC for multi-label) when the
    rate is off by that factor either way; ``runner_up_*``: the calibration's best complement to
    the rule, with the leave-one-out regret of the rule alone and of trying both."""

    lr_low: float
    lr_high: float
    n_within: int                   # calibration datasets whose loss stays within a point across the band
    n_datasets: int
    cost_x3_mean: float
    cost_x3_worst: float
    cost_x10_mean: float
    cost_x10_worst: float
    fastai_loss_mean: float | None = None      # what fastai's default fine_tune loses against the rule
    runner_up_arm: str | None = None
    runner_up_lr: float | None = None
    regret_rule_alone: float | None = None
    regret_try_both: float | None = None
    finder_lr: float | None = None              # the LR finder's pick on this dataset, when measured
    finder_outside: bool | None = None          # that pick lies outside the band

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RateBand":
        return cls(**dict(data))


# Keys of the JSON form, in the order they are written.
# scalar fields written only when set (numbers, and the notes saying why one is missing)
_OPTIONAL_SCALARS = ("forward_images_per_s", "forward_image_size", "train_time_s", "expected_accuracy",
                     "expected_accuracy_low", "expected_accuracy_high", "expected_accuracy_note", "rate_band_note")
_DATASET_KEYS = ("n_images", "n_classes", "images_per_class", "imbalance_sd", "n_corrupt", "mean_resolution")


@dataclass(frozen=True)
class Measurements:
    """The numbers a Config's decisions rest on.

    Dataset counts come from the profile; ``similarity`` is the full similarity measurement
    (None when not measured), ``similarity_score`` the score the rules used when only a number
    was given; ``far`` is the near/far verdict at ``similarity_threshold``; ``lr_find`` is the
    rate the learning-rate rule started from and ``lr_finder`` the range test behind it (or
    ``lr_finder_failed``, why it could not suggest one). ``policy`` names the policy that chose
    the rates and depth (``calibration``: which calibration), ``alternatives`` what the other
    policies would have chosen. ``extra`` keeps any other key.
    """

    n_images: int | None = None
    n_classes: int | None = None
    images_per_class: Mapping[str, float] | None = None      # median, min, max
    imbalance_sd: float | None = None
    n_corrupt: int | None = None
    mean_resolution: tuple[float, float] | None = None
    similarity: SimilarityResult | None = None
    similarity_score: float | None = None
    similarity_threshold: float | None = None
    far: bool | None = None
    lr_find: float | None = None
    lr_finder: LRFinderResult | None = None
    lr_finder_failed: str | None = None
    backbone_source: str | None = None
    timings_s: Mapping[str, float] = field(default_factory=dict)
    fraction: float | None = None
    transferability: Mapping[str, float] | None = None   # logme, probe_accuracy on the cached features
    policy: str | None = None                 # the policy that decided the rates and depth
    calibration: Mapping[str, Any] | None = None   # which calibration it used (id, backbone, profile)
    alternatives: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # other policies' choices
    # images a second through the frozen body at forward_image_size, decoding and resizing included
    # (the cached range test's feature pass, on the images training uses): what the time estimate scales
    forward_images_per_s: float | None = None
    forward_image_size: int | None = None
    train_time_s: float | None = None         # the estimated wall time of training this Config here
    rate_band: RateBand | None = None         # how sure the calibrated rate is (None: see rate_band_note)
    rate_band_note: str | None = None         # why there is no band (no calibration, or one without a table)
    # the advice's accuracy to expect, from the linear probe (calibration.expectation), with the 10-90% range of
    # the calibration's left-out errors; None with expected_accuracy_note saying why
    expected_accuracy: float | None = None
    expected_accuracy_low: float | None = None
    expected_accuracy_high: float | None = None
    expected_accuracy_note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.mean_resolution is not None:
            object.__setattr__(self, "mean_resolution", tuple(float(v) for v in self.mean_resolution))
        if isinstance(self.similarity, Mapping):
            object.__setattr__(self, "similarity", SimilarityResult.from_dict(self.similarity))
        if isinstance(self.lr_finder, Mapping):
            object.__setattr__(self, "lr_finder", LRFinderResult.from_dict(self.lr_finder))
        if isinstance(self.rate_band, Mapping):
            object.__setattr__(self, "rate_band", RateBand.from_dict(self.rate_band))
        if self.similarity is not None and self.similarity_score is None:   # one score, however given
            object.__setattr__(self, "similarity_score", float(self.similarity.similarity))

    @property
    def score(self) -> float | None:
        """The similarity score, from the measurement or the bare number; None: not measured."""
        if self.similarity is not None:
            return float(self.similarity.similarity)
        return self.similarity_score

    def replace(self, **changes: Any) -> "Measurements":
        return dataclasses.replace(self, **changes)

    STAGE_FIELDS = ("similarity", "lr_finder", "lr_finder_failed", "backbone_source", "timings_s", "fraction",
                    "transferability", "forward_images_per_s", "forward_image_size", "extra")

    def stages(self) -> "Measurements":
        """Only what the measuring stages recorded (similarity, range test, timings); the
        dataset counts and the rules' inputs are left out, for the rules to fill in again."""
        return Measurements(**{k: getattr(self, k) for k in self.STAGE_FIELDS})

    def merged(self, other: "Measurements | Mapping[str, Any] | None") -> "Measurements":
        """``self`` with every field that ``other`` records (not None, not empty) taken from ``other``.

        >>> Measurements(n_images=5, far=False).merged({"far": True, "note": 1}).far
        True
        """
        if other is None:
            return self
        other = Measurements.from_dict(other)
        changes = {f.name: getattr(other, f.name) for f in dataclasses.fields(other)
                   if getattr(other, f.name) is not None and getattr(other, f.name) != {} and f.name != "extra"}
        return dataclasses.replace(self, **changes, extra={**self.extra, **other.extra})

    # --- JSON (the keys Configs have always had) ----------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in _DATASET_KEYS:
            v = getattr(self, k)
            if v is not None:
                out[k] = list(v) if isinstance(v, tuple) else (dict(v) if isinstance(v, Mapping) else v)
        if self.similarity_threshold is not None:
            out["similarity_threshold"] = float(self.similarity_threshold)
        if self.n_images is not None or self.far is not None or self.similarity_threshold is not None:
            out["far"] = self.far
        if self.similarity is not None:
            out["similarity"] = self.similarity.without_paths().to_dict()
        elif self.similarity_score is not None:
            out["similarity"] = float(self.similarity_score)
        if self.lr_find is not None:
            out["lr_find"] = float(self.lr_find)
        if self.lr_finder is not None:
            out["lr_finder"] = self.lr_finder.to_dict()
        if self.lr_finder_failed is not None:
            out["lr_finder_failed"] = self.lr_finder_failed
        if self.backbone_source is not None:
            out["backbone_source"] = self.backbone_source
        if self.timings_s:
            out["timings_s"] = dict(self.timings_s)
        if self.fraction is not None:
            out["fraction"] = float(self.fraction)
        if self.transferability is not None:
            out["transferability"] = dict(self.transferability)
        if self.policy is not None:
            out["policy"] = self.policy
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        if self.alternatives:
            out["alternatives"] = {k: dict(v) for k, v in self.alternatives.items()}
        for name in _OPTIONAL_SCALARS:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.rate_band is not None:
            out["rate_band"] = self.rate_band.to_dict()
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Measurements":
        if isinstance(data, Measurements):
            return data
        d = dict(data or {})
        kw: dict[str, Any] = {k: d.pop(k) for k in (*_DATASET_KEYS, "similarity_threshold", "far", "lr_find",
                                                      "lr_finder_failed", "backbone_source", "fraction",
                                                      "policy", "calibration", "alternatives", "transferability",
                                                      *_OPTIONAL_SCALARS)
                              if k in d}
        if isinstance(d.get("rate_band"), Mapping):
            kw["rate_band"] = RateBand.from_dict(d.pop("rate_band"))
        sim = d.pop("similarity", None)
        if isinstance(sim, Mapping):
            kw["similarity"] = SimilarityResult.from_dict(sim)
        elif sim is not None:
            kw["similarity_score"] = float(sim)
        lr = d.pop("lr_finder", None)
        if isinstance(lr, Mapping):
            kw["lr_finder"] = LRFinderResult.from_dict(lr)
        if "timings_s" in d:
            kw["timings_s"] = dict(d.pop("timings_s"))
        return cls(**kw, extra=d)
