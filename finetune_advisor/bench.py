"""The study's sweep over the reference datasets: resumable, distributable, summarised.

For each dataset and data fraction the baseline is the recommended :class:`Config`
(computed once and cached in the study); around it, Table 1's values are varied one at a
time, plus three anchors (fastai's stock ``fine_tune``, fastai's ``lr_find`` valley, and our
recommendation without the /10 similarity rule), each repeated over seeds.

Trials live in an Optuna study (SQLite file by default; a PostgreSQL URL lets several
machines share one study). The whole trial list is enqueued once; each worker claims the next
WAITING trial (``Study.ask`` inside ``Study.optimize``, an atomic state change in the RDB
storage), trains and ``tell``s. Killed workers' trials go stale through the heartbeat and are
re-queued (``RetryHeartbeatStaleTrialCallback``); finished trials are never recomputed, and no
trial key ever has two COMPLETE trials.

>>> from finetune_advisor.bench import expand_grid
>>> from finetune_advisor.config import Config
>>> base = Config(profile="cpu", lr=1e-3, lr_finetune=1e-4, measurements={"lr_find": 1e-3, "far": False})
>>> specs = expand_grid({("pets", 0.2): base}, seeds=[0])
>>> [s.label for s in specs][:3]
['baseline', 'lr x10^-1', 'lr x10^-0.5']
>>> sum(s.same_as is None for s in specs)       # distinct configs actually trained
14
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .config import Config
from .exceptions import ConfigError, DatasetError, FinetuneAdvisorError

log = logging.getLogger(__name__)

__all__ = [
    "ReferenceDataset", "REFERENCE_DATASETS", "BenchDataset", "resolve_datasets", "shared_data_dir",
    "default_reference",
    "BenchProfile", "BENCH_PROFILES", "GRID", "LR_EXPONENTS", "FRACTIONS", "ANCHORS",
    "TrialSpec", "variation_config", "anchor_config", "expand_grid",
    "open_study", "prepare_study", "run_worker", "run_bench", "study_status",
    "custom_profile", "select_grid", "select_anchors", "results_table", "improvement_table", "plot_heatmap", "regret_summary", "write_outputs",
    "fraction_subset", "train_trial", "advise_baseline",
]

BENCH_VERSION = 1
SHARED_DATA_ENV = "FINETUNE_ADVISOR_SHARED_DATA"
DATA_ENV_PREFIX = "FINETUNE_ADVISOR_DATA_"     # e.g. FINETUNE_ADVISOR_DATA_PETS=/data/oxford-pets

# --- registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceDataset:
    """One of the study's seven datasets: where it comes from and which sample stands in here."""

    name: str
    title: str
    multi_label: bool
    source: str                 # official source of the full dataset
    standin: str | None         # folder under the shared data dir, None when there is none
    group: str = "study"        # "study": the study's seven; "shared": the other shared datasets
    smoke_test: bool = False    # a sample too small to measure anything: run it, never fit on it

    @property
    def label_type(self) -> str:
        return "multi-label" if self.multi_label else "single-label"

    @property
    def env_var(self) -> str:
        return DATA_ENV_PREFIX + self.name.upper()


REFERENCE_DATASETS: dict[str, ReferenceDataset] = {d.name: d for d in (
    ReferenceDataset("amazon", "Planet: Understanding the Amazon from Space", True,
                     "https://www.kaggle.com/c/planet-understanding-the-amazon-from-space", "planet-amazon",
                     smoke_test=True),
    ReferenceDataset("cancer", "HAM10000 skin lesions", False,
                     "https://doi.org/10.7910/DVN/DBW86T", "cancer-ham10000"),
    ReferenceDataset("dota", "DOTA aerial objects (crops)", False,
                     "https://captain-whu.github.io/DOTA/", "dota-crops"),
    ReferenceDataset("draw", "Quick, Draw!", False,
                     "https://github.com/googlecreativelab/quickdraw-dataset", "draw-quickdraw"),
    ReferenceDataset("pets", "Oxford-IIIT Pet", False,
                     "https://www.robots.ox.ac.uk/~vgg/data/pets/", "pets-oxford"),
    ReferenceDataset("protein", "Human Protein Atlas Image Classification", True,
                     "https://www.kaggle.com/c/human-protein-atlas-image-classification", "protein-hpa"),
    ReferenceDataset("xray", "NIH ChestX-ray14", True,
                     "https://nihcc.app.box.com/v/ChestXray-NIHCC", "xray-nih"),
    # The other real datasets of the shared data, from near ImageNet to far (its README).
    *(ReferenceDataset(name, title, False, source, standin, group="shared") for name, title, source, standin in (
        ("flowers", "TensorFlow flower photos", "https://www.tensorflow.org/datasets/catalog/tf_flowers", "flowers-tf"),
        ("mri", "Brain tumour MRI", "https://github.com/SartajBhuvaji/Brain-Tumor-Classification-DataSet",
         "brain-tumor-mri"),
        ("blood", "BCCD blood-smear cells", "https://github.com/Shenggan/BCCD_Dataset", "blood-cells-bccd"),
        ("scenes", "Intel Image Classification (scenes)", "https://www.kaggle.com/datasets/puneet6060/intel-image-classification",
         "intel-scenes"),
        ("imagenette", "Imagenette (10 ImageNet classes)", "https://github.com/fastai/imagenette", "imagenette-160"),
        ("food", "Food-101, 10 classes", "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/", "food101-10"),
        ("caltech", "Caltech-101, 12 classes", "https://data.caltech.edu/records/mzrjq-6wc02", "caltech101-12"),
        ("eurosat", "EuroSAT RGB", "https://github.com/phelber/EuroSAT", "eurosat-rgb"),
        ("tomato", "PlantVillage tomato leaves", "https://github.com/spMohanty/PlantVillage-Dataset",
         "plantvillage-tomato"),
    )),
)}
ALL_DATASETS = "all"        # resolve_datasets(["all"]): every registered dataset, not only the study's seven


@dataclass(frozen=True)
class BenchDataset:
    """A dataset resolved for a run: ``path`` is None (and ``origin == "missing"``) when absent."""

    name: str
    path: Path | None
    multi_label: bool | None
    origin: str                 # "user" | "stand-in" | "custom" | "missing"
    note: str = ""

    @property
    def available(self) -> bool:
        return self.path is not None


