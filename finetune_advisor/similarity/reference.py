"""The similarity reference file (Tiny-ImageNet class means under one backbone, image size and
images-per-class): its format, written and read here, its names, and where it is cached or shipped."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .._io import CACHE_ENV, atomic_open, cache_root
from ..backbones import Backbone, get_backbone_entry
from ..exceptions import SimilarityReferenceError
from .embed import DEFAULT_IMAGE_SIZE

__all__ = ["DEFAULT_IMAGES_PER_CLASS", "CACHE_ENV", "REBUILD_HINT", "Reference", "reference_filename",
           "reference_cache_dir", "reference_cache_path", "shipped_reference_path", "describe_reference"]

DEFAULT_IMAGES_PER_CLASS = 20
REFERENCE_FORMAT = 1
REBUILD_HINT = ("build one with `finetune-advisor reference build PATH` (PATH: a Tiny-ImageNet copy) "
                "or pass a reference file or folder with `--reference PATH` / get_reference(path=...)")


@dataclass(eq=False)
class Reference:
    """Tiny-ImageNet class means under one backbone, image size and images-per-class.

    Saved as a small ``.npz`` (no pickles): the means, the classes' image counts and the
    method's parameters. ``path`` is where it was loaded from (not saved).
    """

    backbone_key: str
    image_size: int
    images_per_class: int
    class_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    class_means: np.ndarray          # float32 [C, d]
    class_counts: np.ndarray         # int64 [C]: images of the class in the source split
    source: str = ""
    created: str = ""
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.class_ids = tuple(str(c) for c in self.class_ids)
        self.class_names = tuple(str(c) for c in self.class_names)
        self.class_means = np.asarray(self.class_means, dtype=np.float32)
        self.class_counts = np.asarray(self.class_counts, dtype=np.int64)
        c = len(self.class_ids)
        if self.class_means.ndim != 2 or self.class_means.shape[0] != c or c == 0:
            raise ValueError(f"class_means has shape {self.class_means.shape} for {c} classes")
        if len(self.class_names) != c or self.class_counts.shape != (c,):
            raise ValueError("class_ids, class_names and class_counts must have one entry per class")
        if not np.all(np.isfinite(self.class_means)) or np.any(self.class_counts <= 0):
            raise ValueError("class_means must be finite and class_counts positive")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reference):
            return NotImplemented
        return (self.backbone_key, self.image_size, self.images_per_class, self.class_ids, self.class_names,
                self.source, self.created) == (other.backbone_key, other.image_size, other.images_per_class,
                                               other.class_ids, other.class_names, other.source, other.created) \
            and np.array_equal(self.class_means, other.class_means) \
            and np.array_equal(self.class_counts, other.class_counts)

    __hash__ = None  # mutable

    @property
    def n_classes(self) -> int:
        """Number of reference classes."""
        return len(self.class_ids)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``path`` (a temp file in the same folder, then ``os.replace``).

        A write that is killed or fails leaves any previous file untouched and no partial
        file under ``path``.
        """
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            format_version=np.array(REFERENCE_FORMAT, np.int64),
            backbone_key=np.array(self.backbone_key),
            image_size=np.array(self.image_size, np.int64),
            images_per_class=np.array(self.images_per_class, np.int64),
            class_ids=np.array(self.class_ids, dtype=str),
            class_names=np.array(self.class_names, dtype=str),
            class_means=self.class_means.astype(np.float32),
            class_counts=self.class_counts.astype(np.int64),
            source=np.array(self.source),
            created=np.array(self.created),
        )
        with atomic_open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Reference":
        """Read a reference written by :meth:`save`.

        Raises
        ------
        SimilarityReferenceError
            The file is missing, truncated, corrupt or not a reference; the message names the
            path and says how to rebuild it.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise SimilarityReferenceError("similarity reference not found", path=path, hint=REBUILD_HINT)
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}  # reads (and CRC-checks) every member
            version = int(data["format_version"])
            if version > REFERENCE_FORMAT:
                raise ValueError(f"format version {version} is newer than this finetune-advisor ({REFERENCE_FORMAT})")
            ref = cls(backbone_key=str(data["backbone_key"]), image_size=int(data["image_size"]),
                      images_per_class=int(data["images_per_class"]),
                      class_ids=tuple(data["class_ids"].tolist()), class_names=tuple(data["class_names"].tolist()),
                      class_means=data["class_means"], class_counts=data["class_counts"],
                      source=str(data["source"]), created=str(data["created"]), path=path)
        except SimilarityReferenceError:
            raise
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise SimilarityReferenceError(
                f"similarity reference is corrupt or unreadable ({reason})", path=path,
                hint=f"delete it and rebuild: {REBUILD_HINT}") from None
        return ref

    def check_backbone(self, backbone: Backbone) -> None:
        """Raise :class:`SimilarityReferenceError` unless built with ``backbone``'s weights."""
        if self.backbone_key != backbone.key:
            raise SimilarityReferenceError(
                f"similarity reference was built with backbone {self.backbone_key!r}, not {backbone.key!r}",
                path=self.path, hint=f"use a reference built with {backbone.key!r}; {REBUILD_HINT}")


