"""``recommend(path) -> Config``: profile, similarity, LR range test, then the pure rules.

This is the one place that orchestrates the measuring stages; every decision is made in
:mod:`finetune_advisor.heuristics`. Options are validated once, when :class:`AdviseOptions`
(:mod:`finetune_advisor.advise_options`) is built.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import data, heuristics
from .advise_options import AdviseOptions
from .hardware import AUTO_PROFILE, auto_profile
from .backbones import create_backbone
from .calibration import Calibration, find_calibration, nearest_calibration
from .config import PROFILES, Config
from .exceptions import DatasetError, LRFinderError, SimilarityReferenceError
from .learner import LearnerSpec, build_learner
from .learner.features import FeatureCache, cache_features
from .lr_finder import find_lr
from .lr_finder import range_test as lr_range_test
from .lr_finder import suggest as lr_suggest
from .lr_finder.cached import find_lr_cached
from .transferability import linear_probe, logme
from .measurements import LRFinderResult, Measurements, SimilarityResult
from .study import SIMILARITY_THRESHOLD

if TYPE_CHECKING:
    from .backbones import Backbone
    from .data import Dataset, DatasetProfile

log = logging.getLogger(__name__)

SAMPLE_DATASET = Path(__file__).parent / "resources" / "sample"
TRANSFER_MAX_ROWS = 1000     # cached features LogME and the linear probe read
# The range test's hints name find_lr's arguments (num_it, start_lr, end_lr); advise sets only
# lr_steps and lr_loss, so its errors say those (and the CLI's options), never an option it lacks.
_DATA_HINT = "check the labels and the data: on a tiny or very imbalanced dataset the curve is mostly noise"
_ADVISE_LR_HINTS = {
    lr_suggest.HINT_MORE_POINTS: "raise lr_steps (CLI --lr-steps)",
    lr_suggest.HINT_DIVERGED: f"{_DATA_HINT}; or raise lr_steps (CLI --lr-steps) to record more points before "
                              f"the loss diverges",
    lr_suggest.HINT_LOWER_START: _DATA_HINT,
    lr_suggest.HINT_NO_DESCENT: _DATA_HINT,
    lr_range_test.HINT_NO_VALID: "use lr_loss='train' (CLI --lr-loss train)",
}



def _or_skip_it(hint: str | None, how: str) -> str:
    """A measurement's error hint with the way on without it: ``"<hint>; or skip it with <how>"``."""
    return (f"{hint}; " if hint else "") + f"or skip it with {how}"

@dataclass
class Recommendation:
    """Everything behind a Config: the profile, the similarity and the LR-finder curve."""

    config: Config
    profile: "DatasetProfile"
    dataset: "Dataset | None" = None
    similarity: SimilarityResult | None = None
    lr_finder: LRFinderResult | None = None         # with its curve, when run in this process
    backbone: "Backbone | None" = None
    timings: dict[str, float] = field(default_factory=dict)
    options: AdviseOptions = field(default_factory=AdviseOptions)

    @classmethod
    def from_config(cls, config: Config, profile: "DatasetProfile | None" = None, **parts: Any) -> "Recommendation":
        """A Recommendation rebuilt from a saved Config (its measurements; no curves unless kept)."""
        m = config.measurements
        return cls(config=config, profile=profile, similarity=parts.pop("similarity", m.similarity),
                   lr_finder=parts.pop("lr_finder", m.lr_finder), timings=dict(m.timings_s), **parts)


def recommend(dataset_path: str | Path, **options: Any) -> Config:
    """Recommend how to fine-tune an ImageNet-pretrained network on ``dataset_path``.

    Parameters
    ----------
    dataset_path : str or Path
        An ImageFolder tree, a CSV of ``image,labels`` (or a folder holding one), or a folder
        of images labelled by file name.
    **options
        See :class:`AdviseOptions`.

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


def range_test_spec(profile: "DatasetProfile", options: AdviseOptions) -> LearnerSpec:
    """What the range test trains: the sizes the rules choose for this dataset (image size,
    validation split, batch, head) with the study's optimiser and dropout defaults."""
    valid_pct = heuristics.validation_split(profile).value
    return LearnerSpec(image_size=heuristics.image_size(profile, options.profile_name).value,
                       batch_size=heuristics.batch_size(profile, valid_pct).value, valid_pct=valid_pct,
                       multi_label=bool(profile.multi_label), head_size=heuristics.head_size(profile).value,
                       dropout=heuristics.dropout().value, weight_decay=heuristics.weight_decay().value,
                       beta2=heuristics.beta2().value,
                       max_images_per_class=PROFILES[options.profile_name].get("max_images_per_class"))


