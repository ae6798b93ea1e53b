"""Where a similarity reference comes from: built from a local Tiny-ImageNet copy (or any
ImageFolder), the cache, the package, or the official archive, downloaded (:func:`get_reference`)."""
from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import _progress
from .._io import WRITE_ERRNOS
from ..backbones import OFFLINE_ENV, Backbone, offline
from ..data import IMAGE_EXTENSIONS, scan_class_folders
from ..data.sampling import stratified_indices
from ..exceptions import SimilarityReferenceError
from .embed import DEFAULT_IMAGE_SIZE, embed_images
from .reference import (DEFAULT_IMAGES_PER_CLASS, REBUILD_HINT, Reference, reference_cache_dir, reference_cache_path,
                        shipped_reference_path)

__all__ = ["TINY_IMAGENET_URL", "TINY_IMAGENET_MD5", "build_reference", "get_reference"]

log = logging.getLogger(__name__)

TINY_IMAGENET_URL = "https://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"     # the official archive's (as torchvision-style loaders check it)
_IMAGE_EXTS = frozenset(IMAGE_EXTENSIONS | {".ppm", ".pgm"})  # a reference may also hold netpbm files


def _reference_classes(split_dir: Path) -> dict[str, list[Path]]:
    """Class -> sorted image files: an ImageFolder (``split_dir/<class>/**``), or the official
    Tiny-ImageNet ``val/`` (flat ``images/`` + ``val_annotations.txt``)."""
    annotations = split_dir / "val_annotations.txt"
    if annotations.is_file() and (split_dir / "images").is_dir():
        classes: dict[str, list[Path]] = {}
        for line in annotations.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                classes.setdefault(parts[1], []).append(split_dir / "images" / parts[0])
        return {c: sorted(v) for c, v in sorted(classes.items())}
    return scan_class_folders(split_dir, extensions=_IMAGE_EXTS)


def _read_words(*candidates: Path) -> dict[str, str]:
    """``wnid -> names`` from the first ``words.txt`` (``wnid<TAB>names``) that exists."""
    for cand in candidates:
        if cand.is_file():
            words = {}
            for line in cand.read_text(encoding="utf-8", errors="replace").splitlines():
                wnid, _, names = line.partition("\t")
                if wnid and names:
                    words[wnid.strip()] = names.strip()
            return words
    return {}


