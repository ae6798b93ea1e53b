"""How near a dataset is to ImageNet: the EMD between its class means and Tiny-ImageNet's under
the backbone's features (the method: :mod:`.measure`).

Modules: ``embed`` (decode and embed images), ``transport`` (pure EMD with a cosine cost, the
class-count floor), ``reference`` (the reference file, its names and cache paths), ``sources``
(build, cache, ship or download a reference: :func:`get_reference`), ``measure``
(:func:`dataset_similarity` -> :class:`SimilarityResult`, the bootstrap, the thresholds).

>>> import numpy as np
>>> emd, plan = emd_similarity(np.eye(2), [1, 1], np.eye(2), [1, 1])
>>> round(emd, 6), plan.round(2).tolist()
(0.0, [[0.5, 0.0], [0.0, 0.5]])
"""
from ..measurements import SimilarityResult
from .embed import DEFAULT_BATCH_SIZE, DEFAULT_IMAGE_SIZE, embed_images
from .measure import DEFAULT_BOOTSTRAP, DEFAULT_MAX_IMAGES, THRESHOLDS, dataset_similarity, threshold_for
from .reference import (CACHE_ENV, DEFAULT_IMAGES_PER_CLASS, Reference, describe_reference, reference_cache_dir,
                        reference_cache_path, reference_filename, shipped_reference_path)
from .sources import TINY_IMAGENET_URL, build_reference, get_reference
from .transport import emd_floor, emd_similarity

__all__ = [
    "dataset_similarity", "SimilarityResult", "threshold_for", "THRESHOLDS",
    "Reference", "get_reference", "build_reference", "reference_cache_path", "shipped_reference_path",
    "reference_cache_dir", "reference_filename", "describe_reference", "embed_images", "emd_similarity", "emd_floor",
    "DEFAULT_IMAGE_SIZE", "DEFAULT_IMAGES_PER_CLASS", "DEFAULT_MAX_IMAGES", "DEFAULT_BOOTSTRAP", "DEFAULT_BATCH_SIZE",
    "CACHE_ENV", "TINY_IMAGENET_URL",
]
