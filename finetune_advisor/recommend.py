"""``recommend(path) -> Config``: profile, similarity, LR range test, then the pure rules.

This is the one place that orchestrates I/O; every decision is made in :mod:`heuristics`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .config import PROFILES, Config

log = logging.getLogger(__name__)

SAMPLE_DATASET = Path(__file__).parent / "resources" / "sample"
MIN_LR_STEPS = 8  # suggest_lr needs 8 points (the sweep records lr_steps + 1)


@dataclass
class Recommendation:
    """Everything behind a Config: the profile, the similarity and the LR-finder curve."""

    config: Config
    profile: Any                      # data.DatasetProfile
    dataset: Any | None = None        # data.Dataset
    similarity: Any | None = None     # similarity.SimilarityResult
    lr_finder: Any | None = None      # lr_finder.LRFinderResult
    backbone: Any | None = None       # backbones.Backbone
    timings: dict[str, float] = field(default_factory=dict)


def recommend(dataset_path: str | Path, **options: Any) -> Config:
    """Recommend how to fine-tune an ImageNet-pretrained network on ``dataset_path``.

    Parameters
    ----------
    dataset_path : str or Path
        An ImageFolder tree, a CSV of ``image,labels`` (or a folder holding one), or a folder
        of images labelled by file name.
    **options
        See :func:`advise`.

    Returns
    -------
    Config
        JSON-serialisable; ``config.reasons[field]`` explains every decision.

    Examples
    --------
    >>> from finetune_advisor import recommend
    >>> cfg = recommend(SAMPLE_DATASET, backbone="resnet18", pretrained=False,
    ...                 similarity=False, progress=False)  # doctest: +SKIP
    """
    return advise(dataset_path, **options).config


def advise(dataset_path: str | Path, *,
           backbone: str | Callable | None = None,
           weights: str | Path | None = None,
           pretrained: bool = True,
           fallback: bool = True,
           reference: str | Path | None = None,
           profile: str = "cpu",
           invariances: Mapping[str, bool] | None = None,
           threshold: float | None = None,
           layout: str = "auto",
           csv_path: str | Path | None = None,
           label_sep: str | None = None,
           filename_regex: str | None = None,
           similarity: bool = True,
           lr_finder: bool = True,
           lr_loss: str = "valid",
           lr_steps: int = 100,
           lr_finder_fallback: bool = False,
           max_images: int = 4000,
           bootstrap: int = 200,
           seed: int = 0,
           progress: bool = True) -> Recommendation:
    """Run the whole pipeline and keep every intermediate result.

    ``backbone=None`` lets the size rule pick the ResNet; when its weights cannot be had
    (offline) and ``fallback`` is true, the shipped EfficientNet-Lite0 is used and the
    Config says so. ``similarity=False`` / ``lr_finder=False`` skip those measurements
    (the rules then use the study's defaults and say so). ``lr_finder_fallback=True``: when
    the range test cannot suggest a rate, use the study's default as ``lr_finder=False`` would,
    and keep the reason in ``measurements["lr_finder_failed"]`` instead of raising.
    """
    from . import data, heuristics
    from .backbones import create_backbone
    from .exceptions import ConfigError, DatasetError, LRFinderError

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if lr_finder and int(lr_steps) < MIN_LR_STEPS:
        raise ConfigError(f"lr_steps={lr_steps} is too few for the LR range test (at least {MIN_LR_STEPS})",
                          hint="raise lr_steps (CLI --lr-steps), or skip the test with lr_finder=False (--no-lr-finder)")
    from fastai.torch_core import set_seed
    set_seed(seed, reproducible=True)  # random-init backbones, head init, augmentation: same seed, same advice
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    read_kwargs = {"layout": layout, "csv_path": csv_path, "label_sep": label_sep}
    if filename_regex:
        read_kwargs["filename_regex"] = filename_regex
    dataset = data.read_dataset(dataset_path, **read_kwargs)
    dataset_profile = data.profile_dataset(dataset)
    if dataset_profile.n_corrupt >= dataset_profile.n_headers_read > 0:  # nothing to measure or train on
        raise DatasetError(f"none of the {dataset_profile.n_images} images in {dataset.root} can be read "
                           f"(e.g. {dataset_profile.corrupt_examples[0]})", path=dataset.root,
                           hint="check the image files: corrupt, truncated, refused as too large, or not images")
    timings["profile"] = time.perf_counter() - clock

    if backbone is None:
        arch, arch_reason = heuristics.choose_architecture(dataset_profile)
    else:
        arch, arch_reason = backbone, "set by user"
    clock = time.perf_counter()
    bb = create_backbone(arch, weights=weights, pretrained=pretrained, fallback=fallback)
    if bb.fallback_from is not None:
        arch_reason = (f"{arch_reason}; but {bb.fallback_from} weights are unavailable here, so the shipped "
                       f"ImageNet {bb.name} is used instead (pass --weights or go online for {bb.fallback_from})")
    # what train() rebuilds: the backbone actually used, or the name / full module:function spec
    backbone_name = bb.name if (bb.fallback_from or callable(arch)) else arch
    timings["backbone"] = time.perf_counter() - clock

    sim_result = None
    decode_failed: set[str] = set()  # images whose pixels did not decode (the headers did)
    if similarity:
        from .similarity import dataset_similarity, get_reference
        clock = time.perf_counter()
        ref = get_reference(bb, path=reference)
        sim_result = dataset_similarity(dataset, bb, ref, threshold=threshold, max_images=max_images,
                                        bootstrap=bootstrap, seed=seed, progress=progress)
        log.info("similarity %.3f (raw EMD %.4f) with %s", sim_result.similarity, sim_result.emd, bb.key)
        decode_failed.update(sim_result.failed_paths)
        timings["similarity"] = time.perf_counter() - clock

    lr_result, lr_failed = None, None
    if lr_finder:
        from .lr_finder import find_lr
        from .train import build_learner
        clock = time.perf_counter()
        draft = heuristics.recommend_config(dataset_profile, backbone=backbone_name, profile_name=profile,
                                            invariances=invariances)
        set_seed(seed, reproducible=True)  # head init and augmentation: same seed, same LR
        learn = build_learner(draft, dataset, backbone=bb, seed=seed)
        log.info("LR range test on the frozen %s (%d px, batch %d)...", bb.name, draft.image_size, draft.batch_size)
        decode_failed.update(learn.dls.unreadable)
        try:
            with learn.no_bar():  # fastai would draw one bar per tiny epoch of the sweep
                lr_result = find_lr(learn, loss=lr_loss, num_it=lr_steps, seed=seed)
        except LRFinderError as exc:  # name the dataset and the CLI's way out
            lr_failed = f"LR range test on {dataset.root} failed: {exc.message}"
            if not lr_finder_fallback:
                raise LRFinderError(lr_failed, path=dataset.root,
                                    hint=(f"{exc.hint}; " if exc.hint else "") + "or skip it with --no-lr-finder "
                                         "(lr_finder=False) to use the study's default learning rate") from None
            log.warning("%s; using the study's default learning rate", lr_failed)
        timings["lr_finder"] = time.perf_counter() - clock

    if decode_failed:  # found while embedding or loading: count them with the header failures
        dataset_profile = data.add_decode_failures(dataset_profile, decode_failed)
    measurements = {"timings_s": {k: round(v, 2) for k, v in timings.items()},
                    "backbone_source": bb.source}
    if sim_result is not None:
        measurements["similarity"] = {k: v for k, v in sim_result.to_dict().items() if k != "failed_paths"}
    if lr_result is not None:
        measurements["lr_finder"] = {k: v for k, v in lr_result.to_dict().items()
                                     if k not in ("lrs", "losses_raw", "losses_smooth")}
    if lr_failed is not None:
        measurements["lr_finder_failed"] = lr_failed
    config = heuristics.recommend_config(
        dataset_profile,
        similarity=None if sim_result is None else sim_result.similarity,
        far=None if sim_result is None else sim_result.far,
        threshold=heuristics.SIMILARITY_THRESHOLD if sim_result is None else sim_result.threshold,
        lr_find=None if lr_result is None else lr_result.lr,
        backbone=backbone_name, backbone_reason=arch_reason,
        profile_name=profile, invariances=invariances, measurements=measurements)
    return Recommendation(config=config, profile=dataset_profile, dataset=dataset, similarity=sim_result,
                          lr_finder=lr_result, backbone=bb, timings=timings)
