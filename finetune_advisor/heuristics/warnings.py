"""Advice that is not a Config field: warnings about imbalance, tiny classes, corrupt images and
distance from ImageNet. Pure."""
from __future__ import annotations

from typing import TYPE_CHECKING


import math
import statistics

from ..study import MIN_TRAIN, MIN_VALID, SIMILARITY_THRESHOLD, SMALL_MAX, TINY
from ._common import make_profile  # noqa: F401  (the doctests' profiles)
from ._common import (CORRUPT_FRACTION, IMBALANCE_CV, IMBALANCE_RATIO, _counts, _fmt, _median_per_class,
                      _similarity_phrase, resolve_far)

if TYPE_CHECKING:
    from ..data import DatasetProfile
    from ..measurements import LRFinderResult

def warnings_for(profile: "DatasetProfile", similarity: float | None = None, far: bool | None = None, *,
                 threshold: float = SIMILARITY_THRESHOLD, policy: str = "study", fine_tune: str | None = None,
                 depth_evidence: str | None = None) -> tuple[str, ...]:
    """Advice about the data itself: imbalance, too few images, single-image classes,
    unreadable files, and distance from ImageNet (whose advice depends on the ``policy``).
    A warning agrees with the advice (``fine_tune``, the depth decided): with little data the
    calibrated policy's warning about deep fine-tuning says why the advice stands, with
    ``depth_evidence``'s numbers, on near and far datasets alike.

    >>> warnings_for(make_profile({"a": 400, "b": 350}), similarity=0.8)
    ()
    >>> print(warnings_for(make_profile({"a": 400, "b": 1}))[0])
    class imbalance: largest class 400 images vs smallest 1 (ratio 400; limit 10), ...
    """
    counts = _counts(profile)
    out: list[str] = []
    if profile.n_classes < 2:
        out.append(f"only {profile.n_classes} class: a classifier needs at least 2")
    if counts:
        out += _imbalance_warning(profile, counts)
        out += _many_tiny_classes_warning(profile, counts)
        out += _small_class_warnings(profile, counts)
    out += _corrupt_warning(profile)
    out += _tiny_image_warning(profile)
    out += _far_warning(profile, similarity, far, threshold, policy)
    out += _small_depth_warning(profile, policy, fine_tune, depth_evidence)
    return tuple(out)


def _small_depth_warning(profile: "DatasetProfile", policy: str, fine_tune: str | None,
                         evidence: str | None) -> list[str]:
    """Overture's "fine-tuning many layers may overfit" on small data, where the calibrated advice
    unfreezes layers anyway: why it stands, with the measured numbers.

    >>> small = make_profile({"a": 20, "b": 20})
    >>> print(_small_depth_warning(small, "calibrated", "all", "whole 0.63 against head 0.58")[0])
    little data (median 20 < 300 images per class): Overture warns that fine-tuning many layers may overfit; the advice unfreezes the whole network anyway: whole 0.63 against head 0.58
    >>> _small_depth_warning(small, "calibrated", "none", None), _small_depth_warning(small, "study", "all", None)
    ([], [])
    """
    median = _median_per_class(profile)
    if policy != "calibrated" or fine_tune in (None, "none") or not median < SMALL_MAX:
        return []
    what = "the whole network" if fine_tune == "all" else "the last layers"
    why = evidence or "the calibration's fit chose it over the head alone, leave-one-dataset-out"
    return [f"little data (median {_fmt(median)} < {SMALL_MAX} images per class): Overture warns that fine-tuning "
            f"many layers may overfit; the advice unfreezes {what} anyway: {why}"]


def _imbalance_warning(profile: "DatasetProfile", counts: list[int]) -> list[str]:
    lo, hi = counts[0], counts[-1]
    mean = sum(counts) / len(counts)
    ratio = hi / lo if lo else math.inf
    cv = profile.imbalance_sd / mean if mean else 0.0
    if ratio > IMBALANCE_RATIO or cv > IMBALANCE_CV:
        return [f"class imbalance: largest class {hi} images vs smallest {lo} (ratio {ratio:.3g}; limit "
                f"{IMBALANCE_RATIO:g}), SD {profile.imbalance_sd:.1f} images per class vs mean {mean:.1f} (limit "
                f"{IMBALANCE_CV:g}x the mean); Overture: balance the dataset by adding images to the small classes"]
    return []