def transferability_of(cache: FeatureCache, *, seed: int = 0) -> dict[str, float]:
    """LogME and the cross-validated linear-probe score on the cached features."""
    x, y = cache.all()
    if len(x) > TRANSFER_MAX_ROWS:     # both cost O(n² d): a seeded subset of the stratified sample
        keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:TRANSFER_MAX_ROWS])
        x, y = x[keep], y[keep]
    return {"logme": round(logme(x, y), 5), "probe_accuracy": round(linear_probe(x, y, seed=seed), 5),
            "probe_metric": "macro ROC AUC" if cache.multi_label else "accuracy", "n_images": int(len(x))}


def resolve_policy(options: AdviseOptions, backbone_key: str, *, pretrained: bool = True
                   ) -> tuple[str, Calibration | None, str | None]:
    """``(policy, calibration, note)``: the calibrated policy needs a calibration for the
    backbone and profile. Without one of its own, a pretrained backbone gets the nearest shipped
    calibration (:func:`~finetune_advisor.calibration.nearest_calibration`), and ``note`` says so;
    a random-init backbone (nothing to fine-tune) falls back to the study policy."""
    if options.policy == "study":
        return "study", None, None
    calibration, why_not = find_calibration(backbone_key, options.profile_name, options.calibration)
    if calibration is not None:
        return "calibrated", calibration, None
    near = nearest_calibration(backbone_key, options.profile_name) if pretrained else None
    if near is None:
        return "study", None, f"policy 'calibrated' unavailable ({why_not}): using the study policy"
    return "calibrated", near, (f"no calibration for backbone {backbone_key!r} at profile {options.profile_name!r}: "
                                f"using the one fitted for {near.backbone} at {near.profile} (fit your own with "
                                f"'finetune-advisor bench run --grid calibration' and 'finetune-advisor calibrate', "
                                f"or pass --policy study)")


def configure(profile: "DatasetProfile", measured: Measurements, options: AdviseOptions, *,
              backbone: str, backbone_reason: str, calibration: Calibration | None = None,
              policy_note: str | None = None) -> Config:
    """The rules applied to ``profile`` and the stage measurements ``measured`` (pure).

    :func:`advise` ends here, and so does a bench baseline for a subset of a dataset: the
    subset's profile with the whole dataset's similarity and range test.
    """
    sim, lr = measured.similarity, measured.lr_finder
    threshold = options.threshold if options.threshold is not None else SIMILARITY_THRESHOLD
    if sim is not None and sim.threshold is not None:
        threshold = sim.threshold
    policy = "calibrated" if calibration is not None else "study"
    config = heuristics.recommend_config(
        profile, similarity=None if sim is None else sim.similarity, far=None if sim is None else sim.far,
        threshold=threshold, lr_find=None if lr is None else lr.lr,
        backbone=backbone, backbone_reason=backbone_reason, profile_name=options.profile_name,
        invariances=options.invariances, measurements=measured.stages(), policy=policy,
        rule=None if calibration is None else calibration.rule,
        evidence="" if calibration is None else calibration.evidence(),
        depth_evidence=None if calibration is None else calibration.depth_note(profile.median_images_per_class))
    if calibration is not None:
        config = dataclasses.replace(config, measurements=config.measurements.replace(
            calibration=calibration.summary()))
        cap = PROFILES[options.profile_name].get("max_images_per_class")      # what training will use of each class
        band, no_band = calibration.rate_band(None if lr is None else lr.lr)
        probe = (config.measurements.transferability or {}).get("probe_accuracy")
        expected, no_expected = ((None, "the probe fit holds for single-label accuracy only") if config.multi_label
                                 else calibration.expected_accuracy(probe))
        low_high = {} if expected is None else dict(expected_accuracy=expected[0], expected_accuracy_low=expected[1],
                                                   expected_accuracy_high=expected[2])
        config = dataclasses.replace(config, measurements=config.measurements.replace(
            rate_band=band, rate_band_note=no_band, expected_accuracy_note=no_expected, **low_high))
        beyond = calibration.outside(min(profile.median_images_per_class, cap or math.inf))
        if beyond:
            config = dataclasses.replace(config, warnings=(*config.warnings, beyond))
    if policy_note:
        config = dataclasses.replace(config, warnings=(*config.warnings, policy_note))
    return config


