"""The rules, one per Config field (or a few fields decided together): each returns a
:class:`~finetune_advisor.heuristics._common.Decision` ``(value, reason)``. Pure: no I/O, no torch."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from ..config import PROFILES, Augmentation
from ..exceptions import ConfigError

from ..study import (DEFAULT_LR, DISCRIMINATIVE_DIVISOR, FINETUNE_LR_DIVISOR, LARGE_MIN, LR_FAR_DIVISOR,
                     MAX_FINETUNE_EPOCHS, MAX_HEAD_EPOCHS, MIN_TRAIN, MIN_VALID, SIMILARITY_THRESHOLD, SMALL_MAX,
                     VALID_MAX, VALID_MIN)
from ._common import make_profile  # noqa: F401  (the doctests' profiles)
from ._common import (DEFAULT_NOISE_STD, INVARIANCES, MAX_UPSCALE, RESNET50_MIN_IMAGES, Decision, _fmt,
                      _median_per_class, _similarity_phrase, _sig2, _size_band, resolve_far)

if TYPE_CHECKING:
    from ..data import DatasetProfile

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
    >>> image_size(make_profile({"a": 50}, mean_size=(28, 28)), "cpu").reason
    "profile 'cpu' wants 64 px but the mean image is 28x28 px; upscaling past 2x adds no detail, so at most 56 px, rounded down to a multiple of 16 (the network's stride) → 48"
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
                         f"upscaling past {MAX_UPSCALE:g}x adds no detail, so at most {MAX_UPSCALE * side:.0f} px, "
                         f"rounded down to a multiple of 16 (the network's stride) → {cap}")


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



def _profile(name: str) -> Mapping[str, Any]:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