def _small_class_warnings(profile: "DatasetProfile", counts: list[int]) -> list[str]:
    out = []
    median = statistics.median(counts)
    if median < TINY:
        out.append(f"median {_fmt(median)} images per class is below Overture's small-data bound ({TINY} per "
                   f"label): expect weak accuracy; collect more images")
    need = MIN_TRAIN + MIN_VALID
    few = sorted((n, c) for c, n in profile.images_per_class.items() if 1 < n < need)
    if few:
        names = ", ".join(f"{c} ({n})" for n, c in few[:5]) + (" ..." if len(few) > 5 else "")
        out.append(f"{len(few)} class(es) have fewer than {need} images ({MIN_TRAIN} train + {MIN_VALID} valid, "
                   f"Overture), so their validation accuracy is unreliable: {names}")
    single = sorted(c for c, n in profile.images_per_class.items() if n <= 1)
    if single:
        names = ", ".join(single[:5]) + (" ..." if len(single) > 5 else "")
        out.append(f"{len(single)} class(es) have at most one image and cannot be in both the training and the "
                   f"validation set: {names}")
    return out


def _corrupt_warning(profile: "DatasetProfile") -> list[str]:
    bad, total = profile.n_corrupt, profile.n_images  # n_images includes the unreadable files
    if bad and bad / total >= CORRUPT_FRACTION:
        return [f"{bad} of {total} image files ({100 * bad / total:.1f}% >= {100 * CORRUPT_FRACTION:g}%) could not "
                f"be read and were skipped; fix or remove them"]
    return []


# Degenerate data: images this small (mean side, px) carry next to nothing to classify; this many
# classes with this few images each are few-shot data, where the advice (and the accuracy) is weak.
TINY_IMAGE_SIDE = 8
FEW_SHOT_MEDIAN = 3          # images per class, at most
FEW_SHOT_CLASSES = 20        # classes, at least


def _tiny_image_warning(profile: "DatasetProfile") -> list[str]:
    """
    >>> print(_tiny_image_warning(make_profile({"a": 5, "b": 5}, mean_size=(1, 1)))[0])
    images are tiny: mean 1x1 px (smallest 1x1), below 8 px a side: ...
    >>> _tiny_image_warning(make_profile({"a": 5, "b": 5}, mean_size=(32, 32)))
    []
    """
    res = profile.resolution or {}
    mean_w, mean_h = res.get("mean_w", math.nan), res.get("mean_h", math.nan)
    if not (min(mean_w, mean_h) < TINY_IMAGE_SIDE):       # NaN (no header read) compares False
        return []
    return [f"images are tiny: mean {mean_w:.0f}x{mean_h:.0f} px (smallest {res.get('min_w', math.nan):.0f}x"
            f"{res.get('min_h', math.nan):.0f}), below {TINY_IMAGE_SIDE} px a side: upscaling them to the network's "
            f"input invents no detail, so expect little to learn; check that these are the intended images (not "
            f"icons, thumbnails or placeholders)"]


def _many_tiny_classes_warning(profile: "DatasetProfile", counts: list[int]) -> list[str]:
    """
    >>> print(_many_tiny_classes_warning(make_profile(dict.fromkeys(map(str, range(300)), 2)), [2] * 300)[0])
    300 classes with a median of 2 images each: few-shot data, about one image per class to train on ...
    """
    median = statistics.median(counts)
    if profile.n_classes < FEW_SHOT_CLASSES or median > FEW_SHOT_MEDIAN:
        return []
    return [f"{profile.n_classes} classes with a median of {_fmt(median)} images each: few-shot data, about one image "
            f"per class to train on and one to validate, so accuracy stays near chance (1/{profile.n_classes}) and "
            f"the measurements behind this advice are noisy; merge classes or collect more images per class"]