def reference_filename(backbone_key: str, image_size: int = DEFAULT_IMAGE_SIZE,
                       images_per_class: int = DEFAULT_IMAGES_PER_CLASS, source: str | os.PathLike | None = None) -> str:
    """Cache/resource file name of a reference.

    ``source`` (the folder or archive a ``--reference`` reference is built from) gives it a
    name of its own, so it never takes the place of the default reference for that backbone.

    >>> reference_filename("efficientnet_lite0")
    'reference_efficientnet_lite0_128px_k20.npz'
    >>> reference_filename("resnet34", 64, 5, source="/data/my-tiny").startswith("reference_resnet34_64px_k5_from-my-tiny-")
    True
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", backbone_key)
    name = f"reference_{safe}_{int(image_size)}px_k{int(images_per_class)}"
    if source is not None:
        where = os.path.abspath(os.path.expanduser(os.fspath(source)))
        digest = hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        label = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(where.rstrip(os.sep)) or "root")[:40]
        name += f"_from-{label}-{digest}"
    return name + ".npz"


def reference_cache_dir() -> Path:
    """Where built references are cached: ``<cache>/references``.

    ``<cache>`` is ``$FINETUNE_ADVISOR_CACHE`` when set, else platformdirs' user cache dir
    for ``finetune-advisor`` (e.g. ``~/.cache/finetune-advisor``). Not created here.
    """
    return cache_root() / "references"


def reference_cache_path(backbone: Backbone | str, image_size: int = DEFAULT_IMAGE_SIZE,
                         images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
                         source: str | os.PathLike | None = None) -> Path:
    """Where :func:`get_reference` caches the reference for ``backbone`` (a Backbone or its key).

    Without ``source``: the default reference (the official archive's, or ``reference build``'s);
    with it, the one built from that folder or archive (``--reference FOLDER``).

    >>> reference_cache_path("resnet34").name
    'reference_resnet34_128px_k20.npz'
    """
    key = backbone if isinstance(backbone, str) else backbone.key
    return reference_cache_dir() / reference_filename(key, image_size, images_per_class, source)


def describe_reference(ref: Reference) -> str:
    """One line naming a reference: shipped, or the file it was loaded from and what it was built from.

    >>> import numpy as np
    >>> r = Reference("rn", 64, 5, ("a",), ("",), np.zeros((1, 2)), np.ones(1), source="/data/tiny/train")
    >>> describe_reference(r)
    'built from /data/tiny/train (rn, 1 classes, 64 px, 5 images/class; not saved)'
    """
    what = f"{ref.backbone_key}, {ref.n_classes} classes, {ref.image_size} px, {ref.images_per_class} images/class"
    shipped = shipped_reference_path(ref.backbone_key, ref.image_size, ref.images_per_class)
    if ref.path is not None and shipped is not None and Path(ref.path).resolve() == shipped.resolve():
        return f"shipped with finetune-advisor ({shipped.name}: Tiny-ImageNet, {what})"
    built = f"built from {ref.source}" if ref.source else "source not recorded"
    if ref.path is None:
        return f"{built} ({what}; not saved)"
    return f"{ref.path} ({built}; {what})"


def shipped_reference_path(backbone_key: str, image_size: int = DEFAULT_IMAGE_SIZE,
                           images_per_class: int = DEFAULT_IMAGES_PER_CLASS) -> Path | None:
    """The reference the package ships for this key/size/k, if any: the one the backbone
    registry names (only ``efficientnet_lite0`` at 128 px, k=20).

    >>> shipped_reference_path("efficientnet_lite0").name, shipped_reference_path("resnet34")
    ('reference_efficientnet_lite0_128px_k20.npz', None)
    """
    entry = get_backbone_entry(backbone_key)
    if entry is None or entry.shipped_reference != reference_filename(backbone_key, image_size, images_per_class):
        return None
    try:
        path = Path(str(resources.files("finetune_advisor") / "resources" / entry.shipped_reference))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - zipped installs
        return None
    return path if path.is_file() else None
