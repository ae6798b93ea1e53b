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

def warnings_for(profile: "DatasetProfile", similarity: float | None = None, far: bool | None = None, *,
                 threshold: float = SIMILARITY_THRESHOLD) -> tuple[str, ...]:
    """Advice about the data itself: imbalance, too few images, single-image classes,
    unreadable files, and distance from ImageNet.

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
        out += _small_class_warnings(profile, counts)
    out += _corrupt_warning(profile)
    out += _far_warning(profile, similarity, far, threshold)
    return tuple(out)


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


def _far_warning(profile: "DatasetProfile", similarity: float | None, far: bool | None,
                 threshold: float) -> list[str]:
    far = resolve_far(similarity, far, threshold)
    if not far:
        return []
    msg = (f"{_similarity_phrase(similarity, far, threshold)}: ImageNet features transfer less well; "
           f"fine-tune deeper and use the lower learning rate (study: lr_find / 10)")
    median = _median_per_class(profile)
    if median < SMALL_MAX:
        msg += (f"; with little data (median {_fmt(median)} < {SMALL_MAX} per class) this is Overture's tricky case: "
                f"fine-tuning many layers may overfit, so try to find more data")
    return [msg]