def _far_warning(profile: "DatasetProfile", similarity: float | None, far: bool | None,
                 threshold: float, policy: str = "study") -> list[str]:
    """
    >>> print(_far_warning(make_profile({"a": 400, "b": 400}), 0.6, None, 0.72, "calibrated")[0])
    similarity 0.60 < 0.72 (far from ImageNet): ImageNet features transfer less well, so expect lower accuracy ...
    """
    far = resolve_far(similarity, far, threshold)
    if not far:
        return []
    msg = f"{_similarity_phrase(similarity, far, threshold)}: ImageNet features transfer less well"
    if policy == "calibrated":     # the study's "/ 10 when far" lost on every far dataset we measured
        msg += (", so expect lower accuracy than on photos; the study's advice for this case (lr_find / 10) is "
                "not applied: the calibrated rates come from measured fine-tuning runs (--policy study applies it)")
    else:
        msg += "; fine-tune deeper and use the lower learning rate (study: lr_find / 10)"
    median = _median_per_class(profile)
    if median < SMALL_MAX and policy != "calibrated":     # the calibrated policy's word on depth: _small_depth_warning
        msg += (f"; with little data (median {_fmt(median)} < {SMALL_MAX} per class) this is Overture's tricky case: "
                f"fine-tuning many layers may overfit, so try to find more data")
    return [msg]


# An LR finder pick this close to either end of its sweep, or this far from fastai's valley on
# the same curve, is reported: the descent was not inside the sweep, or the curve had none.
LR_EDGE_POINTS = 3            # at least this many points at each end...
LR_EDGE_FRACTION = 0.03       # ...or this fraction of the sweep, whichever is more
LR_VALLEY_DECADES = 1.5


def lr_finder_warnings(lr_finder: "LRFinderResult | None", failed: str | None = None) -> tuple[str, ...]:
    """Warnings about the LR finder's pick: at an end of the sweep, or far from fastai's valley;
    or, with ``failed``, that the range test failed and the default rate was used.

    >>> from finetune_advisor.measurements import LRFinderResult
    >>> lr_finder_warnings(LRFinderResult(lr=2e-3, index=120, n_steps=200, fastai_valley=1e-3))
    ()
    >>> print(lr_finder_warnings(LRFinderResult(lr=1.4e-7, index=0, n_steps=200, fastai_valley=7.6e-3))[0])
    LR finder pick 1.4e-07 is at the start of its sweep (point 1 of 200): ...
    """
    from ..study import DEFAULT_LR

    if lr_finder is None or lr_finder.lr is None:
        if failed:
            return (f"{failed}; the learning rate is the study's default {DEFAULT_LR:g}, not a measured one: "
                    f"check the data, or set lr yourself",)
        return ()
    lr, n, i = float(lr_finder.lr), int(lr_finder.n_steps or 0), int(lr_finder.index)
    valley = lr_finder.fastai_valley
    decades = abs(math.log10(lr / valley)) if valley and valley > 0 and lr > 0 else None
    check = "look at the LR plot (--plot, or the report) and consider setting lr by hand"
    edge = max(LR_EDGE_POINTS, math.ceil(LR_EDGE_FRACTION * n))
    if n > 0 and 0 <= i < n and (i < edge or i >= n - edge):
        where, why = (("start", "the loss was already falling where the sweep began, or never fell") if i < edge
                      else ("end", "the loss was still falling where the sweep stopped or diverged"))
        away = f"; fastai's valley on the same curve is {valley:.1e}, {decades:.1f} decades away" if decades else ""
        return (f"LR finder pick {lr:.1e} is at the {where} of its sweep (point {i + 1} of {n}): {why}, so the "
                f"pick is unreliable{away}; {check}",)
    out = []
    if decades is not None and decades > LR_VALLEY_DECADES:
        out.append(f"LR finder pick {lr:.1e} is {decades:.1f} decades from fastai's valley {valley:.1e} on the "
                   f"same curve (more than {LR_VALLEY_DECADES:g}): the curve has no clear descent; {check}")
    return tuple(out)

