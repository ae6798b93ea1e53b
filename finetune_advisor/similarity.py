"""How far is a dataset from ImageNet? Cui et al. (CVPR 2018, §4.1) with a cosine ground distance.

The method, as the Fellowship.AI study (seed 002, "Measuring distance to ImageNet") ran it:

1. Embed a class-stratified sample of the dataset with the backbone's penultimate features
   (:meth:`Backbone.features`, the global-average-pooled body) and average them into one mean
   feature vector per class. A multi-label image is eligible for every class it carries.
2. Do the same for Tiny-ImageNet's 200 classes once: the *reference* (:class:`Reference`).
3. Solve the optimal transport (Earth Mover's Distance) between the two sets of class means:

   .. math::

      d(i, j) = 1 - \\cos(\\mu_i, \\nu_j), \\qquad
      \\mathrm{EMD} = \\min_{T \\ge 0,\\ T\\mathbf{1} = a,\\ T^\\top\\mathbf{1} = b}
                     \\sum_{ij} T_{ij}\\, d(i, j), \\qquad
      \\mathrm{similarity} = \\operatorname{clip}(1 - (\\mathrm{EMD} - \\mathrm{EMD}_0), 0, 1)

   where ``a_i`` is proportional to class *i*'s image count in the **full** dataset and
   ``b_j`` to reference class *j*'s image count, each normalised to sum 1 (classes with more
   images weigh more, as in Cui et al.). Penultimate features after a ReLU are non-negative,
   so the cosine lies in [0, 1] and so do ``d`` and the EMD; the clip only matters for
   backbones whose features can be negative. The cosine of a zero vector is defined as 0.
   POT solves it exactly: ``ot.emd2`` for the cost and ``ot.emd`` for the transport plan.
4. Subtract the class-count floor ``EMD_0`` (:func:`emd_floor`): the EMD that ImageNet's own
   classes pay with the dataset's class weights (``k`` reference class means drawn at random,
   32 seeded draws). Without it the score measures the number of classes as much as the
   domain: a 6-class dataset must spread each class over ~33 reference classes, and 6
   Tiny-ImageNet val classes scored 0.70 where all 200 scored 0.90 (EfficientNet-Lite0).
   With it the same subsets (1 / 6 / 40 / 200 classes) score 0.98 / 0.98 / 0.96 / 0.90,
   so the study's 0.72 cut-off means the same thing for 3 classes as for 200. The raw EMD
   and the floor are both reported (``SimilarityResult.emd``, ``.emd_floor``) and logged.

The score depends on how many images are averaged per class and on the input resolution
(the same Tiny-ImageNet val images scored 0.915 with 10 images per class and 0.809 with 3;
128 -> 224 px moved scores by up to +0.13), so both are part of the method: the reference
stores ``image_size`` and ``images_per_class`` and :func:`dataset_similarity` uses them.
Images are squashed to ``image_size`` x ``image_size`` (no crop, like fastai's
``ResizeMethod.Squash``) with bilinear resampling.

Uncertainty comes from a bootstrap over the embedded images (each class's images resampled
with replacement). Resampling repeats images, which lowers every resampled score a little
(a mean of fewer distinct images); the reported interval is therefore the bootstrap's
2.5-97.5 percentile spread *centred on the point estimate* (``similarity + q - median``) and
the shift itself is reported as ``bootstrap_bias``.

The verdict is ``far = similarity < threshold``, with per-backbone thresholds in
:data:`THRESHOLDS` (default 0.72, the study's value, until calibrated for each backbone).

>>> import numpy as np
>>> emd, plan = emd_similarity(np.eye(2), [1, 1], np.eye(2), [1, 1])
>>> round(emd, 6), plan.round(2).tolist()
(0.0, [[0.5, 0.0], [0.0, 0.5]])
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from .exceptions import DatasetError, SimilarityReferenceError
from ._io import atomic_open
from .data import IMAGE_EXTENSIONS
from .backbones import OFFLINE_ENV, offline

if TYPE_CHECKING:  # pragma: no cover
    from .backbones import Backbone
    from .data import Dataset

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_IMAGE_SIZE", "DEFAULT_IMAGES_PER_CLASS", "DEFAULT_MAX_IMAGES", "DEFAULT_BOOTSTRAP",
    "DEFAULT_THRESHOLD", "THRESHOLDS", "TINY_IMAGENET_URL", "CACHE_ENV",
    "embed_images", "Reference", "build_reference", "reference_cache_dir", "reference_filename",
    "reference_cache_path",
    "shipped_reference_path", "get_reference", "emd_similarity", "SimilarityResult",
    "dataset_similarity", "threshold_for",
]

DEFAULT_IMAGE_SIZE = 128
DEFAULT_IMAGES_PER_CLASS = 20
DEFAULT_MAX_IMAGES = 4000
DEFAULT_BOOTSTRAP = 200
DEFAULT_FLOOR_DRAWS = 32  # draws for emd_floor: its seed-to-seed spread is ~0.005 at 6 classes
DEFAULT_BATCH_SIZE = 16  # measured: EfficientNet-Lite0 on 2 CPU cores runs 2-3x faster at 16 than at 64

#: The study's near/far cut-off (ResNet-34 features, Tiny-ImageNet reference).
DEFAULT_THRESHOLD = 0.72
#: Near/far threshold per backbone key; uncalibrated keys use :data:`DEFAULT_THRESHOLD`.
THRESHOLDS: dict[str, float] = {
    "resnet18": DEFAULT_THRESHOLD,
    "resnet34": DEFAULT_THRESHOLD,
    "resnet50": DEFAULT_THRESHOLD,
    "resnet101": DEFAULT_THRESHOLD,
    "resnet152": DEFAULT_THRESHOLD,
    "efficientnet_lite0": DEFAULT_THRESHOLD,
}

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
CACHE_ENV = "FINETUNE_ADVISOR_CACHE"          # root of the cache; references live in <root>/references
REFERENCE_FORMAT = 1
REBUILD_HINT = ("build one with `finetune-advisor reference build PATH` (PATH: a Tiny-ImageNet copy) "
                "or pass a reference file or folder with `--reference PATH` / get_reference(path=...)")

_IMAGE_EXTS = IMAGE_EXTENSIONS | {".ppm", ".pgm"}  # a reference may also hold netpbm files
# measured (benchmarks/embed_throughput.py, 1 thread): ResNet-18 at 64 px runs 75 img/s NCHW vs
# 51 channels_last; at 224 px channels_last is the faster one
_CHANNELS_LAST_MIN_SIZE = 160
_PREFETCH_BATCHES = 2                                   # batches decoded ahead of the forward pass
_DECODE_WORKERS = max(1, min(2, os.cpu_count() or 1))   # two decode big PNGs at CPU speed, not one core


def threshold_for(backbone_key: str) -> float:
    """The near/far threshold for ``backbone_key`` (:data:`THRESHOLDS`, else 0.72).

    >>> threshold_for("efficientnet_lite0"), threshold_for("my_net")
    (0.72, 0.72)
    """
    return float(THRESHOLDS.get(backbone_key, DEFAULT_THRESHOLD))


# --- embedding --------------------------------------------------------------------

def _decode_one(path: str | os.PathLike, size: int) -> np.ndarray | None:
    """``path`` as a (size, size, 3) uint8 array, or None when it cannot be decoded."""
    from PIL import Image

    from .data import load_image
    try:
        img = load_image(path, size)
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)  # squash: no crop, aspect not kept
        arr = np.asarray(img, dtype=np.uint8)
        if arr.shape != (size, size, 3):
            raise DatasetError(f"decoded to shape {arr.shape}", path=path)
        return arr
    except DatasetError as exc:
        log.debug("skipped %s", exc)
    except Exception as exc:  # a broken file must never stop the run: count it and go on
        log.debug("skipped %s: %s: %s", path, type(exc).__name__, exc)
    return None


def _decode_batch(paths: Sequence, size: int) -> tuple[np.ndarray, list[int]]:
    """Decode ``paths``: (uint8 array [m, size, size, 3] of the good ones, their positions)."""
    arrays, ok = [], []
    for i, p in enumerate(paths):
        arr = _decode_one(p, size)
        if arr is not None:
            arrays.append(arr)
            ok.append(i)
    if not arrays:
        return np.empty((0, size, size, 3), np.uint8), ok
    return np.stack(arrays), ok


def _prefetched_batches(paths: Sequence, size: int, batch_size: int):
    """Yield ``(start, uint8 batch, ok positions)``, decoding the next batches in threads.

    Pillow releases the GIL while it decodes and resizes, so decoding overlaps the forward
    pass, and two workers keep both cores busy when decoding is the bottleneck (large PNGs).
    """
    starts = iter(range(0, len(paths), batch_size))
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=_DECODE_WORKERS, thread_name_prefix="fa-decode") as pool:
        try:
            for _ in range(_PREFETCH_BATCHES):
                s = next(starts, None)
                if s is None:
                    break
                pending.append((s, pool.submit(_decode_batch, paths[s:s + batch_size], size)))
            while pending:
                s, fut = pending.popleft()
                batch, ok = fut.result()
                nxt = next(starts, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(_decode_batch, paths[nxt:nxt + batch_size], size)))
                yield s, batch, ok
        finally:
            for _, fut in pending:
                fut.cancel()


def embed_images(backbone: "Backbone", paths: Sequence[str | os.PathLike], image_size: int = DEFAULT_IMAGE_SIZE,
                 batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """Penultimate features of the images at ``paths``.

    Each image is decoded with :func:`finetune_advisor.data.load_image` (reduced-scale JPEG
    decoding), squashed to ``image_size`` x ``image_size`` with bilinear resampling (no crop,
    like fastai's ``ResizeMethod.Squash``), normalised with ``backbone.mean``/``backbone.std``
    and passed through :meth:`Backbone.features` in eval mode under ``torch.inference_mode``.
    The next batches are decoded in background threads while the network runs. Images that
    cannot be decoded are skipped and their indices returned; they never raise.

    Parameters
    ----------
    backbone : Backbone
        The feature extractor; its mode is restored afterwards.
    paths : sequence of path
        Image files.
    image_size : int, default=128
        Side of the square input.
    batch_size : int, default=16
        Images per forward pass. On CPU small batches are faster for EfficientNet-Lite0
        (cache-bound depthwise convolutions); on a GPU use more.
    progress : bool, default=True
        Show a fastprogress bar.

    Returns
    -------
    embeddings : ndarray of float32, shape (n_ok, n_features)
        One row per image that decoded, in the order of ``paths`` with failures removed.
    failed : list of int
        Indices into ``paths`` of the images that could not be decoded (or whose features
        were not finite), sorted.

    Examples
    --------
    >>> from finetune_advisor.backbones import create_backbone
    >>> emb, failed = embed_images(create_backbone("resnet18", pretrained=False), [], progress=False)
    >>> emb.shape, failed
    ((0, 512), [])
    """
    import torch

    if image_size < 1 or batch_size < 1:
        raise ValueError(f"image_size and batch_size must be positive, got {image_size} and {batch_size}")
    paths = list(paths)
    n = len(paths)
    body = backbone.body
    param = next(iter(body.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    mean = torch.tensor([255.0 * m for m in backbone.mean], device=device).view(1, 3, 1, 1)
    inv_std = torch.tensor([1.0 / (255.0 * s) for s in backbone.std], device=device).view(1, 3, 1, 1)
    chunks: list[np.ndarray] = []
    failed: list[int] = []
    n_batches = math.ceil(n / batch_size)
    batches = _prefetched_batches(paths, image_size, batch_size)
    was_training = body.training
    body.eval()
    try:
        # fastprogress prints on stdout, which carries results (`recommend --json > config.json`)
        with torch.inference_mode(), contextlib.redirect_stdout(sys.stderr):
            if progress and n_batches:
                from fastprogress.fastprogress import progress_bar
                batches = progress_bar(batches, total=n_batches, leave=False)
            for start, batch, ok in batches:
                size = min(batch_size, n - start)
                if len(ok) < size:
                    okset = set(ok)
                    failed.extend(start + i for i in range(size) if i not in okset)
                if not len(ok):
                    continue
                # NHWC uint8 -> NCHW float; the permuted view is channels_last, which the
                # CPU convolutions prefer, and the normalisation runs in place.
                x = torch.from_numpy(batch).to(device, non_blocking=True).permute(0, 3, 1, 2).float()
                if image_size < _CHANNELS_LAST_MIN_SIZE:  # small inputs: NCHW is faster on CPU
                    x = x.contiguous()
                x.sub_(mean).mul_(inv_std)
                feats = backbone.features(x)
                chunks.append(feats.float().cpu().numpy())
    finally:
        body.train(was_training)
    emb = (np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32) if chunks
           else np.empty((0, int(backbone.n_features)), np.float32))
    bad_rows = ~np.isfinite(emb).all(axis=1)
    if bad_rows.any():  # e.g. an overflowing random-init network: treat like undecodable images
        ok_idx = np.setdiff1d(np.arange(n), np.asarray(failed, np.int64), assume_unique=True)
        log.warning("%d images gave non-finite features and were skipped", int(bad_rows.sum()))
        failed = sorted(failed + ok_idx[bad_rows].tolist())
        emb = emb[~bad_rows]
    if failed:
        log.warning("%d of %d images could not be embedded and were skipped (first: %s)",
                    len(failed), n, paths[failed[0]])
    return emb, failed


# --- optimal transport ------------------------------------------------------------

def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (so their cosine with anything is 0)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b`` (0 for zero rows)."""
    return np.clip(_normalise_rows(a) @ _normalise_rows(b).T, -1.0, 1.0)


def _weights(w: Iterable[float], name: str, n: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{name} has {w.shape[0]} entries for {n} class means")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"{name} must be finite, non-negative and not all zero, got {w.tolist()[:5]}...")
    return w / w.sum()


def _emd_cost(a: np.ndarray, b: np.ndarray, cos: np.ndarray) -> float:
    import ot
    cost = np.clip(1.0 - np.asarray(cos, dtype=np.float64), 0.0, 2.0)
    return float(ot.emd2(a, b, cost, numItermax=1_000_000))


def emd_similarity(means_a: np.ndarray, weights_a: Iterable[float], means_b: np.ndarray,
                   weights_b: Iterable[float]) -> tuple[float, np.ndarray]:
    """Earth Mover's Distance between two weighted sets of class means, cosine ground distance.

    Parameters
    ----------
    means_a : ndarray, shape (n_a, d)
        One feature vector per class of the first set.
    weights_a : array-like, shape (n_a,)
        Non-negative class weights (e.g. image counts); normalised to sum 1.
    means_b : ndarray, shape (n_b, d)
        Class means of the second set.
    weights_b : array-like, shape (n_b,)
        Its class weights.

    Returns
    -------
    emd : float
        ``sum(plan * (1 - cos))``, in [0, 1] for non-negative features (at most 2 otherwise).
    plan : ndarray, shape (n_a, n_b)
        The optimal transport plan (rows sum to ``a``, columns to ``b``).

    Examples
    --------
    Two classes, each 0.5 cosine-away from the one reference class:

    >>> emd, plan = emd_similarity([[1, 0], [0, 1]], [3, 1], [[1, 1]], [1])
    >>> round(emd, 4), plan.round(2).tolist()
    (0.2929, [[0.75], [0.25]])
    """
    import ot
    means_a = np.asarray(means_a, dtype=np.float64)
    means_b = np.asarray(means_b, dtype=np.float64)
    if means_a.ndim != 2 or means_b.ndim != 2 or means_a.shape[1] != means_b.shape[1]:
        raise ValueError(f"class means must be 2-D with the same width, got {means_a.shape} and {means_b.shape}")
    a = _weights(weights_a, "weights_a", means_a.shape[0])
    b = _weights(weights_b, "weights_b", means_b.shape[0])
    cost = np.clip(1.0 - _cosine_matrix(means_a, means_b), 0.0, 2.0)
    plan = ot.emd(a, b, cost, numItermax=1_000_000)
    emd = float(ot.emd2(a, b, cost, numItermax=1_000_000))
    return emd, np.asarray(plan)


def emd_floor(weights: Iterable[float], ref_means: np.ndarray, ref_weights: Iterable[float], *,
              draws: int = DEFAULT_FLOOR_DRAWS, seed: int = 0) -> float:
    """The EMD an in-domain dataset with these class weights pays: the class-count floor.

    A dataset of ``k`` classes must spread each class's mass over ``n_ref / k`` reference
    classes, so even ImageNet's own classes score an EMD far above 0 when ``k`` is small
    (measured, EfficientNet-Lite0: 1 / 6 / 40 / 200 Tiny-ImageNet val classes scored
    1 - EMD = 0.63 / 0.70 / 0.78 / 0.90). The floor is the mean EMD, over ``draws`` seeded
    draws, of the reference's own class means: ``k`` of them picked at random (with
    replacement when ``k > n_ref``) and given ``weights``, against the whole reference.

    Examples
    --------
    Every reference class drawn: the floor is 0. One class of two orthogonal ones: it must
    send half its mass across, at distance 1.

    >>> ref = np.eye(2)
    >>> emd_floor([1, 1], ref, [1, 1]), emd_floor([1], ref, [1, 1])
    (0.0, 0.5)
    """
    import ot
    ref = np.asarray(ref_means, dtype=np.float64)
    b = _weights(ref_weights, "ref_weights", ref.shape[0])
    w = np.asarray(list(weights), dtype=np.float64)
    a = _weights(w, "weights", len(w))
    n_ref, k = ref.shape[0], len(a)
    cost_rr = np.clip(1.0 - _cosine_matrix(ref, ref), 0.0, 2.0)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(max(1, int(draws))):
        rows = rng.choice(n_ref, size=k, replace=k > n_ref)
        total += float(ot.emd2(a, b, cost_rr[rows], numItermax=1_000_000))
    return total / max(1, int(draws))


# --- the reference ----------------------------------------------------------------

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

    def check_backbone(self, backbone: "Backbone") -> None:
        """Raise :class:`SimilarityReferenceError` unless built with ``backbone``'s weights."""
        if self.backbone_key != backbone.key:
            raise SimilarityReferenceError(
                f"similarity reference was built with backbone {self.backbone_key!r}, not {backbone.key!r}",
                path=self.path, hint=f"use a reference built with {backbone.key!r}; {REBUILD_HINT}")


def reference_filename(backbone_key: str, image_size: int = DEFAULT_IMAGE_SIZE,
                       images_per_class: int = DEFAULT_IMAGES_PER_CLASS) -> str:
    """Cache/resource file name of a reference.

    >>> reference_filename("efficientnet_lite0")
    'reference_efficientnet_lite0_128px_k20.npz'
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", backbone_key)
    return f"reference_{safe}_{int(image_size)}px_k{int(images_per_class)}.npz"


def reference_cache_dir() -> Path:
    """Where built references are cached: ``<cache>/references``.

    ``<cache>`` is ``$FINETUNE_ADVISOR_CACHE`` when set, else platformdirs' user cache dir
    for ``finetune-advisor`` (e.g. ``~/.cache/finetune-advisor``). Not created here.
    """
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        import platformdirs
        base = Path(platformdirs.user_cache_dir("finetune-advisor"))
    return base / "references"


def reference_cache_path(backbone: "Backbone | str", image_size: int = DEFAULT_IMAGE_SIZE,
                         images_per_class: int = DEFAULT_IMAGES_PER_CLASS) -> Path:
    """Where :func:`get_reference` caches the reference for ``backbone`` (a Backbone or its key).

    >>> reference_cache_path("resnet34").name
    'reference_resnet34_128px_k20.npz'
    """
    key = backbone if isinstance(backbone, str) else backbone.key
    return reference_cache_dir() / reference_filename(key, image_size, images_per_class)


def shipped_reference_path(backbone_key: str, image_size: int = DEFAULT_IMAGE_SIZE,
                           images_per_class: int = DEFAULT_IMAGES_PER_CLASS) -> Path | None:
    """The reference shipped in the package for this key/size/k (only efficientnet_lite0), if any."""
    from importlib import resources
    try:
        res = resources.files("finetune_advisor") / "resources" / reference_filename(
            backbone_key, image_size, images_per_class)
        path = Path(str(res))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - zipped installs
        return None
    return path if path.is_file() else None


def _scan_class_folders(split_dir: Path) -> dict[str, list[Path]]:
    """ImageFolder-style: class -> sorted image files anywhere under ``split_dir/<class>/``.

    The official Tiny-ImageNet ``val/`` (flat ``images/`` + ``val_annotations.txt``) is also read.
    """
    annotations = split_dir / "val_annotations.txt"
    if annotations.is_file() and (split_dir / "images").is_dir():
        classes: dict[str, list[Path]] = {}
        for line in annotations.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                classes.setdefault(parts[1], []).append(split_dir / "images" / parts[0])
        return {c: sorted(v) for c, v in sorted(classes.items())}
    classes = {}
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        files = []
        for dirpath, dirnames, filenames in os.walk(entry.path):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            files.extend(Path(dirpath) / f for f in filenames
                         if not f.startswith(".") and Path(f).suffix.lower() in _IMAGE_EXTS)
        if files:
            classes[entry.name] = sorted(files)
    return classes


def _read_words(*candidates: Path) -> dict[str, str]:
    for cand in candidates:
        if cand.is_file():
            words = {}
            for line in cand.read_text(encoding="utf-8", errors="replace").splitlines():
                wnid, _, names = line.partition("\t")
                if wnid and names:
                    words[wnid.strip()] = names.strip()
            return words
    return {}


def build_reference(path: str | os.PathLike, backbone: "Backbone", *, image_size: int = DEFAULT_IMAGE_SIZE,
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
        Images averaged per class (a seeded random sample); recorded likewise.
    split : str, default="train"
        Sub-folder to read when present.
    seed : int, default=0
        Sampling seed.
    progress : bool, default=True
        Show a progress bar.

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
    classes = _scan_class_folders(split_dir)
    if not classes:
        raise SimilarityReferenceError(f"no class folders with images in {split_dir}", path=root,
                                       hint="expected <class>/<image> files, e.g. tiny-imagenet-200/train/<wnid>/...")
    words = _read_words(root / "words.txt", split_dir / "words.txt", split_dir.parent / "words.txt")
    rng = np.random.default_rng(seed)
    sample: list[Path] = []
    owners: list[int] = []
    for ci, files in enumerate(classes.values()):
        if len(files) > images_per_class:
            files = [files[i] for i in np.sort(rng.choice(len(files), images_per_class, replace=False))]
        sample.extend(files)
        owners.extend([ci] * len(files))
    log.info("building similarity reference from %s: %d classes, %d images at %d px with %s",
             split_dir, len(classes), len(sample), image_size, backbone.key)
    emb, failed = embed_images(backbone, sample, image_size=image_size, progress=progress)
    keep = np.ones(len(sample), bool)
    keep[failed] = False
    owners_ok = np.asarray(owners, np.int64)[keep]
    ids, names, means, counts = [], [], [], []
    for ci, (cls, files) in enumerate(classes.items()):
        rows = emb[owners_ok == ci]
        if not len(rows):
            log.warning("reference class %s: no image could be decoded; left out", cls)
            continue
        ids.append(cls)
        names.append(words.get(cls, ""))
        means.append(rows.mean(axis=0))
        counts.append(len(files))
    if not ids:
        raise SimilarityReferenceError("no reference image could be decoded", path=split_dir)
    return Reference(backbone_key=backbone.key, image_size=int(image_size), images_per_class=int(images_per_class),
                     class_ids=tuple(ids), class_names=tuple(names), class_means=np.stack(means).astype(np.float32),
                     class_counts=np.asarray(counts, np.int64), source=str(split_dir.resolve()),
                     created=datetime.now(timezone.utc).isoformat(timespec="seconds"))




def _download_tiny_imagenet(dest: Path, *, progress: bool = True) -> Path:
    """Download and extract the official Tiny-ImageNet archive under ``dest``; the dataset root."""
    import shutil
    import urllib.request
    import zipfile

    root = dest / "tiny-imagenet-200"
    done = dest / ".tiny-imagenet-200.complete"
    if done.is_file() and root.is_dir():
        return root
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "tiny-imagenet-200.zip"
    part = dest / "tiny-imagenet-200.zip.part"
    log.info("downloading %s into %s", TINY_IMAGENET_URL, dest)
    try:
        with urllib.request.urlopen(TINY_IMAGENET_URL, timeout=20) as resp, open(part, "wb") as fh, \
                contextlib.redirect_stdout(sys.stderr):  # the progress bar is not a result
            total = int(resp.headers.get("Content-Length") or 0)
            chunk = 1 << 20
            n_chunks = max(1, math.ceil(total / chunk)) if total else None
            chunks = iter(lambda: resp.read(chunk), b"")
            if progress and n_chunks:
                from fastprogress.fastprogress import progress_bar
                chunks = progress_bar(chunks, total=n_chunks, leave=False)
            for block in chunks:
                fh.write(block)
        os.replace(part, archive)
    except Exception as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise SimilarityReferenceError(f"cannot download Tiny-ImageNet ({TINY_IMAGENET_URL}): {reason}",
                                       hint=REBUILD_HINT) from None
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


def get_reference(backbone: "Backbone", *, path: str | os.PathLike | None = None,
                  image_size: int = DEFAULT_IMAGE_SIZE, images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
                  download: bool = True, progress: bool = True) -> Reference:
    """The similarity reference for ``backbone``, from the first source that has one.

    1. ``path`` is a reference ``.npz``: load it (its own image size and k apply).
    2. ``path`` is a dataset folder: build from it (``image_size``, ``images_per_class``) and
       cache it per backbone key; a cached reference built from the same folder is reused.
    3. The cache (:func:`reference_cache_dir`) has one for this key, size and k: load it.
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
        Progress bars while downloading/building.

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
        if cached.is_file():
            try:
                ref = Reference.load(cached)
                if ref.backbone_key == backbone.key and ref.source in (str(p.resolve()), str((p / "train").resolve())):
                    log.info("using cached reference %s (built from %s)", cached, ref.source)
                    return ref
            except SimilarityReferenceError as exc:
                log.warning("ignoring unreadable cached reference: %s", exc)
        ref = build_reference(p, backbone, image_size=image_size, images_per_class=images_per_class, progress=progress)
        _save_to_cache(ref, cached)
        return ref
    if cached.is_file():
        ref = Reference.load(cached)
        ref.check_backbone(backbone)
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


# --- dataset similarity -----------------------------------------------------------

@dataclass(frozen=True)
class SimilarityResult:
    """How near a dataset is to ImageNet, with its uncertainty and an explanation.

    ``matches`` maps each dataset class to up to three reference classes it sends transport
    mass to, as ``(ref_id, ref_name, cosine)`` sorted by cosine (highest first).
    ``short_classes`` maps classes that had fewer than ``images_per_class`` embedded images
    to the number used. ``ci_low``/``ci_high`` is the 95% bootstrap interval (see the module
    docstring); ``bootstrap_bias`` is the median resampled score minus ``similarity``.
    ``failed_paths`` are the ``n_failed`` images left out (undecodable, or non-finite features).
    """

    similarity: float
    emd: float
    std: float
    ci_low: float
    ci_high: float
    threshold: float
    far: bool
    backbone_key: str
    image_size: int
    images_per_class: int
    n_images_embedded: int
    n_failed: int
    n_classes_used: int
    short_classes: Mapping[str, int] = field(default_factory=dict)
    matches: Mapping[str, tuple[tuple[str, str | None, float], ...]] = field(default_factory=dict)
    class_subsampled: bool = False
    bootstrap_rounds: int = 0
    bootstrap_bias: float = 0.0
    reference_source: str = ""
    failed_paths: tuple[str, ...] = ()
    emd_floor: float = 0.0          # class-count floor subtracted from the EMD (see emd_floor)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists for tuples)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "matches":
                value = {c: [[rid, rname, float(cos)] for rid, rname, cos in ms] for c, ms in value.items()}
            elif name == "short_classes":
                value = {c: int(n) for c, n in value.items()}
            elif name == "failed_paths":
                value = list(value)
            elif isinstance(value, (np.floating, np.integer, np.bool_)):
                value = value.item()
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SimilarityResult":
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["matches"] = {c: tuple((m[0], m[1], float(m[2])) for m in ms)
                           for c, ms in data.get("matches", {}).items()}
        data["short_classes"] = dict(data.get("short_classes", {}))
        data["failed_paths"] = tuple(data.get("failed_paths", ()))
        return cls(**data)


def _class_members(dataset: "Dataset") -> dict[str, list[int]]:
    """Class -> indices of the items carrying it, in ``dataset.classes`` order (empty classes dropped)."""
    members: dict[str, list[int]] = {c: [] for c in dataset.classes}
    for i, item in enumerate(dataset.items):
        for label in dict.fromkeys(item.labels):  # a label listed twice counts once
            members.setdefault(label, []).append(i)
    return {c: idx for c, idx in members.items() if idx}


def _bootstrap_cosines(emb: np.ndarray, rows: list[np.ndarray], ref_unit: np.ndarray, rounds: int,
                       rng: np.random.Generator):
    """Yield, per bootstrap round, the (n_classes, n_ref) cosine matrix of resampled class means.

    With ``K`` the resample counts of one class's images ``E``, the mean is ``K @ E / n``; its
    cosine with a unit reference mean ``r`` is ``(K @ (E r)) / sqrt(K G K)`` with ``G = E E^T``,
    so each round costs O(n^2 + n * n_ref) per class instead of O(n * d).
    """
    proj = [emb[r] @ ref_unit.T for r in rows]            # (n_c, n_ref)
    gram = [emb[r] @ emb[r].T for r in rows]              # (n_c, n_c)
    n_ref = ref_unit.shape[0]
    chunk = max(1, min(rounds, 4_000_000 // max(1, len(rows) * n_ref)))
    done = 0
    while done < rounds:
        m = min(chunk, rounds - done)
        cos = np.empty((m, len(rows), n_ref), np.float64)
        for c, (p, g) in enumerate(zip(proj, gram)):
            n = p.shape[0]
            draws = rng.integers(0, n, size=(m, n))
            counts = np.zeros((m, n), np.float64)
            np.add.at(counts, (np.repeat(np.arange(m), n), draws.ravel()), 1.0)
            num = counts @ p
            norm = np.sqrt(np.clip(np.einsum("bi,ij,bj->b", counts, g, counts), 0.0, None))
            cos[:, c, :] = np.divide(num, norm[:, None], out=np.zeros_like(num), where=norm[:, None] > 0)
        for b in range(m):
            yield np.clip(cos[b], -1.0, 1.0)
        done += m


def dataset_similarity(dataset: "Dataset", backbone: "Backbone", reference: Reference, *,
                       threshold: float | None = None, max_images: int = DEFAULT_MAX_IMAGES,
                       bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, progress: bool = True,
                       image_size: int | None = None, images_per_class: int | None = None) -> SimilarityResult:
    """Similarity of ``dataset`` to ImageNet: 1 - (EMD - class-count floor) to Tiny-ImageNet.

    Samples ``reference.images_per_class`` images per class (seeded; a class with fewer uses
    all it has and is listed in ``short_classes``), embeds them at ``reference.image_size``,
    averages per class and solves the EMD against the reference (see the module docstring).
    Class weights are the classes' image counts in the full dataset. When
    ``n_classes * images_per_class > max_images`` a seeded random subset of
    ``max_images // images_per_class`` classes is used (``class_subsampled``), weights
    renormalised over it.

    Parameters
    ----------
    dataset : Dataset
        The labelled images (multi-label: an image can be sampled for each class it carries).
    backbone : Backbone
        Must match ``reference.backbone_key``.
    reference : Reference
        From :func:`get_reference`.
    threshold : float, optional
        Near/far cut-off; default :func:`threshold_for` the backbone key.
    max_images : int, default=4000
        Cap on images embedded.
    bootstrap : int, default=200
        Bootstrap rounds for ``std`` and the interval; 0 skips it (std 0, interval collapsed).
    seed : int, default=0
        Seed for the sample and the bootstrap.
    progress : bool, default=True
        Show a progress bar while embedding.
    image_size, images_per_class : int, optional
        Leave unset: the reference's values are used. Given and different from the
        reference's, they raise (the score is only comparable at the reference's values).

    Returns
    -------
    SimilarityResult

    Raises
    ------
    SimilarityReferenceError
        The reference was built with another backbone, image size or images per class.
    DatasetError
        The dataset has no labelled images, or none of the sampled images could be decoded.
    """
    reference.check_backbone(backbone)
    for name, forced, used in (("image_size", image_size, reference.image_size),
                               ("images_per_class", images_per_class, reference.images_per_class)):
        if forced is not None and int(forced) != int(used):
            raise SimilarityReferenceError(
                f"{name}={forced} differs from the similarity reference's {name}={used}; "
                "scores are only comparable at the reference's values", path=reference.path,
                hint=f"leave {name} unset, or build a reference with {name}={forced} "
                     f"(`finetune-advisor reference build PATH`)")
    if max_images < 1 or bootstrap < 0:
        raise ValueError(f"max_images must be >= 1 and bootstrap >= 0, got {max_images} and {bootstrap}")
    k, size = int(reference.images_per_class), int(reference.image_size)
    members = _class_members(dataset)
    if not members:
        raise DatasetError("dataset has no labelled images to measure similarity on", path=dataset.root)
    rng = np.random.default_rng(seed)
    classes = list(members)
    subsampled = len(classes) * k > max_images
    if subsampled:
        n_keep = max(1, max_images // k)
        keep = np.sort(rng.choice(len(classes), n_keep, replace=False))
        log.info("%d classes x %d images exceeds max_images=%d: using %d random classes",
                 len(classes), k, max_images, n_keep)
        classes = [classes[i] for i in keep]
    sampled: dict[str, list[int]] = {}
    for c in classes:
        idx = members[c]
        sampled[c] = idx if len(idx) <= k else [idx[i] for i in np.sort(rng.choice(len(idx), k, replace=False))]
    unique = sorted({i for idx in sampled.values() for i in idx})
    emb, failed = embed_images(backbone, [dataset.items[i].path for i in unique], image_size=size, progress=progress)
    failed_items = {unique[j] for j in failed}
    row_of = {}
    for i in unique:
        if i not in failed_items:
            row_of[i] = len(row_of)
    emb64 = emb.astype(np.float64)
    if len(emb64) > 1 and np.allclose(emb64, emb64[:1], rtol=1e-6, atol=1e-9):
        log.warning("all %d embedded images of %s have the same features (constant images?): the score "
                    "compares one feature vector with ImageNet and the classes look alike to %s",
                    len(emb64), dataset.root, backbone.key)
    used, rows, short = [], [], {}
    for c in classes:
        r = np.asarray([row_of[i] for i in sampled[c] if i in row_of], np.int64)
        if len(r) < k:
            short[c] = int(len(r))
        if len(r):
            used.append(c)
            rows.append(r)
    if not used:
        raise DatasetError(f"none of the {len(unique)} sampled images could be decoded", path=dataset.root,
                           hint="check the image files (corrupt or unsupported format)")
    means = np.stack([emb64[r].mean(axis=0) for r in rows])
    weights = np.asarray([len(members[c]) for c in used], np.float64)
    ref_means = reference.class_means.astype(np.float64)
    emd, plan = emd_similarity(means, weights, ref_means, reference.class_counts)
    floor = emd_floor(weights, ref_means, reference.class_counts, seed=seed)
    similarity = float(np.clip(1.0 - (emd - floor), 0.0, 1.0))

    # explanation: where each class's mass goes, ranked by cosine (mass is fixed by the weights)
    cos = _cosine_matrix(means, ref_means)
    names = [n.split(",")[0].strip() or None for n in reference.class_names]
    matches = {}
    for i, c in enumerate(used):
        targets = np.flatnonzero(plan[i] > 1e-12)
        targets = targets[np.argsort(-cos[i, targets], kind="stable")][:3]
        matches[c] = tuple((reference.class_ids[j], names[j], float(cos[i, j])) for j in targets)

    # bootstrap over images
    std, lo, hi, bias = 0.0, similarity, similarity, 0.0
    if bootstrap > 0:
        a = weights / weights.sum()
        b = reference.class_counts.astype(np.float64)
        b /= b.sum()
        sims = np.asarray([float(np.clip(1.0 - (_emd_cost(a, b, cb) - floor), 0.0, 1.0)) for cb in
                           _bootstrap_cosines(emb64, rows, _normalise_rows(ref_means), bootstrap, rng)])
        std = float(np.std(sims, ddof=1)) if bootstrap > 1 else 0.0
        q_lo, med, q_hi = np.percentile(sims, [2.5, 50.0, 97.5])
        bias = float(med - similarity)
        lo = float(np.clip(similarity + (q_lo - med), 0.0, 1.0))
        hi = float(np.clip(similarity + (q_hi - med), 0.0, 1.0))
    thr = threshold_for(backbone.key) if threshold is None else float(threshold)
    log.info("similarity to ImageNet (%s, %d px, k=%d): EMD=%.4f, class-count floor %.4f -> similarity %.3f +- %.3f "
             "[%.3f, %.3f], threshold %.2f -> %s; %d images, %d failed, %d classes%s",
             backbone.key, size, k, emd, floor, similarity, std, lo, hi, thr,
             "far" if similarity < thr else "near", len(row_of), len(failed_items), len(used),
             " (class-subsampled)" if subsampled else "")
    return SimilarityResult(
        similarity=similarity, emd=float(emd), std=std, ci_low=lo, ci_high=hi, threshold=thr,
        far=bool(similarity < thr), backbone_key=backbone.key, image_size=size, images_per_class=k,
        n_images_embedded=len(row_of), n_failed=len(failed_items), n_classes_used=len(used),
        short_classes=short, matches=matches, class_subsampled=bool(subsampled),
        bootstrap_rounds=int(bootstrap), bootstrap_bias=bias, reference_source=reference.source,
        failed_paths=tuple(str(dataset.items[i].path) for i in sorted(failed_items)), emd_floor=float(floor))