def build_reference(path: str | os.PathLike, backbone: Backbone, *, image_size: int = DEFAULT_IMAGE_SIZE,
                    images_per_class: int = DEFAULT_IMAGES_PER_CLASS, split: str = "train", seed: int = 0,
                    progress: bool = True) -> Reference:
    """Class means of a local Tiny-ImageNet copy (or any ImageFolder) under ``backbone``.

    Parameters
    ----------
    path : path
        A folder with ``<split>/<class>/...`` images (Tiny-ImageNet's ``train/<wnid>/images/``
        works), or itself an ImageFolder (``<class>/...``). ``words.txt`` (``wnid<TAB>names``)
        next to the split, if present, gives the classes' names.
    backbone : Backbone
        The feature extractor; its ``key`` is recorded.
    image_size : int, default=128
        Input side; recorded, and datasets are later embedded at the same size.
    images_per_class : int, default=20
        Images averaged per class (a seeded, class-stratified sample); recorded likewise.
    split : str, default="train"
        Sub-folder to read when present.
    seed : int, default=0
        Sampling seed.
    progress : bool, default=True
        Show progress on stderr.

    Returns
    -------
    Reference
        Not saved: call :meth:`Reference.save`, or use :func:`get_reference` which caches it.
        ``class_counts`` are the numbers of images per class in the split.

    Raises
    ------
    SimilarityReferenceError
        The folder is missing, has no class folders with images, or nothing could be decoded.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SimilarityReferenceError("reference dataset folder not found", path=root,
                                       hint="give a Tiny-ImageNet folder (with train/<wnid>/...) or an ImageFolder")
    split_dir = root / split if split and (root / split).is_dir() else root
    classes = _reference_classes(split_dir)
    if not classes:
        raise SimilarityReferenceError(f"no class folders with images in {split_dir}", path=root,
                                       hint="expected <class>/<image> files, e.g. tiny-imagenet-200/train/<wnid>/...")
    words = _read_words(root / "words.txt", split_dir / "words.txt", split_dir.parent / "words.txt")
    files = [(ci, cls, f) for ci, (cls, class_files) in enumerate(classes.items()) for f in class_files]
    picked = stratified_indices([(cls,) for _, cls, _ in files], max_per_class=images_per_class, seed=seed)
    sample = [files[i][2] for i in picked]
    owners = np.asarray([files[i][0] for i in picked], np.int64)
    log.info("building similarity reference from %s: %d classes, %d images at %d px with %s",
             split_dir, len(classes), len(sample), image_size, backbone.key)
    emb, failed = embed_images(backbone, sample, image_size=image_size, progress=progress)
    keep = np.ones(len(sample), bool)
    keep[failed] = False
    owners_ok = owners[keep]
    ids, names, means, counts = [], [], [], []
    for ci, (cls, class_files) in enumerate(classes.items()):
        rows = emb[owners_ok == ci]
        if not len(rows):
            log.warning("reference class %s: no image could be decoded; left out", cls)
            continue
        ids.append(cls)
        names.append(words.get(cls, ""))
        means.append(rows.mean(axis=0))
        counts.append(len(class_files))
    if not ids:
        raise SimilarityReferenceError("no reference image could be decoded", path=split_dir)
    return Reference(backbone_key=backbone.key, image_size=int(image_size), images_per_class=int(images_per_class),
                     class_ids=tuple(ids), class_names=tuple(names), class_means=np.stack(means).astype(np.float32),
                     class_counts=np.asarray(counts, np.int64), source=str(split_dir.resolve()),
                     created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _check_archive(path: Path, md5: str = TINY_IMAGENET_MD5) -> None:
    """Raise :class:`SimilarityReferenceError` naming ``path``, and remove the file, unless its
    MD5 is ``md5`` (torchvision's ``calculate_md5``): a truncated or tampered archive is never
    extracted, and the next try downloads it again."""
    from torchvision.datasets.utils import calculate_md5

    found = calculate_md5(path)
    if found != md5:
        path.unlink(missing_ok=True)
        raise SimilarityReferenceError(f"the downloaded archive has MD5 {found}, not the official {md5} "
                                       f"(truncated or altered); removed it", path=path,
                                       hint=f"retry, or {REBUILD_HINT}")


def _disk_error(exc: BaseException, part: Path) -> bool:
    """Whether a download failed writing ``part`` (full disk, read-only folder), not reading the network."""
    if not isinstance(exc, OSError) or isinstance(exc, urllib.error.URLError) or exc.errno not in WRITE_ERRNOS:
        return False
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS) or exc.filename == str(part)


def _download_tiny_imagenet(dest: Path, *, progress: bool = True) -> Path:
    """Download (https), check (MD5) and extract the official Tiny-ImageNet archive under ``dest``;
    the dataset root. Not torchvision's ``download_url``: it retries over plain http when https
    fails, and writes to the final name, so a killed download would look complete."""
    root = dest / "tiny-imagenet-200"
    done = dest / ".tiny-imagenet-200.complete"
    if done.is_file() and root.is_dir():
        return root
    dest.mkdir(parents=True, exist_ok=True)     # a read-only cache: the CLI names the folder (_io.write_error)
    archive = dest / "tiny-imagenet-200.zip"
    part = dest / "tiny-imagenet-200.zip.part"
    log.info("downloading %s into %s", TINY_IMAGENET_URL, dest)
    try:
        with urllib.request.urlopen(TINY_IMAGENET_URL, timeout=20) as resp, open(part, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0)
            chunk = 1 << 20
            n_chunks = max(1, math.ceil(total / chunk)) if total else None
            chunks = iter(lambda: resp.read(chunk), b"")
            for block in _progress.progress(chunks, total=n_chunks, desc="downloading Tiny-ImageNet",
                                            enabled=progress and bool(n_chunks)):
                fh.write(block)
        os.replace(part, archive)
    except Exception as exc:
        part.unlink(missing_ok=True)
        if _disk_error(exc, part):          # the disk, not the network: the CLI names the file
            raise OSError(exc.errno, exc.strerror, str(part)) from None
        reason = getattr(exc, "reason", None) or exc
        raise SimilarityReferenceError(f"cannot download Tiny-ImageNet ({TINY_IMAGENET_URL}): {reason}",
                                       hint=REBUILD_HINT) from None
    _check_archive(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            base = dest.resolve()
            for name in zf.namelist():
                if not (base / name).resolve().is_relative_to(base):
                    raise ValueError(f"unsafe path in archive: {name}")
            if root.exists():
                shutil.rmtree(root)
            zf.extractall(dest)
    except Exception as exc:
        raise SimilarityReferenceError(f"cannot extract the Tiny-ImageNet archive: {exc}", path=archive,
                                       hint=f"delete it and retry, or {REBUILD_HINT}") from None
    archive.unlink(missing_ok=True)
    done.write_text(TINY_IMAGENET_URL + "\n")
    return root


def get_reference(backbone: Backbone, *, path: str | os.PathLike | None = None,
                  image_size: int = DEFAULT_IMAGE_SIZE, images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
                  download: bool = True, progress: bool = True) -> Reference:
    """The similarity reference for ``backbone``, from the first source that has one.

    1. ``path`` is a reference ``.npz``: load it (its own image size and k apply).
    2. ``path`` is a dataset folder: build from it (``image_size``, ``images_per_class``) and
       cache it under a name keyed by the folder, backbone key, size and k (a later call with
       the same folder reuses it; calls without ``path`` never see it).
    3. The cache (:func:`reference_cache_dir`) has the default one for this key, size and k
       (the official archive's, or ``finetune-advisor reference build``'s): load it.
    4. The package ships one (only ``efficientnet_lite0`` at 128 px, k=20): load it.
    5. Download the official Tiny-ImageNet archive into the cache, build, cache. Skipped when
       ``download=False`` or ``$FINETUNE_ADVISOR_OFFLINE`` is set.

    Parameters
    ----------
    backbone : Backbone
        The reference must have been built with the same weights (``backbone.key``).
    path : path, optional
        A reference file or a Tiny-ImageNet/ImageFolder folder.
    image_size, images_per_class : int, default=128, 20
        The method's parameters for cache look-ups and builds.
    download : bool, default=True
        Allow step 5.
    progress : bool, default=True
        Progress on stderr while downloading/building.

    Raises
    ------
    SimilarityReferenceError
        No reference can be found or built, a file is corrupt, or it was built with another
        backbone. The hint says to run ``finetune-advisor reference build PATH`` or to pass
        ``--reference PATH``.
    """
    cached = reference_cache_path(backbone, image_size, images_per_class)
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            ref = Reference.load(p)
            ref.check_backbone(backbone)
            return ref
        if not p.is_dir():
            raise SimilarityReferenceError("reference path not found", path=p,
                                           hint="give a reference .npz or a Tiny-ImageNet folder")
        # Cached under a name of its own (the folder's), never in the default reference's place.
        own = reference_cache_path(backbone, image_size, images_per_class, source=p.resolve())
        if own.is_file():
            try:
                ref = Reference.load(own)
                if ref.backbone_key == backbone.key and ref.source in (str(p.resolve()), str((p / "train").resolve())):
                    log.info("using cached reference %s (built from %s)", own, ref.source)
                    return ref
            except SimilarityReferenceError as exc:
                log.warning("ignoring unreadable cached reference: %s", exc)
        ref = build_reference(p, backbone, image_size=image_size, images_per_class=images_per_class, progress=progress)
        _save_to_cache(ref, own)
        return ref
    if cached.is_file():
        ref = Reference.load(cached)
        ref.check_backbone(backbone)
        log.info("using cached reference %s (built from %s)", cached, ref.source or "?")
        return ref
    shipped = shipped_reference_path(backbone.key, image_size, images_per_class)
    if shipped is not None:
        ref = Reference.load(shipped)
        ref.check_backbone(backbone)
        return ref
    if not download or offline():
        why = "downloads are off" if not download else f"${OFFLINE_ENV} is set"
        raise SimilarityReferenceError(
            f"no similarity reference for backbone {backbone.key!r} at {image_size} px, k={images_per_class} "
            f"(none cached in {reference_cache_dir()}, none shipped, and {why})", hint=REBUILD_HINT)
    root = _download_tiny_imagenet(reference_cache_dir(), progress=progress)
    ref = build_reference(root, backbone, image_size=image_size, images_per_class=images_per_class, progress=progress)
    _save_to_cache(ref, cached)
    return ref


def _save_to_cache(ref: Reference, cached: Path) -> None:
    try:
        ref.save(cached)
        log.info("cached similarity reference at %s", cached)
    except OSError as exc:
        log.warning("could not cache the similarity reference at %s: %s", cached, exc)

