"""Penultimate features of image files: decode (reduced-scale JPEG, squash to a square) in
background threads, and run the backbone in batches under ``torch.inference_mode``."""
from __future__ import annotations

import logging
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from .._progress import progress as progress_bar
from ..backbones import Backbone
from ..data import load_image
from ..exceptions import DatasetError

__all__ = ["DEFAULT_IMAGE_SIZE", "DEFAULT_BATCH_SIZE", "CHANNELS_LAST_MIN_SIZE", "decode_image", "embed_images"]

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 128
DEFAULT_BATCH_SIZE = 16  # measured: EfficientNet-Lite0 on 2 CPU cores runs 2-3x faster at 16 than at 64
# measured (benchmarks/embed_throughput.py, 1 thread): ResNet-18 at 64 px runs 75 img/s NCHW vs
# 51 channels_last; at 224 px channels_last is the faster one
CHANNELS_LAST_MIN_SIZE = 160
_PREFETCH_BATCHES = 2                                   # batches decoded ahead of the forward pass
_DECODE_WORKERS = max(1, min(2, os.cpu_count() or 1))   # two decode big PNGs at CPU speed, not one core


def decode_image(path: str | os.PathLike, size: int) -> np.ndarray | None:
    """``path`` as a (size, size, 3) uint8 array, or None when it cannot be decoded.

    Decoded with :func:`finetune_advisor.data.load_image` (reduced-scale JPEG decoding) and
    squashed to ``size`` x ``size`` with bilinear resampling (no crop, aspect not kept).
    """
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
        arr = decode_image(p, size)
        if arr is not None:
            arrays.append(arr)
            ok.append(i)
    if not arrays:
        return np.empty((0, size, size, 3), np.uint8), ok
    return np.stack(arrays), ok


def _prefetched_batches(paths: Sequence, size: int, batch_size: int) -> Iterator[tuple[int, np.ndarray, list[int]]]:
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


def embed_images(backbone: Backbone, paths: Sequence[str | os.PathLike], image_size: int = DEFAULT_IMAGE_SIZE,
                 batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
                 pool: str = "avg") -> tuple[np.ndarray, list[int]]:
    """Penultimate features of the images at ``paths``.

    Each image is decoded with :func:`decode_image` (reduced-scale JPEG decoding, squashed to
    ``image_size`` x ``image_size`` with bilinear resampling: no crop, like fastai's
    ``ResizeMethod.Squash``), normalised with ``backbone.mean``/``backbone.std`` and passed
    through :meth:`Backbone.features` in eval mode under ``torch.inference_mode``. The next
    batches are decoded in background threads while the network runs. Images that cannot be
    decoded are skipped and their indices returned; they never raise.

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
        Show progress on stderr.
    pool : {"avg", "concat"}, default="avg"
        ``"avg"``: :meth:`Backbone.features` (the similarity's); ``"concat"``: what fastai's
        head takes, :meth:`Backbone.concat_features` (2 x n_features: max then average pool).

    Returns
    -------
    embeddings : ndarray of float32, shape (n_ok, n_features) (``2 * n_features`` for ``"concat"``)
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
    if pool not in ("avg", "concat"):
        raise ValueError(f"pool must be 'avg' or 'concat', got {pool!r}")
    forward = backbone.features if pool == "avg" else backbone.concat_features
    width = backbone.n_features * (1 if pool == "avg" else 2)
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
    batches = progress_bar(_prefetched_batches(paths, image_size, batch_size), total=n_batches,
                           desc="embedding images", enabled=progress and n_batches > 0)
    was_training = body.training
    body.eval()
    try:
        with torch.inference_mode():
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
                if image_size < CHANNELS_LAST_MIN_SIZE:  # small inputs: NCHW is faster on CPU
                    x = x.contiguous()
                x.sub_(mean).mul_(inv_std)
                feats = forward(x)
                chunks.append(feats.float().cpu().numpy())
    finally:
        batches.close()  # now, not at garbage collection: stops the decoders, ends any stdout redirect
        body.train(was_training)
    emb = (np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32) if chunks
           else np.empty((0, int(width)), np.float32))
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