def with_time_estimate(config: Config, *, n_train: int, n_valid: int, budget_s: float | None = None) -> Config:
    """``config`` with its estimated training time (``measurements.train_time_s``), its schedule
    shortened to ``budget_s`` seconds where given (:func:`heuristics.fit_to_budget`), and the
    epochs' reasons naming the steps an epoch and the time (pure).

    The throughput is the one measured on the same images (``measurements.forward_images_per_s``
    at ``forward_image_size``); without it the Config is returned unchanged.
    """
    m = config.measurements
    if not m.forward_images_per_s or not m.forward_image_size:
        return config
    rate = dict(images_per_s=m.forward_images_per_s, measured_size=m.forward_image_size)
    schedule = heuristics.Schedule(config.head_epochs, config.unfrozen_epochs, config.image_size, n_train, n_valid)
    if budget_s is not None:
        fitted, why = heuristics.fit_to_budget(schedule, budget_s, **rate)
        if fitted != schedule:
            config = config.replace(reason=why, head_epochs=fitted.head_epochs, unfrozen_epochs=fitted.unfrozen_epochs,
                                    image_size=fitted.image_size)
            schedule = fitted
    seconds = heuristics.TimeModel().seconds(schedule, **rate)
    steps = heuristics.steps_per_epoch(n_train, config.batch_size)
    took = f"training takes about {heuristics.format_duration(seconds)} on this machine"
    counted = f"{steps} steps an epoch ({n_train} training images in batches of {config.batch_size}); {took}"

    def noted(field: str) -> str:      # a step rule's reason counts the steps already
        why = config.reasons[field]
        return f"{why}; {took}" if f"{steps} steps an epoch" in why else f"{why}; {counted}"
    reasons = {**config.reasons, "head_epochs": noted("head_epochs")}
    if config.unfrozen_epochs:
        reasons["unfrozen_epochs"] = noted("unfrozen_epochs")
    return dataclasses.replace(config, reasons=reasons, measurements=m.replace(train_time_s=seconds))


