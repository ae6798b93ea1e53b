"""The bench's dataset registry: the study's seven datasets and the other shared ones, where each
comes from, and which folder stands in for it on this machine (never faked when absent).

A name may carry a size, ``<name>@<k>``: at most ``k`` images a class of that dataset, a
class-stratified subsample drawn with a fixed seed (:data:`SIZE_SEED`), the same on every
machine and for every trial. It is a dataset of its own for the bench (its baseline is advised
on the subsample, as ``recommend`` would advise a dataset of that size); :func:`base_name`
groups the sizes of one dataset, e.g. to leave them out together.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from ..exceptions import ConfigError, DatasetError

if TYPE_CHECKING:
    from ..data import Dataset

__all__ = ["ReferenceDataset", "REFERENCE_DATASETS", "ALL_DATASETS", "BenchDataset", "resolve_datasets",
           "shared_data_dir", "default_reference", "SHARED_DATA_ENV", "DATA_ENV_PREFIX", "SIZE_SEED", "split_size",
           "base_name", "sized_names"]

SHARED_DATA_ENV = "FINETUNE_ADVISOR_SHARED_DATA"
DATA_ENV_PREFIX = "FINETUNE_ADVISOR_DATA_"     # e.g. FINETUNE_ADVISOR_DATA_PETS=/data/oxford-pets
SIZE_SEED = 0                                   # the draw of every "<name>@<k>" subsample
_SIZE_MARK = "@"


def split_size(name: str) -> tuple[str, int | None]:
    """``"pets@10"`` -> ``("pets", 10)``; a name without a size -> ``(name, None)``.

    >>> split_size("pets@10"), split_size("pets")
    (('pets', 10), ('pets', None))
    >>> split_size("pets@ten")
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.ConfigError: dataset size in 'pets@ten' must be a whole number of images a class >= 1 (e.g. pets@30)
    """
    base, mark, size = name.rpartition(_SIZE_MARK)
    if not mark:
        return name, None
    if not size.isdigit() or int(size) < 1 or not base:
        raise ConfigError(f"dataset size in {name!r} must be a whole number of images a class >= 1 "
                          f"(e.g. {base or 'pets'}@30)")
    return base, int(size)


def base_name(name: str) -> str:
    """The dataset a sized name subsamples: ``base_name("pets@10") == "pets"``."""
    return split_size(name)[0]


def sized_names(names: Iterable[str], sizes: Iterable[int] | None) -> list[str]:
    """Each name at each size, name-major (``sizes`` None or empty: the names unchanged).

    >>> sized_names(["pets", "mri"], [10, 100])
    ['pets@10', 'pets@100', 'mri@10', 'mri@100']
    """
    sizes = list(sizes or [])
    bad = [k for k in sizes if isinstance(k, bool) or int(k) != k or k < 1]
    if bad or len(set(sizes)) != len(sizes):
        raise ConfigError(f"sizes must be distinct whole numbers of images a class >= 1, got {sizes}")
    names = list(names)
    if not sizes:
        return names
    return [f"{n}{_SIZE_MARK}{int(k)}" for n in names for k in sizes]


@dataclass(frozen=True)
class ReferenceDataset:
    """A registered dataset (the study's seven, or another shared one): where it comes from and
    which sample stands in for it here."""

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

    name: str                   # may carry a size: "pets@10"
    path: Path | None
    multi_label: bool | None
    origin: str                 # "user" | "stand-in" | "custom" | "missing"
    note: str = ""

    @property
    def available(self) -> bool:
        return self.path is not None

    @property
    def images_per_class(self) -> int | None:
        """The size this name asks for (``pets@10``: 10), None for the whole dataset."""
        return split_size(self.name)[1]

    def read(self) -> Dataset:
        """The images this bench dataset stands for: the folder read, then subsampled to its
        size (:data:`SIZE_SEED`) where its name carries one."""
        from ..data import read_dataset
        if self.path is None:
            raise DatasetError(f"dataset {self.name!r} is not available here ({self.note or 'missing'})")
        full = read_dataset(self.path)
        k = self.images_per_class
        return full if k is None else full.subset(max_per_class=k, seed=SIZE_SEED)

    def advise_source(self) -> "Path | Dataset":
        """What :func:`~finetune_advisor.recommend.advise` reads: the folder, or for a sized name
        its subsample (advised as a dataset of that size)."""
        return self.read() if self.images_per_class is not None else self.path


def shared_data_dir() -> Path:
    """``$FINETUNE_ADVISOR_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"   # this file: <repo>/finetune_advisor/bench/


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
    unknown = [n for n in names if base_name(n) not in REFERENCE_DATASETS and n not in (extra or {})]
    if unknown:
        raise ConfigError(f"unknown reference dataset(s) {unknown}; choose from {sorted(REFERENCE_DATASETS)} "
                          f"or {ALL_DATASETS!r}",
                          hint="add your own with extra={'name': path} (CLI: --dataset name=PATH)")
    shared = Path(shared_data) if shared_data is not None else shared_data_dir()
    out: list[BenchDataset] = []
    for name in names:
        if base_name(name) not in REFERENCE_DATASETS:
            continue
        ref = REFERENCE_DATASETS[base_name(name)]
        given = paths.get(base_name(name)) or os.environ.get(ref.env_var)
        if given:
            p = Path(given)
            if not p.exists():
                raise DatasetError(f"the {name} dataset path does not exist", path=p,
                                   hint=f"fix {ref.env_var} or the --data-path {name}=PATH argument")
            out.append(BenchDataset(name, p, ref.multi_label, "user"))
        elif ref.standin and (shared / ref.standin).is_dir():
            note = f"small sample standing in for {ref.title}"
            if split_size(name)[1] is not None:
                note += f", at most {split_size(name)[1]} images a class"
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
