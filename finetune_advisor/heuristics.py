"""Pure rules: dataset profile + similarity to ImageNet + LR-finder rate → :class:`Config`.

Every rule is a small function returning a :class:`Decision` ``(value, reason)``; rules that set
several Config fields return ``{field: Decision}``. Reasons are one sentence naming the source
(``study``: the Fellowship.AI fastai hyper-parameter study; ``Overture``: Overture's guide to
hyper-parameter selection) and the numbers behind the choice.

No I/O and no torch/fastai import here, so the rules can be doctested and need no GPU.

Size bands (median images per class, Overture's Figure 9): *small* < 300, *medium* 300-999,
*large* >= 1000. The median describes the typical class; one tiny class must not decide for
all the others (tiny classes get a warning from :func:`warnings_for` instead).

>>> profile = make_profile({"cat": 180, "dog": 150}, mean_size=(400, 300))
>>> cfg = recommend_config(profile, similarity=0.81, lr_find=4e-3)
>>> cfg.backbone, cfg.batch_size, cfg.fine_tune, cfg.lr
('resnet18', 16, 'none', 0.004)
>>> cfg.reasons["lr"]
'study: lr_find 4.0e-03 as is because similarity 0.81 >= 0.72 (near ImageNet)'
"""
from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

from .config import PROFILES, Augmentation, Config
from .exceptions import ConfigError

if TYPE_CHECKING:
    from .data import DatasetProfile

__all__ = [
    "Decision", "SIMILARITY_THRESHOLD", "DEFAULT_LR", "INVARIANCES", "resolve_far",
    "choose_architecture", "validation_split", "batch_size", "fine_tune_plan", "learning_rates",
    "weight_decay", "beta2", "dropout", "head_size", "head_epochs", "image_size", "augmentation",
    "multi_label", "warnings_for", "recommend_config", "make_profile",
]

# --- thresholds, each with its source -------------------------------------------------
SIMILARITY_THRESHOLD = 0.72   # study: cosine similarity to (Tiny-)ImageNet below this is "far"
DEFAULT_LR = 3e-3             # Overture: "the default learning rate is 0.003"
LR_FAR_DIVISOR = 10.0         # study: lr_find / 10 for far datasets
FINETUNE_LR_DIVISOR = 10.0    # Overture: fine-tune LR <= head LR / 10
DISCRIMINATIVE_DIVISOR = 10.0  # study default divisor between layer groups
SMALL_MAX = 300               # Overture Figure 9: small = 30-300 images per label
LARGE_MIN = 1000              # Overture Figure 9: large = 1000+ images per label
TINY = 30                     # Overture: below the small band
RESNET50_MIN_IMAGES = 10_000  # our choice: resnet50 only with many images in total, too
MIN_TRAIN, MIN_VALID = 20, 15  # Overture: per label, in the training / validation set
VALID_MIN, VALID_MAX = 0.1, 0.4  # Overture: 0.4 at ~40 per label, down to 0.1 with hundreds
MAX_FINETUNE_EPOCHS = 5       # Overture: fine-tune "at most 5" epochs
MAX_HEAD_EPOCHS = 15          # Overture: head training converges within 10-15 epochs
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
    return f"similarity {similarity:.2f} {sign} {threshold:.2f} ({where} ImageNet)"


def _unwrap(obj: Any, attr: str) -> Any:
    """Accept a plain number or a result object carrying it (SimilarityResult, LRFinderResult)."""
    return getattr(obj, attr) if obj is not None and hasattr(obj, attr) else obj