def advise(dataset_path: "str | Path | data.Dataset", options: AdviseOptions | None = None,
           **overrides: Any) -> Recommendation:
    """Run the whole pipeline and keep every intermediate result.

    ``dataset_path``: a dataset folder or CSV, or a :class:`~finetune_advisor.data.Dataset`
    already read (e.g. a subsample; the reading options are then unused). ``options`` (an
    :class:`AdviseOptions`) and/or keyword ``overrides`` of its fields.
    """
    opts = AdviseOptions.build(options, **overrides)
    log.debug("importing torch and fastai...")      # seconds, the first time
    from fastai.torch_core import set_seed

    profile_why = None
    if opts.profile == AUTO_PROFILE:                # the machine decides: paper on a GPU, cpu otherwise
        name, profile_why = auto_profile()
        opts = opts.replace(profile=name)
        log.debug("%s", profile_why)

    seed = opts.seed
    set_seed(seed, reproducible=True)  # random-init backbones, head init, augmentation: same seed, same advice
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    dataset = dataset_path if isinstance(dataset_path, data.Dataset) else \
        data.read_dataset(dataset_path, **opts.read_kwargs())
    dataset_profile = data.profile_dataset(dataset)
    if dataset_profile.n_corrupt >= dataset_profile.n_headers_read > 0:  # nothing to measure or train on
        raise DatasetError(f"none of the {dataset_profile.n_images} images in {dataset.root} can be read "
                           f"(e.g. {dataset_profile.corrupt_examples[0]})", path=dataset.root,
                           hint="check the image files: corrupt, truncated, refused as too large, or not images")
    timings["profile"] = time.perf_counter() - clock

    if opts.backbone is None:
        arch, arch_reason = heuristics.choose_architecture(dataset_profile)
    else:
        arch, arch_reason = opts.backbone, "set by user"
    clock = time.perf_counter()
    bb = create_backbone(arch, weights=opts.weights, pretrained=opts.pretrained, fallback=opts.fallback)
    if bb.fallback_from is not None:    # say what is used first; the rule's choice second
        arch_reason = (f"the shipped ImageNet {bb.name}, because {bb.fallback_from} weights are unavailable here "
                       f"(pass --weights or go online for {bb.fallback_from}; {arch_reason})")
    # what train() rebuilds: the backbone actually used, or the name / full module:function spec
    backbone_name = bb.name if (bb.fallback_from or callable(arch)) else arch
    timings["backbone"] = time.perf_counter() - clock

    sim_result = None
    decode_failed: set[str] = set()  # images whose pixels did not decode (the headers did)
    if opts.similarity:
        from .similarity import dataset_similarity, get_reference

        clock = time.perf_counter()
        try:
            ref = get_reference(bb, path=opts.reference)
        except SimilarityReferenceError as exc:   # the way on without one: similarity is one input of many
            raise SimilarityReferenceError(exc.message, path=exc.path,
                                           hint=_or_skip_it(exc.hint, "--no-similarity (similarity=False)")) from None
        sim_result = dataset_similarity(dataset, bb, ref, threshold=opts.threshold, max_images=opts.max_images,
                                        bootstrap=opts.bootstrap, seed=seed, progress=opts.progress)
        log.debug("similarity %.3f (raw EMD %.4f) with %s", sim_result.similarity, sim_result.emd, bb.key)
        decode_failed.update(sim_result.failed_paths)
        timings["similarity"] = time.perf_counter() - clock

    lr_result, lr_failed, transfer, cache = None, None, None, None
    if opts.lr_finder:
        clock = time.perf_counter()
        spec = range_test_spec(dataset_profile, opts)
        set_seed(seed, reproducible=True)  # head init and augmentation: same seed, same LR
        try:
            if opts.finder_method == "cached":
                log.info("LR range test on cached %s features (%d px, batch %d)...", bb.name, spec.image_size,
                         spec.batch_size)
                cache = cache_features(dataset, bb, spec, seed=seed, progress=opts.progress)
                decode_failed.update(cache.failed_paths)
                timings["features"] = time.perf_counter() - clock
                lr_result = find_lr_cached(cache, spec, loss=opts.lr_loss, num_it=opts.lr_steps,
                                           seed=seed, progress=opts.progress)
                transfer = transferability_of(cache, seed=seed)
            else:
                learn = build_learner(spec, dataset, backbone=bb, seed=seed)
                log.info("LR range test on the frozen %s (%d px, batch %d)...", bb.name, spec.image_size,
                         spec.batch_size)
                decode_failed.update(learn.dls.unreadable)
                with learn.no_bar():  # fastai would draw one bar per tiny epoch of the sweep
                    lr_result = find_lr(learn, loss=opts.lr_loss, num_it=opts.lr_steps, seed=seed,
                                        progress=opts.progress)
        except LRFinderError as exc:  # name the dataset and the CLI's way out
            lr_failed = f"LR range test on {dataset.root} failed: {exc.message}"
            if not opts.lr_finder_fallback:
                hint = _ADVISE_LR_HINTS.get(exc.hint, exc.hint)
                raise LRFinderError(lr_failed, path=dataset.root,
                                    hint=_or_skip_it(hint, "--no-lr-finder (lr_finder=False) to use the study's "
                                                           "default learning rate")) from None
            log.warning("%s; using the study's default learning rate", lr_failed)
        timings["lr_finder"] = time.perf_counter() - clock

    if decode_failed:  # found while embedding or loading: count them with the header failures
        dataset_profile = data.add_decode_failures(dataset_profile, decode_failed)

    measured = Measurements(similarity=None if sim_result is None else sim_result.without_paths(),
                            lr_finder=None if lr_result is None else lr_result.summary(),
                            lr_finder_failed=lr_failed, backbone_source=bb.source, transferability=transfer,
                            timings_s={k: round(v, 2) for k, v in timings.items()},
                            forward_images_per_s=None if cache is None or not cache.images_per_s
                            else round(cache.images_per_s, 2),
                            forward_image_size=None if cache is None else cache.image_size)
    policy, calibration, note = resolve_policy(opts, bb.key, pretrained=bb.pretrained)
    if note:
        log.warning("%s", note)
    config = configure(dataset_profile, measured, opts, backbone=backbone_name, backbone_reason=arch_reason,
                       calibration=calibration, policy_note=note)
    if profile_why:
        config = dataclasses.replace(config, reasons={**config.reasons,
                                                      "profile": f"{profile_why}, so {config.reasons['profile']}"})
    if cache is not None and cache.images_per_s:
        config = with_time_estimate(config, n_train=len(cache.train_y), n_valid=len(cache.valid_y),
                                    budget_s=None if opts.budget is None else heuristics.parse_duration(opts.budget))
    return Recommendation(config=config, profile=dataset_profile, dataset=dataset, similarity=sim_result,
                          lr_finder=lr_result, backbone=bb, timings=timings, options=opts)