def shared_data_dir() -> Path:
    """``$FINETUNE_ADVISOR_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


REFERENCE_STANDIN = "tiny-imagenet-200"        # the similarity reference's sample in the shared data


def default_reference(shared_data: str | os.PathLike | None = None) -> Path | None:
    """The shared Tiny-ImageNet sample when it is there (the stand-ins' reference), else None:
    :func:`finetune_advisor.similarity.get_reference` then uses the cache or the official archive."""
    folder = Path(shared_data) if shared_data is not None else shared_data_dir()
    folder = folder / REFERENCE_STANDIN
    return folder if folder.is_dir() else None


def resolve_datasets(names: Iterable[str] | None = None, *, paths: Mapping[str, str | os.PathLike] | None = None,
                     extra: Mapping[str, str | os.PathLike] | None = None,
                     shared_data: str | os.PathLike | None = None) -> list[BenchDataset]:
    """Resolve reference datasets (and the user's own) to folders.

    A reference dataset's folder is, in order: ``paths[name]``, ``$FINETUNE_ADVISOR_DATA_<NAME>``,
    the stand-in under ``shared_data`` (default :func:`shared_data_dir`); otherwise it is
    reported as ``missing`` (never faked). ``extra`` maps names of the user's own datasets
    to their paths.

    >>> ds = resolve_datasets(["amazon"], shared_data="/nonexistent")
    >>> ds[0].origin, ds[0].path
    ('missing', None)
    """
    paths = dict(paths or {})
    if names is None:
        names = [n for n, d in REFERENCE_DATASETS.items() if d.group == "study"]
    else:
        names = [n.lower() for n in names]
        if ALL_DATASETS in names:
            names = list(REFERENCE_DATASETS) + [n for n in names if n != ALL_DATASETS and n not in REFERENCE_DATASETS]
    unknown = [n for n in names if n not in REFERENCE_DATASETS and n not in (extra or {})]
    if unknown:
        raise ConfigError(f"unknown reference dataset(s) {unknown}; choose from {sorted(REFERENCE_DATASETS)} "
                          f"or {ALL_DATASETS!r}",
                          hint="add your own with extra={'name': path} (CLI: --dataset name=PATH)")
    shared = Path(shared_data) if shared_data is not None else shared_data_dir()
    out: list[BenchDataset] = []
    for name in names:
        if name not in REFERENCE_DATASETS:
            continue
        ref = REFERENCE_DATASETS[name]
        given = paths.get(name) or os.environ.get(ref.env_var)
        if given:
            p = Path(given)
            if not p.exists():
                raise DatasetError(f"the {name} dataset path does not exist", path=p,
                                   hint=f"fix {ref.env_var} or the --data-path {name}=PATH argument")
            out.append(BenchDataset(name, p, ref.multi_label, "user"))
        elif ref.standin and (shared / ref.standin).is_dir():
            note = f"small sample standing in for {ref.title}"
            if ref.smoke_test:
                note += " (a format smoke test: too small to fit on)"
            out.append(BenchDataset(name, shared / ref.standin, ref.multi_label, "stand-in", note))
        else:
            out.append(BenchDataset(name, None, ref.multi_label, "missing",
                                    f"no copy of {ref.title}: set {ref.env_var} (source: {ref.source})"))
    for name, p in (extra or {}).items():
        p = Path(p)
        if not p.exists():
            raise DatasetError(f"dataset {name!r} path does not exist", path=p)
        out.append(BenchDataset(name, p, None, "custom"))
    return out


# --- protocol -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchProfile:
    """Training schedule of a run; ``None`` keeps the recommendation's value."""

    name: str
    config_profile: str                  # Config.profile ("cpu" | "paper")
    image_size: int | None
    head_epochs: int | None
    unfrozen_epochs: int | None
    batch_size: int | None
    max_images_per_class: int | None

    def apply(self, config: Config) -> Config:
        changes = {k: getattr(self, k) for k in ("image_size", "head_epochs", "unfrozen_epochs", "batch_size")
                   if getattr(self, k) is not None}
        changes["profile"] = self.config_profile
        return _replace(config, f"bench profile {self.name!r}", **changes)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


BENCH_PROFILES: dict[str, BenchProfile] = {
    "cpu": BenchProfile("cpu", "cpu", image_size=64, head_epochs=2, unfrozen_epochs=2, batch_size=None,
                        max_images_per_class=100),
    "paper": BenchProfile("paper", "paper", image_size=224, head_epochs=5, unfrozen_epochs=15, batch_size=64,
                          max_images_per_class=None),
}

_SCHEDULE_FIELDS = tuple(f.name for f in dataclasses.fields(BenchProfile) if f.name not in ("name", "config_profile"))


def custom_profile(base: str | BenchProfile, **overrides: int | None) -> BenchProfile:
    """``base`` with some schedule fields replaced (``None`` values are ignored); its name
    records the changes, so a study's stored settings tell the schedules apart.

    >>> custom_profile("cpu", head_epochs=5, unfrozen_epochs=15).name
    'cpu+head_epochs=5,unfrozen_epochs=15'
    """
    prof = BENCH_PROFILES[base] if isinstance(base, str) else base
    changes = {k: int(v) for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(_SCHEDULE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown bench profile field(s) {sorted(unknown)}; choose from {list(_SCHEDULE_FIELDS)}")
    if any(v < 0 or (v == 0 and k not in ("head_epochs", "unfrozen_epochs")) for k, v in changes.items()):
        raise ConfigError(f"bench profile values must be positive (epochs may be 0): {changes}")
    if not changes:
        return prof
    name = prof.name + "+" + ",".join(f"{k}={v}" for k, v in sorted(changes.items()))
    return dataclasses.replace(prof, name=name, **changes)


LR_EXPONENTS = (-1.0, -0.5, 0.0, 0.5, 1.0)        # lr = LR-finder rate x 10^k
GRID: dict[str, tuple[float, ...]] = {            # Table 1, each varied alone around the baseline
    "lr": LR_EXPONENTS,
    "lr_divisor": (10.0, 5.0, 3.0),
    "weight_decay": (1e-2, 1e-1, 0.0),
    "beta2": (0.9, 0.95, 0.99),
    "dropout_p1": (0.75, 0.5, 0.25),
}
# The calibration sweep: absolute head learning rates (no finder involved) x fine-tune depth x the
# unfrozen phase's rate relative to the head's. Values are log10(lr). "head" trains the head alone
# for the whole epoch budget (head + unfrozen epochs), so every cell costs the same epochs.
CALIBRATION_LOG10_LRS = (-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0)
CALIBRATION_ARMS: dict[str, tuple[str, float | None]] = {     # parameter -> (fine_tune, lr_finetune / lr)
    "lr_head_only": ("none", None),
    "lr_all_half": ("all", 0.5),
    "lr_all_tenth": ("all", 0.1),
}
CALIBRATION_GRID: dict[str, tuple[float, ...]] = {arm: CALIBRATION_LOG10_LRS for arm in CALIBRATION_ARMS}
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {"table1": GRID, "calibration": CALIBRATION_GRID}
FRACTIONS = (0.2, 1.0)
ANCHORS = ("fastai_fine_tune", "lr_find_valley", "no_similarity_rule")
FASTAI_BASE_LR = 2e-3
LR_FAR_DIVISOR = 10.0                             # heuristics.LR_FAR_DIVISOR (kept in sync by a test)


def _check_names(kind: str, names: Iterable[str], choices: Sequence[str]) -> None:
    bad = [n for n in names if n not in choices]
    if bad:
        raise ConfigError(f"unknown {kind}(s) {', '.join(bad)}", hint=f"choose from {', '.join(choices)}")


def select_grid(parameters: Sequence[str] | None = None, grid: str = "table1") -> dict[str, tuple[float, ...]]:
    """The part of grid ``grid`` (:data:`GRIDS`) that varies ``parameters`` (None: all of
    it; empty: baselines and anchors only).

    >>> select_grid(["weight_decay"])
    {'weight_decay': (0.01, 0.1, 0.0)}
    >>> list(select_grid(grid="calibration"))
    ['lr_head_only', 'lr_all_half', 'lr_all_tenth']
    """
    _check_names("grid", [grid], list(GRIDS))
    table = GRIDS[grid]
    if parameters is None:
        return dict(table)
    _check_names("parameter", parameters, list(table))
    return {p: table[p] for p in parameters}


def select_anchors(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` checked against :data:`ANCHORS`."""
    _check_names("anchor", names, ANCHORS)
    return tuple(names)


def _label(parameter: str, value: Any) -> str:
    if parameter == "baseline":
        return "baseline"
    if parameter == "anchor":
        return f"anchor:{value}"
    if parameter == "lr":
        return "lr x10^0" if float(value) == 0 else f"lr x10^{float(value):+g}"
    return f"{parameter}={float(value):g}"


def _replace(config: Config, reason: str, **changes: Any) -> Config:
    """``config.replace`` (changed fields get ``reason``); a Config without reasons stays so."""
    if not config.reasons:
        return dataclasses.replace(config, **changes)
    return config.replace(reason=reason, **changes)


def _finder_rate(baseline: Config) -> float:
    """The LR-finder rate the baseline rests on (the recommendation before the /10 far rule)."""
    far = bool(baseline.measurements.get("far"))
    return baseline.lr * LR_FAR_DIVISOR if far else baseline.lr


def _with_lr(baseline: Config, lr: float, reason: str) -> Config:
    ratio = baseline.lr_finetune / baseline.lr if baseline.lr else 0.1
    return _replace(baseline, reason, lr=float(lr), lr_finetune=float(lr * ratio))


def variation_config(baseline: Config, parameter: str, value: float) -> Config:
    """``baseline`` with one Table 1 value changed (``lr``: ``value`` is the exponent k).

    >>> base = Config(lr=1e-3, lr_finetune=1e-4, measurements={"far": True})
    >>> cfg = variation_config(base, "lr", 1.0)       # finder rate 1e-2 (before /10) x 10
    >>> round(cfg.lr, 6), round(cfg.lr_finetune, 6)
    (0.1, 0.01)
    >>> variation_config(base, "dropout_p1", 0.25).dropout
    (0.25, 0.25)
    """
    why = f"bench: {_label(parameter, value)}"
    if parameter == "lr":
        return _with_lr(baseline, _finder_rate(baseline) * 10.0 ** float(value), why)
    if parameter == "dropout_p1":
        return _replace(baseline, why, dropout=(float(value), baseline.dropout[1]))
    if parameter in ("lr_divisor", "weight_decay", "beta2"):
        return _replace(baseline, why, **{parameter: float(value)})
    if parameter in CALIBRATION_ARMS:
        return calibration_config(baseline, parameter, float(value))
    raise ConfigError(f"unknown bench parameter {parameter!r}; choose from {sorted(GRID) + sorted(CALIBRATION_GRID)}")


def calibration_config(baseline: Config, arm: str, log10_lr: float) -> Config:
    """``baseline`` trained with head rate ``10**log10_lr`` in calibration ``arm`` (same epochs).

    >>> base = Config(lr=1e-3, lr_finetune=1e-4, head_epochs=2, unfrozen_epochs=2)
    >>> c = calibration_config(base, "lr_all_half", -2.0)
    >>> c.lr, c.lr_finetune, c.fine_tune, c.head_epochs, c.unfrozen_epochs
    (0.01, 0.005, 'all', 2, 2)
    >>> c = calibration_config(base, "lr_head_only", -3.0)
    >>> c.fine_tune, c.head_epochs, c.unfrozen_epochs
    ('none', 4, 0)
    """
    fine_tune, ratio = CALIBRATION_ARMS[arm]
    lr = 10.0 ** log10_lr
    why = f"bench: {_label(arm, log10_lr)}"
    if fine_tune == "none":
        return _replace(baseline, why, lr=lr, lr_finetune=lr, fine_tune="none", unfrozen_epochs=0,
                        head_epochs=baseline.head_epochs + baseline.unfrozen_epochs)
    return _replace(baseline, why, lr=lr, lr_finetune=lr * ratio, fine_tune=fine_tune)


def anchor_config(baseline: Config, anchor: str) -> Config | None:
    """An anchor in the same protocol (image size, schedule, batch) as ``baseline``; None if
    it cannot be formed (no fastai valley measured).

    ``fastai_fine_tune``: fastai's defaults, ``fine_tune(base_lr=2e-3)``: head at 2e-3, then
    unfrozen at base_lr/2 with ``lr_mult=100`` (slice(1e-5, 1e-3)), wd 0.01, head ps (0.25, 0.5).
    ``lr_find_valley``: the baseline with fastai's ``lr_find`` valley as the rate.
    ``no_similarity_rule``: the baseline without the /10 far-from-ImageNet rule.
    """
    why = f"bench anchor {anchor}"
    if anchor == "fastai_fine_tune":
        return _replace(baseline, why, lr=FASTAI_BASE_LR, lr_finetune=FASTAI_BASE_LR / 2, lr_divisor=100.0,
                                weight_decay=0.01, beta2=0.99, dropout=(0.25, 0.5), fine_tune="all")
    if anchor == "lr_find_valley":
        valley = (baseline.measurements.get("lr_finder") or {}).get("fastai_valley")
        return None if not valley else _with_lr(baseline, float(valley), why)
    if anchor == "no_similarity_rule":
        return _with_lr(baseline, _finder_rate(baseline), why)
    raise ConfigError(f"unknown anchor {anchor!r}; choose from {list(ANCHORS)}")


def _same_config(a: Config, b: Config) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        for k in ("reasons", "measurements", "warnings"):
            d.pop(k)
    if da.keys() != db.keys():
        return False
    for k in da:
        x, y = da[k], db[k]
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15):
                return False
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y) or any(not math.isclose(float(p), float(q), rel_tol=1e-9) for p, q in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


@dataclass(frozen=True)
class TrialSpec:
    """One cell x seed of the sweep. ``same_as`` names the key of an identical config that is
    trained instead (e.g. ``weight_decay=0.1`` is the baseline); such specs are not enqueued."""

    dataset: str
    fraction: float
    parameter: str              # "baseline" | a GRID key | "anchor"
    value: Any                  # float, or the anchor name
    seed: int
    config: Config = field(compare=False, repr=False)
    same_as: str | None = None

    @property
    def label(self) -> str:
        return _label(self.parameter, self.value)

    @property
    def key(self) -> str:
        return trial_key(self.dataset, self.fraction, self.label, self.seed)

    def user_attrs(self) -> dict[str, Any]:
        return {"key": self.key, "dataset": self.dataset, "fraction": float(self.fraction),
                "parameter": self.parameter, "value": self.value, "label": self.label, "seed": int(self.seed),
                "config": self.config.to_json(indent=None), "bench_version": BENCH_VERSION}


def trial_key(dataset: str, fraction: float, label: str, seed: int) -> str:
    return f"{dataset}|{float(fraction):g}|{label}|{int(seed)}"


def expand_grid(baselines: Mapping[tuple[str, float], Config], *, seeds: Sequence[int] = (0, 1, 2),
                grid: Mapping[str, Sequence[float]] | None = None,
                anchors: Sequence[str] = ANCHORS) -> list[TrialSpec]:
    """The full, deterministic trial list (pure).

    Per (dataset, fraction) in the order given and per seed: the baseline, each ``grid``
    value in order, then the anchors. A spec whose config equals an earlier one of the same
    (dataset, fraction, seed) gets ``same_as`` = that spec's key and is not trained again.
    """
    grid = GRID if grid is None else grid
    specs: list[TrialSpec] = []
    for (name, fraction), base in baselines.items():
        for seed in seeds:
            block: list[TrialSpec] = []

            def add(parameter: str, value: Any, cfg: Config | None) -> None:
                if cfg is None:
                    return
                same = next((s.key for s in block if s.same_as is None and _same_config(s.config, cfg)), None)
                block.append(TrialSpec(name, float(fraction), parameter, value, int(seed), cfg, same))

            add("baseline", None, base)
            for parameter, values in grid.items():
                for v in values:
                    add(parameter, float(v), variation_config(base, parameter, float(v)))
            for a in anchors:
                add("anchor", a, anchor_config(base, a))
            specs.extend(block)
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ConfigError("duplicate trial keys in the grid (repeated dataset, fraction or seed?)")
    return specs


# --- data and training ----------------------------------------------------------------------

def fraction_subset(dataset, fraction: float, seed: int = 0):
    """A stratified (by first label) ``fraction`` of ``dataset`` (at least 1 image per class),
    the same for every trial: the seed is the run's data seed, not the trial's."""
    import numpy as np

    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    if fraction >= 1:
        return dataset
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(dataset.items):
        groups.setdefault(it.labels[0] if it.labels else "", []).append(i)
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for label in sorted(groups):
        idx = groups[label]
        n = max(1, int(math.ceil(fraction * len(idx))))
        kept.extend(idx[j] for j in sorted(rng.permutation(len(idx))[:n]))
    return dataclasses.replace(dataset, items=tuple(dataset.items[i] for i in sorted(kept)))


_DATASETS: dict[str, Any] = {}
_ADVICE: dict[tuple, Any] = {}


def _read(path: Path):
    key = str(path)
    if key not in _DATASETS:
        from .data import read_dataset
        _DATASETS[key] = read_dataset(path)
    return _DATASETS[key]


def advise_baseline(dataset: BenchDataset, fraction: float, profile: BenchProfile,
                    options: Mapping[str, Any] | None = None) -> Config:
    """The recommended Config for ``fraction`` of ``dataset`` under ``profile``.

    Similarity and the LR range test are measured once on the whole dataset (cached per
    process); the profile-dependent rules (batch size, head, fine-tune depth) are then re-run
    on the subset's profile. ``options`` go to :func:`finetune_advisor.recommend.advise`; without
    a ``reference`` there, the shared Tiny-ImageNet sample is used when present
    (:func:`default_reference`).
    """
    from . import heuristics
    from .data import profile_dataset
    from .recommend import advise

    opts = {k: v for k, v in (options or {}).items() if v is not None}
    opts.setdefault("progress", False)
    if opts.get("similarity", True) and "reference" not in opts:
        ref = default_reference()
        if ref is not None:
            opts["reference"] = str(ref)
    ck = (str(dataset.path), profile.config_profile, json.dumps(opts, sort_keys=True, default=str))
    if ck not in _ADVICE:
        # A range test that cannot suggest a rate: what its error tells a user to do
        # (--no-lr-finder), the study's default rate, recorded as measurements["lr_finder_failed"].
        _ADVICE[ck] = advise(dataset.path, profile=profile.config_profile, lr_finder_fallback=True, **opts)
    rec = _ADVICE[ck]
    cfg = rec.config
    if fraction < 1:
        sub = fraction_subset(rec.dataset, fraction)
        m = cfg.measurements
        keep = {k: v for k, v in m.items()
                if k in ("timings_s", "backbone_source", "similarity", "lr_finder", "lr_finder_failed")}
        keep["fraction"] = float(fraction)
        cfg = heuristics.recommend_config(
            profile_dataset(sub), similarity=None if rec.similarity is None else rec.similarity.similarity,
            far=m.get("far"), threshold=m.get("similarity_threshold", heuristics.SIMILARITY_THRESHOLD),
            lr_find=m.get("lr_find"), backbone=cfg.backbone, backbone_reason=cfg.reasons.get("backbone"),
            profile_name=profile.config_profile, measurements=keep)
    return profile.apply(cfg)


def train_trial(config: Config, dataset: BenchDataset, *, fraction: float, seed: int,
                profile: BenchProfile) -> dict[str, Any]:
    """Default ``run_trial_fn``: :func:`finetune_advisor.train.train` on the fraction."""
    from .train import train

    ds = fraction_subset(_read(dataset.path), fraction)
    res = train(config, ds, seed=seed, progress=False, max_images_per_class=profile.max_images_per_class)
    metric = res.main_metric
    hist = res.history
    best = int(hist[metric].astype(float).values.argmax()) + 1 if len(hist) and metric in hist else 0
    return {"metric": float(res.final_metrics[metric]), "metric_name": metric,
            "valid_loss": float(res.final_metrics.get("valid_loss", float("nan"))),
            "best_metric": float(hist[metric].max()) if best else float("nan"),
            "epochs_to_best": best, "wall_time_s": float(res.wall_time_s),
            # multi-label: a ranking metric beside accuracy_multi, which the all-negative answer wins
            "roc_auc_macro": float(res.final_metrics.get("roc_auc_macro", float("nan"))),
            "n_train": res.n_train, "n_valid": res.n_valid, "backbone_used": res.backbone}


# --- study ----------------------------------------------------------------------------------

def _default_storage(out_dir: str | os.PathLike | None, study_name: str) -> str:
    folder = Path(out_dir) if out_dir else Path("bench") / study_name
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'bench.db').resolve()}"


def open_study(study_name: str, storage: str | None = None, *, out_dir: str | os.PathLike | None = None,
               heartbeat_interval: int = 60, grace_period: int | None = None, max_retry: int = 3,
               create: bool = True):
    """Create or reopen (``load_if_exists``) the study on an RDB storage with heartbeats."""
    import optuna

    url = storage or _default_storage(out_dir, study_name)
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ConfigError(f"storage must be an SQLAlchemy URL (sqlite:///file.db or postgresql://...), got {url!r}")
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else None
    grace = grace_period or 2 * heartbeat_interval
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
            grace_period=grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
    if create:
        study = optuna.create_study(study_name=study_name, storage=rdb, direction="maximize", load_if_exists=True)
    else:
        try:
            study = optuna.load_study(study_name=study_name, storage=rdb)
        except KeyError:
            raise ConfigError(f"no study named {study_name!r} in {url}",
                              hint="start it with 'finetune-advisor bench run' (Python: run_bench)") from None
    _STORAGES[study] = (rdb, url, heartbeat_interval, grace)
    return study


_STORAGES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _Heartbeat:
    """Record a trial's heartbeat every ``interval`` s (public ``RDBStorage.record_heartbeat``)."""

    def __init__(self, rdb, trial_id: int, interval: float):
        self.rdb, self.trial_id, self.interval = rdb, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            try:
                self.rdb.record_heartbeat(self.trial_id)
            except Exception as exc:  # keep training; the trial may be retried if this persists
                log.debug("heartbeat failed: %s", exc)
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


CLAIM_ATTR = "claimed_as"      # a worker's mark: the trial number it claimed, set once its heartbeat runs


def _requeue_dead_trials(study, rdb, study_id: int, grace_period: float) -> None:
    """Fail the trials of dead workers and re-queue them (the storage's retry callback).

    Optuna's ``fail_stale_trials`` covers trials whose heartbeat went stale. A worker killed
    between claiming a trial and its first heartbeat leaves a RUNNING trial with no heartbeat,
    which Optuna never calls stale; such a trial has no :data:`CLAIM_ATTR` for its own number
    (a re-queued copy inherits its predecessor's) and is failed once older than the grace period.
    """
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "heartbeat is supposed to be used with Study.optimize"
        optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()       # the storage stamps datetime_start with the local clock
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(CLAIM_ATTR) == t.number or t.datetime_start is None:
            continue
        if (now - t.datetime_start).total_seconds() <= grace_period:
            continue
        trial_id = rdb.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if not rdb.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        log.warning("bench: trial %d (%s) was claimed by a worker that died before its first heartbeat; "
                    "re-queued", t.number, t.user_attrs.get("key"))
        retry = rdb.get_heartbeat_stale_trial_callback()
        if retry is not None:
            retry(study, rdb.get_trial(trial_id))


@contextlib.contextmanager
def _claim_lock(url: str):
    """SQLite: serialise ``ask()`` across processes with a file lock next to the database.

    Optuna's claim (read WAITING, then set RUNNING) is one locked transaction on PostgreSQL and
    MySQL (``SELECT ... FOR UPDATE``), but not on SQLite, where two processes can pop the same
    trial; the lock closes that gap. Other URLs: no lock."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        yield
        return
    import fcntl
    with open(url[len("sqlite:///"):] + ".claim.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _keys_by_state(study) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for t in study.get_trials(deepcopy=False):
        k = t.user_attrs.get("key")
        if k is not None:
            d = out.setdefault(k, {})
            d[t.state.name] = d.get(t.state.name, 0) + 1
    return out


def prepare_study(study, datasets: Sequence[BenchDataset], *, fractions: Sequence[float] = FRACTIONS,
                  seeds: Sequence[int] = (0, 1, 2), profile: str | BenchProfile = "cpu",
                  grid: Mapping[str, Sequence[float]] | None = None, anchors: Sequence[str] = ANCHORS,
                  advise_fn: Callable | None = None, advise_options: Mapping[str, Any] | None = None,
                  max_failures: int = 2) -> list[TrialSpec]:
    """Compute (or reuse) the baselines and enqueue every missing trial, idempotently.

    Baselines are cached as study user attrs (``baseline:<dataset>|<fraction>``). A trial is
    enqueued only when its key has no WAITING, RUNNING or COMPLETE trial (and fewer than
    ``max_failures`` FAIL ones), so a kill during enqueueing, a second run or a second worker
    adds nothing twice. Returns the full grid.
    """
    prof = BENCH_PROFILES[profile] if isinstance(profile, str) else profile
    advise_fn = advise_fn or advise_baseline
    attrs = study.user_attrs
    settings = {"fractions": [float(f) for f in fractions], "seeds": [int(s) for s in seeds],
                "profile": prof.to_dict(),
                "grid": {k: list(map(float, v)) for k, v in (GRID if grid is None else grid).items()},
                "anchors": list(anchors), "datasets": [d.name for d in datasets]}
    if "settings" in attrs and attrs["settings"] != settings:
        raise ConfigError("this study was started with other settings (datasets, fractions, seeds, profile or grid)",
                          hint=f"use a new study name, or rerun with the original settings: {attrs['settings']}")
    if "settings" not in attrs:
        study.set_user_attr("settings", settings)
    missing = [d for d in datasets if not d.available]
    study.set_user_attr("missing_datasets", {d.name: d.note for d in missing})
    study.set_user_attr("datasets", {d.name: {"path": str(d.path), "origin": d.origin,
                                              "multi_label": d.multi_label} for d in datasets if d.available})
    baselines: dict[tuple[str, float], Config] = {}
    failed: dict[str, str] = {}
    for d in datasets:
        if not d.available:
            log.warning("bench: %s is missing (%s); it is reported, not faked", d.name, d.note)
            continue
        for f in fractions:
            ak = f"baseline:{d.name}|{float(f):g}"
            if ak in attrs:
                baselines[(d.name, float(f))] = Config.from_json(attrs[ak])
            else:
                log.info("bench: recommending the baseline for %s at %g%% of the data", d.name, 100 * f)
                try:
                    cfg = advise_fn(d, float(f), prof, advise_options)
                except FinetuneAdvisorError as exc:  # one dataset's failure must not stop the others
                    failed[d.name] = f"{100 * f:g}% of the data: {exc.message}"
                    log.error("bench: no baseline for %s at %g%% of the data (%s); its trials are skipped "
                              "this run and retried on the next", d.name, 100 * f, exc.message)
                    continue
                study.set_user_attr(ak, cfg.to_json(indent=None))
                baselines[(d.name, float(f))] = cfg
    study.set_user_attr("failed_datasets", failed)
    specs = expand_grid(baselines, seeds=seeds, grid=grid, anchors=anchors)
    study.set_user_attr("aliases", {s.key: s.same_as for s in specs if s.same_as})
    study.set_user_attr("n_grid", sum(s.same_as is None for s in specs))
    if study.user_attrs.get("grid_enqueued") and not _needs_requeue(study, specs, max_failures):
        return specs
    have = _keys_by_state(study)
    n_new = 0
    # Seed-major order: a run cut short has every dataset at the first seeds, not all seeds of a few.
    for s in sorted(specs, key=lambda s: seeds.index(s.seed) if s.seed in seeds else 0):
        if s.same_as:
            continue
        st = have.get(s.key, {})
        if st.get("COMPLETE") or st.get("WAITING") or st.get("RUNNING") or st.get("FAIL", 0) >= max_failures:
            continue
        study.enqueue_trial({}, user_attrs=s.user_attrs())
        n_new += 1
    study.set_user_attr("grid_enqueued", True)
    log.info("bench: enqueued %d trial(s); grid has %d", n_new, study.user_attrs["n_grid"])
    return specs


def _needs_requeue(study, specs: Sequence[TrialSpec], max_failures: int) -> bool:
    have = _keys_by_state(study)
    for s in specs:
        if s.same_as:
            continue
        st = have.get(s.key, {})
        if not (st.get("COMPLETE") or st.get("WAITING") or st.get("RUNNING")) and st.get("FAIL", 0) < max_failures:
            return True
    return False


def _datasets_of(study, datasets: Sequence[BenchDataset] | None) -> dict[str, BenchDataset]:
    out = {d.name: d for d in (datasets or []) if d.available}
    for name, info in (study.user_attrs.get("datasets") or {}).items():
        if name not in out:
            out[name] = BenchDataset(name, Path(info["path"]), info.get("multi_label"), info.get("origin", "custom"))
    return out


def run_worker(study, *, run_trial_fn: Callable | None = None, datasets: Sequence[BenchDataset] | None = None,
               n_trials: int | None = None, progress: bool = True) -> int:
    """Claim and run WAITING trials until none is left (or ``n_trials`` ran); return how many ran.

    Trials of killed workers are failed first and re-queued by the storage's
    ``RetryHeartbeatStaleTrialCallback`` (see :func:`_requeue_dead_trials`). Each trial is
    claimed with ``study.ask()`` (under a file lock on SQLite, see :func:`_claim_lock`), gets
    its first heartbeat and :data:`CLAIM_ATTR` at once, keeps a heartbeat while it trains, and
    is finished with ``study.tell``. A claimed trial whose key is
    already COMPLETE, or RUNNING under a lower number, is pruned unrun.
    """
    import optuna
    from optuna.trial import TrialState

    if study not in _STORAGES:
        raise ConfigError("run_worker needs a study from bench.open_study (RDB storage with heartbeats)")
    rdb, url, interval, grace = _STORAGES[study]
    study_id = rdb.get_study_id_from_name(study.study_name)
    run_trial_fn = run_trial_fn or train_trial
    prof_d = (study.user_attrs.get("settings") or {}).get("profile")
    prof = BenchProfile(**prof_d) if prof_d else BENCH_PROFILES["cpu"]
    by_name = _datasets_of(study, datasets)
    done = 0

    def waiting() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def run_one() -> None:
        _requeue_dead_trials(study, rdb, study_id, grace)
        with _claim_lock(url), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "heartbeat is supposed to be used with Study.optimize"
            trial = study.ask()
            trial_id = rdb.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            rdb.record_heartbeat(trial_id)     # from here on Optuna's stale check covers it
            trial.set_user_attr(CLAIM_ATTR, trial.number)
        a = trial.user_attrs
        key = a.get("key")
        if key is None:
            trial.set_user_attr("note", "no grid trial was waiting")
            study.tell(trial, state=TrialState.PRUNED)
            return
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if t.number != trial.number and t.user_attrs.get("key") == key and \
                    (t.state == TrialState.COMPLETE or t.number < trial.number):
                trial.set_user_attr("duplicate_of", t.number)
                study.tell(trial, state=TrialState.PRUNED)
                return
        with _Heartbeat(rdb, trial_id, interval):
            try:
                d = by_name.get(a["dataset"])
                if d is None:
                    raise DatasetError(f"dataset {a['dataset']!r} is not available on this worker")
                out = run_trial_fn(Config.from_json(a["config"]), d, fraction=float(a["fraction"]),
                                   seed=int(a["seed"]), profile=prof)
                for k, v in out.items():
                    trial.set_user_attr(k, v)
            except KeyboardInterrupt:  # not left RUNNING: failed now, re-queued by the next run
                trial.set_user_attr("error", "interrupted (Ctrl-C)")
                study.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as exc:
                log.warning("bench: trial %d (%s) failed: %s: %s", trial.number, key, type(exc).__name__, exc)
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
                study.tell(trial, state=TrialState.FAIL)
                return
            study.tell(trial, float(out["metric"]))

    _requeue_dead_trials(study, rdb, study_id, grace)    # a killed worker's trials go back to the queue first
    budget = n_trials if n_trials is not None else math.inf
    total = int(min(budget, waiting()))
    bar: Iterable[int] = range(total)
    if progress and total:
        from fastprogress.fastprogress import progress_bar
        bar = progress_bar(range(total))
    redirect = contextlib.redirect_stdout(sys.stderr) if progress else contextlib.nullcontext()
    with redirect:
        for _ in bar:
            if not waiting():
                break
            run_one()
            done += 1
    while done < budget and waiting():   # trials re-queued while this worker ran
        run_one()
        done += 1
    return done


def run_bench(study_name: str = "bench", storage: str | None = None, *,
              datasets: Sequence[BenchDataset] | Sequence[str] | None = None,
              extra: Mapping[str, str] | None = None, paths: Mapping[str, str] | None = None,
              fractions: Sequence[float] = FRACTIONS, seeds: int | Sequence[int] = 3,
              profile: str | BenchProfile = "cpu", grid: Mapping[str, Sequence[float]] | None = None,
              anchors: Sequence[str] = ANCHORS, run_trial_fn: Callable | None = None,
              advise_fn: Callable | None = None, advise_options: Mapping[str, Any] | None = None,
              n_trials: int | None = None, out_dir: str | os.PathLike | None = None,
              heartbeat_interval: int = 60, grace_period: int | None = None, progress: bool = True,
              write: bool = True) -> dict[str, Any]:
    """Prepare (or resume) the study, work through its queue, and write the outputs.

    Running it again with the same arguments resumes: baselines come from the study,
    finished trials are kept, and only missing trials run. Returns a dict with ``study``,
    ``ran`` (trials run by this call), ``status`` and ``files``.

    Examples
    --------
    >>> out = run_bench("pets", datasets=["pets"], fractions=[0.2], seeds=1)   # doctest: +SKIP
    >>> out["files"]["heatmap"]                                                # doctest: +SKIP
    'bench/pets/heatmap.png'
    """
    if datasets is None or all(isinstance(d, str) for d in datasets):
        datasets = resolve_datasets(datasets, paths=paths, extra=extra)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = Path(out_dir) if out_dir else Path("bench") / study_name
    study = open_study(study_name, storage, out_dir=out, heartbeat_interval=heartbeat_interval,
                       grace_period=grace_period)
    prepare_study(study, datasets, fractions=fractions, seeds=seed_list, profile=profile, grid=grid,
                  anchors=anchors, advise_fn=advise_fn, advise_options=advise_options)
    if not study.user_attrs.get("n_grid"):   # "0/0 trials done" would read like success
        reasons = {**study.user_attrs.get("failed_datasets", {}), **study.user_attrs.get("missing_datasets", {})}
        first = next(iter(reasons.items()), None)
        raise DatasetError("nothing to benchmark: no dataset has a baseline"
                           + (f" ({len(reasons)} missing or failed; {first[0]}: {first[1]})" if first else ""),
                           hint="'finetune-advisor bench status' lists every reason; the run resumes once they are fixed")
    ran = run_worker(study, run_trial_fn=run_trial_fn, datasets=datasets, n_trials=n_trials, progress=progress)
    files = write_outputs(study, out) if write else {}
    return {"study": study, "ran": ran, "status": study_status(study), "files": files}


def study_status(study) -> dict[str, Any]:
    """How far a study is: trials by state, grid keys done, per dataset, and an ETA."""
    from collections import Counter

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    attrs = study.user_attrs
    n_grid = int(attrs.get("n_grid", 0))
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("key")]
    keys_done = {t.user_attrs["key"] for t in complete}
    per_ds: dict[str, int] = Counter(t.user_attrs.get("dataset") for t in complete)
    times = [float(t.user_attrs.get("wall_time_s", 0)) for t in complete if t.user_attrs.get("wall_time_s")]
    remaining = max(n_grid - len(keys_done), 0)
    mean_t = sum(times) / len(times) if times else None
    return {"study": study.study_name, "n_grid": n_grid, "n_done": len(keys_done), "n_remaining": remaining,
            "states": dict(states), "done_by_dataset": dict(per_ds),
            "duplicate_complete_keys": len(complete) - len(keys_done),
            "mean_trial_s": mean_t, "eta_s_one_worker": None if mean_t is None else mean_t * remaining,
            "missing_datasets": attrs.get("missing_datasets", {}), "failed_datasets": attrs.get("failed_datasets", {}),
            "grid_enqueued": bool(attrs.get("grid_enqueued"))}


# --- outputs --------------------------------------------------------------------------------

RESULT_COLUMNS = ["dataset", "fraction", "parameter", "value", "label", "seed", "metric", "metric_name",
                  "valid_loss", "roc_auc_macro", "epochs_to_best", "wall_time_s", "trial", "same_as"]


def results_table(study) -> "pd.DataFrame":
    """Tidy table, one row per grid cell x seed (COMPLETE trials; aliased cells repeat the row of
    the trial they are identical to, with ``same_as`` set)."""
    import pandas as pd

    rows = []
    by_key = {}
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state.name != "COMPLETE" or "key" not in a:
            continue
        row = {"dataset": a["dataset"], "fraction": a["fraction"], "parameter": a["parameter"],
               "value": a["value"], "label": a["label"], "seed": a["seed"], "metric": t.value,
               "metric_name": a.get("metric_name"), "valid_loss": a.get("valid_loss"),
               "roc_auc_macro": a.get("roc_auc_macro"), "epochs_to_best": a.get("epochs_to_best"),
               "wall_time_s": a.get("wall_time_s"), "trial": t.number, "same_as": None}
        by_key.setdefault(a["key"], row)
        rows.append(row)
    for alias, target in (study.user_attrs.get("aliases") or {}).items():
        if target in by_key:
            ds, frac, label, seed = alias.split("|")
            parameter, value = _parse_label(label)
            rows.append({**by_key[target], "parameter": parameter, "value": value, "label": label,
                         "same_as": target})
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return df.sort_values(["dataset", "fraction", "parameter", "label", "seed"]).reset_index(drop=True)


def _parse_label(label: str) -> tuple[str, Any]:
    if label == "baseline":
        return "baseline", None
    if label.startswith("anchor:"):
        return "anchor", label.split(":", 1)[1]
    if label.startswith("lr x10^"):
        return "lr", float(label[len("lr x10^"):])
    p, v = label.split("=", 1)
    return p, float(v)


def improvement_table(results: "pd.DataFrame", *, per_fraction: bool = True) -> "pd.DataFrame":
    """% change of the mean metric vs the baseline's, rows dataset (@ fraction), columns the
    variations sorted best to worst (mean over rows); anchors included."""
    import pandas as pd

    if results.empty:
        return pd.DataFrame()
    df = results.copy()
    df["row"] = df["dataset"] + (" @" + (df["fraction"] * 100).round().astype(int).astype(str) + "%"
                                 if per_fraction else "")
    means = df.groupby(["row", "label"])["metric"].mean().unstack("label")
    if "baseline" not in means:
        return pd.DataFrame()
    pct = means.sub(means["baseline"], axis=0).div(means["baseline"].abs().where(means["baseline"] != 0), axis=0) * 100
    order = pct.mean(axis=0).sort_values(ascending=False).index
    return pct[order]


def plot_heatmap(improvement: "pd.DataFrame", path: str | os.PathLike | None = None, *, title: str | None = None):
    """The study's heatmap: % change vs the baseline, diverging colours centred at 0."""
    import matplotlib
    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    data = improvement.to_numpy(dtype=float)
    finite = data[np.isfinite(data)]
    lim = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-6)
    # ~3.5 in below the rows for the rotated cell labels, so a one-row study stays readable
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * data.shape[1] + 2), 0.5 * data.shape[0] + 3.5))
    im = ax.imshow(data, cmap="RdBu", norm=TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim), aspect="auto")
    ax.set_xticks(range(data.shape[1]), [str(c) for c in improvement.columns], rotation=60, ha="right")
    ax.set_yticks(range(data.shape[0]), [str(r) for r in improvement.index])
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:+.1f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(data[i, j]) > 0.6 * lim else "black")
    fig.colorbar(im, ax=ax, label="% change vs baseline")
    ax.set_title(title or "Improvement over the recommended baseline (best to worst, left to right)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def regret_summary(results: "pd.DataFrame", metric: str = "metric", *,
                   higher_is_better: bool = True) -> "pd.DataFrame":
    """Per dataset and fraction: the baseline (mean, std over seeds), the best cell, the regret
    (best - baseline, in metric points, >= 0) and the baseline's margin over each anchor.

    ``metric`` is any numeric column of :func:`results_table` (``"valid_loss"`` with
    ``higher_is_better=False``; ``"roc_auc_macro"`` for multi-label). A margin is positive when
    the baseline is better; ``margin_std_over_<anchor>`` is the spread of the per-seed paired
    differences (same seed, same split), NaN with fewer than two shared seeds.

    >>> reg = regret_summary(results_table(study))                       # doctest: +SKIP
    >>> reg[["dataset", "fraction", "regret", "margin_over_fastai_fine_tune"]]   # doctest: +SKIP
    """
    import pandas as pd

    sign = 1.0 if higher_is_better else -1.0
    rows = []
    for (ds, frac), g in results.dropna(subset=[metric]).groupby(["dataset", "fraction"]):
        stats = g.groupby("label")[metric].agg(["mean", "std", "count"])
        if "baseline" not in stats.index:
            continue
        base = stats.loc["baseline"]
        best_label = (sign * stats["mean"]).idxmax()
        by_seed = g.pivot_table(index="seed", columns="label", values=metric, aggfunc="first")
        row = {"dataset": ds, "fraction": frac,
               "metric_name": g["metric_name"].iloc[0] if metric == "metric" else metric,
               "baseline_mean": base["mean"], "baseline_std": base["std"], "n_seeds": int(base["count"]),
               "best_cell": best_label, "best_mean": stats.loc[best_label, "mean"],
               "regret": sign * (stats.loc[best_label, "mean"] - base["mean"]),
               "rank_of_baseline": int((sign * stats["mean"] > sign * base["mean"]).sum()) + 1,
               "n_cells": len(stats)}
        for a in ANCHORS:
            lab = f"anchor:{a}"
            have = lab in stats.index
            row[f"{a}_mean"] = stats.loc[lab, "mean"] if have else float("nan")
            row[f"{a}_std"] = stats.loc[lab, "std"] if have else float("nan")
            row[f"margin_over_{a}"] = sign * (base["mean"] - stats.loc[lab, "mean"]) if have else float("nan")
            paired = (sign * (by_seed["baseline"] - by_seed[lab])).dropna() if have else pd.Series(dtype=float)
            row[f"margin_std_over_{a}"] = paired.std() if len(paired) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def write_outputs(study, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write ``results.csv`` (+ ``results.parquet`` when pyarrow/fastparquet is installed),
    ``improvement.csv``, ``heatmap.png``, ``regret.csv`` (``regret_roc_auc_macro.csv`` too when a
    multi-label dataset ran) and ``status.json``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    df = results_table(study)
    df.to_csv(out / "results.csv", index=False)
    files["results"] = str(out / "results.csv")
    try:
        df.to_parquet(out / "results.parquet", index=False)
        files["results_parquet"] = str(out / "results.parquet")
    except ImportError:
        log.info("bench: no parquet engine (pip install pyarrow); wrote CSV only")
    imp = improvement_table(df)
    if not imp.empty:
        imp.to_csv(out / "improvement.csv")
        files["improvement"] = str(out / "improvement.csv")
        plot_heatmap(imp, out / "heatmap.png")
        files["heatmap"] = str(out / "heatmap.png")
    reg = regret_summary(df) if not df.empty else None
    if reg is not None and not reg.empty:
        reg.to_csv(out / "regret.csv", index=False)
        files["regret"] = str(out / "regret.csv")
    if df["roc_auc_macro"].notna().any():
        auc = regret_summary(df, "roc_auc_macro")
        auc.to_csv(out / "regret_roc_auc_macro.csv", index=False)
        files["regret_roc_auc_macro"] = str(out / "regret_roc_auc_macro.csv")
    (out / "status.json").write_text(json.dumps(study_status(study), indent=2, default=str))
    files["status"] = str(out / "status.json")
    return files