# --- rules ----------------------------------------------------------------------------
def choose_architecture(profile: "DatasetProfile") -> Decision:
    """Smallest ResNet that suits the amount of data (Overture: try 18 or 34 first).

    resnet18 when the typical class is small (median < 300 images: a deeper net overfits);
    resnet34 (the study's default) for medium data; resnet50 only when the typical class is
    large (>= 1000) *and* there are >= 10,000 images in all.

    >>> choose_architecture(make_profile({"a": 120, "b": 90})).value
    'resnet18'
    >>> choose_architecture(make_profile({c: 1500 for c in "abcdefgh"})).value
    'resnet50'
    """
    median, total = _median_per_class(profile), profile.n_images
    if median < SMALL_MAX:
        return Decision("resnet18", f"Overture: smallest ResNet that works; median {_fmt(median)} images per "
                                    f"class (< {SMALL_MAX}, small data) → resnet18 to limit overfitting")
    if median < LARGE_MIN:
        return Decision("resnet34", f"study default resnet34: median {_fmt(median)} images per class "
                                    f"({SMALL_MAX}-{LARGE_MIN - 1}, medium data)")
    if total < RESNET50_MIN_IMAGES:
        return Decision("resnet34", f"study default resnet34: median {_fmt(median)} images per class "
                                    f"(>= {LARGE_MIN}) but only {total} images (< {RESNET50_MIN_IMAGES}), "
                                    f"so the smaller net (Overture)")
    return Decision("resnet50", f"median {_fmt(median)} images per class (>= {LARGE_MIN}) and {total} images "
                                f"(>= {RESNET50_MIN_IMAGES}): enough data for resnet50")


def validation_split(profile: "DatasetProfile") -> Decision:
    """Overture: >= 15 validation images per class, between 0.1 and 0.4.

    ``15 / median`` rounded up to a multiple of 0.05 and clipped to [0.1, 0.4]: 0.4 at ~40
    images per class, 0.1 from 150 up. Below 35 per class, 20 training + 15 validation images
    cannot both be had; the split stays at 0.4 so training keeps 60%.

    >>> validation_split(make_profile({"a": 40, "b": 40})).value
    0.4
    >>> validation_split(make_profile({"a": 400, "b": 500})).value
    0.1
    """
    median = _median_per_class(profile)
    if median <= 0:
        return Decision(VALID_MAX, f"Overture: no images per class known → the largest split {VALID_MAX}")
    want = MIN_VALID / median
    pct = min(VALID_MAX, max(VALID_MIN, math.ceil(round(want / 0.05, 6)) * 0.05))
    pct = round(pct, 2)
    if median < MIN_TRAIN + MIN_VALID:
        return Decision(pct, f"Overture: median {_fmt(median)} images per class cannot give {MIN_TRAIN} training "
                             f"+ {MIN_VALID} validation images, so valid_pct stays at {pct} to keep training data")
    bound = ("the 0.1 floor" if pct == VALID_MIN and want < VALID_MIN
             else "the 0.4 cap" if pct == VALID_MAX and want > VALID_MAX else "rounded up to 0.05")
    return Decision(pct, f"Overture: >= {MIN_VALID} validation images per class at the median class size "
                         f"{_fmt(median)} needs {want:.2f} → valid_pct {pct} ({bound})")


