"""Shared vocabulary of the rules: :class:`Decision`, size bands, similarity phrases, and the
thresholds that are ours rather than published (the published ones live in
:mod:`finetune_advisor.study`)."""
from __future__ import annotations

import statistics
from typing import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..study import LARGE_MIN, SIMILARITY_THRESHOLD, SMALL_MAX

if TYPE_CHECKING:
    from ..data import DatasetProfile


# --- our own thresholds -----------------------------------------------------------------
RESNET50_MIN_IMAGES = 10_000  # our choice: resnet50 only with many images in total, too
IMBALANCE_RATIO, IMBALANCE_CV = 10.0, 1.0
CORRUPT_FRACTION = 0.01
MAX_UPSCALE = 2.0             # image size at most 2x the mean resolution (see image_size)
DEFAULT_NOISE_STD = 0.05      # Gaussian noise std in [0, 1] pixel units when noise=True

INVARIANCES = ("orientation_matters", "color_matters", "size_matters", "shape_matters",
               "vertical_symmetry", "noise")


class Decision(NamedTuple):
    """A value and the one-sentence reason it was chosen; unpacks as ``value, reason``."""

    value: Any
    reason: str


# --- helpers --------------------------------------------------------------------------
def _counts(profile: "DatasetProfile") -> list[int]:
    return sorted(int(v) for v in profile.images_per_class.values())


def _median_per_class(profile: "DatasetProfile") -> float:
    counts = _counts(profile)
    return float(statistics.median(counts)) if counts else 0.0


def _size_band(median: float) -> str:
    if median >= LARGE_MIN:
        return "large"
    return "medium" if median >= SMALL_MAX else "small"


def _fmt(n: float) -> str:
    """Counts print as integers, medians of even-length lists may be .5."""
    return f"{n:g}"


def _sig2(x: float) -> float:
    """Two significant digits: learning rates are not known better than that."""
    return float(f"{x:.2g}")


def resolve_far(similarity: float | None, far: bool | None = None,
                threshold: float = SIMILARITY_THRESHOLD) -> bool | None:
    """Far from ImageNet? ``far`` wins when given; else ``similarity < threshold``; else None.

    >>> resolve_far(0.71), resolve_far(0.73), resolve_far(None), resolve_far(0.9, far=True)
    (True, False, None, True)
    """
    if far is not None:
        return bool(far)
    if similarity is None:
        return None
    return float(similarity) < threshold


def _similarity_phrase(similarity: float | None, far: bool | None, threshold: float) -> str:
    if far is None:
        return "similarity to ImageNet not measured"
    where = "far from" if far else "near"
    if similarity is None:
        return f"the dataset is {where} ImageNet"
    sign = "<" if similarity < threshold else ">="
    return f"similarity {_apart(similarity, threshold)} {sign} {threshold:.2f} ({where} ImageNet)"


def _apart(value: float, limit: float, digits: int = 2) -> str:
    """``value`` with enough decimals not to read as ``limit`` (0.7196 vs 0.72: "0.7196", not "0.72 < 0.72").

    >>> _apart(0.70, 0.72), _apart(0.7196, 0.72), _apart(0.72, 0.72)
    ('0.70', '0.7196', '0.72')
    """
    for d in range(digits, digits + 5):
        text = f"{value:.{d}f}"
        if value == limit or float(text) != limit and (float(text) < limit) == (value < limit):
            return text
    return f"{value:.{digits + 4}f}"


def _unwrap(obj: Any, attr: str) -> Any:
    """Accept a plain number or a result object carrying it (SimilarityResult, LRFinderResult)."""
    return getattr(obj, attr) if obj is not None and hasattr(obj, attr) else obj


def make_profile(images_per_class: Mapping[str, int], *, mean_size: tuple[float, float] = (256, 256),
                 multi_label: bool = False, n_corrupt: int = 0, root: str = "example") -> "DatasetProfile":
    """A :class:`~finetune_advisor.data.DatasetProfile` from class counts alone, for examples,
    tests and what-if questions ("what would you advise with 50 images per class?").

    >>> p = make_profile({"cat": 3, "dog": 5})
    >>> p.n_images, p.n_classes, p.imbalance_sd
    (8, 2, 1.0)
    """
    from ..data import DatasetProfile

    counts = {str(k): int(v) for k, v in images_per_class.items()}
    values = list(counts.values())
    w, h = (float(v) for v in mean_size)
    res = {"mean_w": w, "mean_h": h, "median_w": w, "median_h": h, "min_w": w, "min_h": h, "max_w": w, "max_h": h}
    return DatasetProfile(root=root, layout="folders", n_images=sum(values), n_classes=len(counts),
                          images_per_class=counts,
                          imbalance_sd=float(statistics.pstdev(values)) if values else 0.0,
                          multi_label=multi_label, resolution=res, n_corrupt=n_corrupt)