def batch_size(profile: "DatasetProfile", valid_pct: float) -> Decision:
    """Overture: 16 for ~200 images, 32 or 64 above, larger for many thousands.

    16 below 500 images, 32 below 2,000, 64 (the study's default) below 10,000, else 128;
    then capped to the largest power of two <= n_train // 2 (at least 2): fastai drops the
    last incomplete training batch, and BatchNorm needs more than one image per batch.

    >>> batch_size(make_profile({"a": 90, "b": 90}), 0.2)
    Decision(value=16, reason='Overture: 180 images in total (< 500) → batch size 16')
    >>> batch_size(make_profile({"a": 10, "b": 10}), 0.4).value
    4
    """
    n = profile.n_images
    if n < 500:
        bs, why = 16, f"Overture: {n} images in total (< 500) → batch size 16"
    elif n < 2000:
        bs, why = 32, f"Overture: {n} images in total (500-1999) → batch size 32"
    elif n < 10_000:
        bs, why = 64, f"study default batch size 64 for {n} images (Overture: 32/64 above a few hundred)"
    else:
        bs, why = 128, f"Overture: larger batches for thousands of images; {n} images (>= 10000) → 128"
    n_train = n - int(valid_pct * n)  # as fastai's RandomSplitter cuts
    cap = max(2, 2 ** int(math.log2(n_train // 2))) if n_train >= 4 else 2
    if bs > cap:
        return Decision(cap, f"{why}, capped at {cap} so that the {n_train} training images give at least "
                             f"2 batches per epoch")
    return Decision(bs, why)


def fine_tune_plan(profile: "DatasetProfile", similarity: float | None = None, far: bool | None = None, *,
                   profile_name: str = "cpu", threshold: float = SIMILARITY_THRESHOLD) -> dict[str, Decision]:
    """How much of the body to unfreeze, and for how many epochs (Overture's Figure 9).

    ========  =======================  ===========================================
    size      similar to ImageNet      different
    ========  =======================  ===========================================
    small     ``none`` (head only)     ``all``, at most 5 epochs (tricky: warned)
    medium    ``last``, <= 5 epochs    ``last``, <= 5 epochs
    large     ``last``, <= 5 epochs    ``all``, the study's schedule (15 on paper)
    ========  =======================  ===========================================

    Similarity unknown: the study's default, unfreeze ``all`` for the profile's epochs.

    Returns
    -------
    dict
        ``{"fine_tune": Decision, "unfrozen_epochs": Decision}``

    >>> plan = fine_tune_plan(make_profile({"a": 100, "b": 100}), similarity=0.8)
    >>> plan["fine_tune"].value, plan["unfrozen_epochs"].value
    ('none', 0)
    >>> fine_tune_plan(make_profile({"a": 100}), similarity=0.6)["fine_tune"].value
    'all'
    """
    epochs = _profile(profile_name)["unfrozen_epochs"]
    far = resolve_far(similarity, far, threshold)
    median = _median_per_class(profile)
    band = _size_band(median)
    data = f"{band} data (median {_fmt(median)} images per class)"
    sim = _similarity_phrase(similarity, far, threshold)
    capped = min(epochs, MAX_FINETUNE_EPOCHS)
    capped_why = f"Overture: fine-tune at most {MAX_FINETUNE_EPOCHS} epochs (profile {profile_name!r} has {epochs})"
    if far is None:
        return {"fine_tune": Decision("all", f"study default: unfreeze all layers ({sim}; {data})"),
                "unfrozen_epochs": Decision(epochs, f"study schedule: {epochs} unfrozen epochs "
                                                    f"(profile {profile_name!r})")}
    if band == "small" and not far:
        return {"fine_tune": Decision("none", f"Overture Figure 9: {data}, {sim} → train the head only"),
                "unfrozen_epochs": Decision(0, "head only (fine_tune 'none') → no unfrozen epochs")}
    if band == "large" and far:
        return {"fine_tune": Decision("all", f"Overture Figure 9: {data}, {sim} → fine-tune the whole network"),
                "unfrozen_epochs": Decision(epochs, f"study schedule for large data: {epochs} unfrozen epochs "
                                                    f"(profile {profile_name!r})")}
    if band == "small":  # and far: Overture's "tricky" case
        return {"fine_tune": Decision("all", f"Overture Figure 9: {data}, {sim} → fine-tune a large part of the "
                                             f"network (tricky with little data)"),
                "unfrozen_epochs": Decision(capped, capped_why)}
    return {"fine_tune": Decision("last", f"Overture Figure 9: {data}, {sim} → fine-tune the last block and "
                                          f"the head"),
            "unfrozen_epochs": Decision(capped, capped_why)}


def learning_rates(lr_find: float | None, far: bool | None, *, similarity: float | None = None,
                   threshold: float = SIMILARITY_THRESHOLD, fine_tune: str = "all") -> dict[str, Decision]:
    """Head LR, fine-tune LR and discriminative divisor.

    ``lr``: the LR finder's rate (Overture's 3e-3 when it was not run), divided by 10 when the
    dataset is far from ImageNet (study). ``lr_finetune = lr / 10`` (Overture: fine-tune LR
    <= head LR / 10). ``lr_divisor = 10`` (study default).

    >>> rates = learning_rates(3.2e-3, None, similarity=0.58)
    >>> rates["lr"].value, rates["lr_finetune"].value
    (0.00032, 3.2e-05)
    >>> rates["lr"].reason
    'study: lr_find 3.2e-03 ÷ 10 because similarity 0.58 < 0.72 (far from ImageNet)'
    >>> learning_rates(None, False, similarity=0.73)["lr"].value
    0.003
    """
    far = resolve_far(similarity, far, threshold)
    if lr_find is None:
        base, source = DEFAULT_LR, f"Overture default {DEFAULT_LR:.0e} (no LR finder run)"
    else:
        base = float(lr_find)
        if not (math.isfinite(base) and base > 0):
            raise ConfigError(f"lr_find must be a positive finite learning rate, got {lr_find!r}")
        source = f"lr_find {base:.1e}"
    sim = _similarity_phrase(similarity, far, threshold)
    if far:
        lr = _sig2(base / LR_FAR_DIVISOR)
        lr_why = f"study: {source} ÷ {LR_FAR_DIVISOR:g} because {sim}"
    else:
        lr = _sig2(base)
        lr_why = f"study: {source} as is because {sim}"
    lr_ft = _sig2(lr / FINETUNE_LR_DIVISOR)
    ft_why = f"Overture: fine-tune LR <= head LR / {FINETUNE_LR_DIVISOR:g} → {lr:.1e} / 10 = {lr_ft:.1e}"
    if fine_tune == "none":
        ft_why += " (unused: fine_tune is 'none')"
    return {"lr": Decision(lr, lr_why), "lr_finetune": Decision(lr_ft, ft_why),
            "lr_divisor": Decision(DISCRIMINATIVE_DIVISOR, f"study default: each earlier layer group gets the "
                                                           f"LR / {DISCRIMINATIVE_DIVISOR:g} (discriminative LRs)")}


def weight_decay() -> Decision:
    """Study default 0.1 (its heatmap hints 0.01 may help slightly; the default is kept).

    >>> weight_decay().value
    0.1
    """
    return Decision(0.1, "study default weight decay 1e-1 (AdamW)")


def beta2() -> Decision:
    """Study default AdamW beta2 0.99.

    >>> beta2().value
    0.99
    """
    return Decision(0.99, "study default AdamW beta2 0.99")


def dropout() -> Decision:
    """Study default head dropout (0.5, 0.25); Overture: 0.5 works in most cases.

    >>> dropout().value
    (0.5, 0.25)
    """
    return Decision((0.5, 0.25), "study default head dropout (p1 0.5, p2 0.25); Overture: 0.5 works in most cases")


def head_size(profile: "DatasetProfile") -> Decision:
    """Width of the head's hidden layer (Overture: start at 132/256/512, 1024 if needed).

    256 for little data (median < 300 per class) and fewer than 10 classes; 1024 when the
    classes outnumber half of 512 (a narrower layer would be a bottleneck); else 512.

    >>> head_size(make_profile({"a": 50, "b": 50})).value
    256
    >>> head_size(make_profile({f"c{i}": 50 for i in range(300)})).value
    1024
    """
    median, k = _median_per_class(profile), profile.n_classes
    if k < 10 and median < SMALL_MAX:
        return Decision(256, f"Overture: small head for little data and few classes ({k} classes < 10, "
                             f"median {_fmt(median)} images per class < {SMALL_MAX}) → 256")
    if k > 256:
        return Decision(1024, f"Overture: up to 1024 when needed; {k} classes (> 256) would be squeezed "
                              f"through 512 features → 1024")
    return Decision(512, f"Overture: start with a head of 512 ({k} classes, median {_fmt(median)} images per class)")


def head_epochs(profile_name: str, fine_tune: str) -> Decision:
    """Epochs of head training: the profile's (study: 5 on paper); with no fine-tuning the
    whole budget goes to the head, up to Overture's 15.

    >>> head_epochs("paper", "all").value, head_epochs("paper", "none").value
    (5, 15)
    """
    p = _profile(profile_name)
    if fine_tune == "none":
        n = min(p["head_epochs"] + p["unfrozen_epochs"], MAX_HEAD_EPOCHS)
        return Decision(n, f"head only: profile {profile_name!r}'s {p['head_epochs']} + {p['unfrozen_epochs']} epochs, "
                           f"at most {MAX_HEAD_EPOCHS} (Overture: head training converges within 10-15)")
    return Decision(p["head_epochs"], f"study: train the head {p['head_epochs']} epochs before unfreezing "
                                      f"(profile {profile_name!r})")


def image_size(profile: "DatasetProfile", profile_name: str = "cpu") -> Decision:
    """The profile's size (paper 224, cpu 64), but at most 2x the smaller mean side.

    Upscaling adds no information and costs compute quadratically, while a 2x upscale still
    helps small images meet ResNet's receptive fields (a 28 px sketch → 48 px). The cap is
    rounded down to a multiple of 16 and never below 32 (ResNet's total stride).

    >>> image_size(make_profile({"a": 50}, mean_size=(28, 28)), "paper").value
    48
    >>> image_size(make_profile({"a": 50}, mean_size=(600, 450)), "paper").value
    224
    """
    size = _profile(profile_name)["image_size"]
    res = profile.resolution or {}
    w, h = res.get("mean_w"), res.get("mean_h")
    if not w or not h:
        return Decision(size, f"profile {profile_name!r} image size {size} (dataset resolution unknown)")
    side = min(float(w), float(h))
    cap = max(32, int(MAX_UPSCALE * side) // 16 * 16)
    if size <= cap:
        return Decision(size, f"profile {profile_name!r} image size {size} (mean image {w:.0f}x{h:.0f} px)")
    return Decision(cap, f"profile {profile_name!r} wants {size} px but the mean image is {w:.0f}x{h:.0f} px; "
                         f"upscaling past {MAX_UPSCALE:g}x adds no detail → {cap}")


def augmentation(invariances: Mapping[str, Any] | None = None) -> Decision:
    """Overture: augment only where the class is invariant.

    Keys (all default False): ``orientation_matters`` (no mirror flips, horizontal or
    vertical), ``color_matters`` (no lighting changes), ``size_matters`` (no zoom),
    ``shape_matters`` (no warp), ``vertical_symmetry`` (no canonical up, as in aerial or
    microscopy images: vertical flips and 90-degree turns allowed), ``noise`` (True or a std
    in [0, 1] pixel units: Gaussian noise against overfitting).

    >>> aug = augmentation({"color_matters": True, "vertical_symmetry": True}).value
    >>> aug.max_lighting, aug.flip_vert, aug.do_flip
    (0.0, True, True)
    """
    inv = _check_invariances(invariances)
    base = Augmentation()
    mirror = not inv["orientation_matters"]
    vert = mirror and bool(inv["vertical_symmetry"])
    noise = inv["noise"]
    noise_std = DEFAULT_NOISE_STD if noise is True else float(noise or 0.0)
    aug = Augmentation(do_flip=mirror, flip_vert=vert, max_rotate=base.max_rotate,
                       max_lighting=0.0 if inv["color_matters"] else base.max_lighting,
                       max_zoom=1.0 if inv["size_matters"] else base.max_zoom,
                       max_warp=0.0 if inv["shape_matters"] else base.max_warp,
                       noise_std=noise_std)
    parts = [
        "left/right flips off (orientation matters)" if not mirror else "left/right flips on",
        "vertical flips on (no canonical up)" if vert else
        ("vertical flips off (orientation matters)" if inv["vertical_symmetry"] else
         "vertical flips off (objects have a canonical up)"),
        "no lighting change (colour matters)" if inv["color_matters"] else f"lighting {aug.max_lighting:g}",
        "no zoom (size matters)" if inv["size_matters"] else f"zoom {aug.max_zoom:g}",
        "no warp (shape matters)" if inv["shape_matters"] else f"warp {aug.max_warp:g}",
        f"Gaussian noise std {noise_std:g}" if noise_std else "no noise",
    ]
    return Decision(aug, "Overture: augment only where the class is invariant: " + ", ".join(parts))


def _check_invariances(invariances: Mapping[str, Any] | None) -> dict[str, Any]:
    inv = dict.fromkeys(INVARIANCES, False)
    unknown = sorted(set(invariances or {}) - set(INVARIANCES))
    if unknown:
        raise ConfigError(f"unknown invariance(s) {unknown}; valid ones are {list(INVARIANCES)}")
    inv.update(invariances or {})
    noise = inv["noise"]
    if not isinstance(noise, bool) and not (isinstance(noise, (int, float)) and 0 <= noise <= 1):
        raise ConfigError(f"invariance 'noise' must be true/false or a std in [0, 1], got {noise!r}")
    return inv


def multi_label(profile: "DatasetProfile") -> Decision:
    """Multi-label when any image carries several labels (sigmoid outputs + BCE loss).

    >>> multi_label(make_profile({"a": 5})).value
    False
    """
    if profile.multi_label:
        return Decision(True, "the dataset has images with several labels → multi-label (sigmoid + BCE)")
    return Decision(False, "each image has exactly one label → single-label (softmax + cross-entropy)")


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


# --- composition ----------------------------------------------------------------------
def recommend_config(profile: "DatasetProfile", *,
                     similarity: float | None = None,
                     far: bool | None = None,
                     lr_find: float | None = None,
                     backbone: str | None = None,
                     backbone_reason: str | None = None,
                     profile_name: str = "cpu",
                     invariances: Mapping[str, Any] | None = None,
                     measurements: Mapping[str, Any] | None = None,
                     threshold: float = SIMILARITY_THRESHOLD) -> Config:
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
    d.update(fine_tune_plan(profile, similarity, far, profile_name=profile_name, threshold=threshold))
    d.update(learning_rates(lr_find, far, similarity=similarity, threshold=threshold,
                            fine_tune=d["fine_tune"].value))
    d["head_epochs"] = head_epochs(profile_name, d["fine_tune"].value)
    d["weight_decay"], d["beta2"], d["dropout"] = weight_decay(), beta2(), dropout()
    d["head_size"] = head_size(profile)
    d["augmentation"] = augmentation(invariances)
    d["multi_label"] = multi_label(profile)
    meas = _measurements(profile, similarity, far, lr_find, threshold)
    meas.update(measurements or {})
    return Config(**{k: v.value for k, v in d.items()}, reasons={k: v.reason for k, v in d.items()},
                  measurements=meas, warnings=warnings_for(profile, similarity, far, threshold=threshold))


def _profile(name: str) -> Mapping[str, Any]:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def _profile_decision(name: str) -> Decision:
    p = _profile(name)
    what = "the study's schedule for a GPU" if name == "paper" else "a short schedule for a few CPU cores"
    return Decision(name, f"profile {name!r}: {what} ({p['image_size']} px, {p['head_epochs']} head + "
                          f"{p['unfrozen_epochs']} unfrozen epochs at most)")


def _measurements(profile: "DatasetProfile", similarity: float | None, far: bool | None,
                  lr_find: float | None, threshold: float) -> dict[str, Any]:
    """The numbers the decisions rest on; JSON types only (lists, not tuples) so that a
    Config survives a JSON round trip unchanged."""
    counts = _counts(profile)
    m: dict[str, Any] = {
        "n_images": int(profile.n_images), "n_classes": int(profile.n_classes),
        "images_per_class": {"median": float(statistics.median(counts)) if counts else 0.0,
                             "min": counts[0] if counts else 0, "max": counts[-1] if counts else 0},
        "imbalance_sd": float(profile.imbalance_sd), "n_corrupt": int(profile.n_corrupt),
        "similarity_threshold": float(threshold), "far": far,
    }
    res = profile.resolution or {}
    if res.get("mean_w") and res.get("mean_h"):
        m["mean_resolution"] = [float(res["mean_w"]), float(res["mean_h"])]
    if similarity is not None:
        m["similarity"] = float(similarity)
    if lr_find is not None:
        m["lr_find"] = float(lr_find)
    return m


def make_profile(images_per_class: Mapping[str, int], *, mean_size: tuple[float, float] = (256, 256),
                 multi_label: bool = False, n_corrupt: int = 0, root: str = "example") -> "DatasetProfile":
    """A :class:`~finetune_advisor.data.DatasetProfile` from class counts alone, for examples,
    tests and what-if questions ("what would you advise with 50 images per class?").

    >>> p = make_profile({"cat": 3, "dog": 5})
    >>> p.n_images, p.n_classes, p.imbalance_sd
    (8, 2, 1.0)
    """
    from .data import DatasetProfile

    counts = {str(k): int(v) for k, v in images_per_class.items()}
    values = list(counts.values())
    w, h = (float(v) for v in mean_size)
    res = {"mean_w": w, "mean_h": h, "median_w": w, "median_h": h, "min_w": w, "min_h": h, "max_w": w, "max_h": h}
    return DatasetProfile(root=root, layout="folders", n_images=sum(values), n_classes=len(counts),
                          images_per_class=counts,
                          imbalance_sd=float(statistics.pstdev(values)) if values else 0.0,
                          multi_label=multi_label, resolution=res, n_corrupt=n_corrupt)
