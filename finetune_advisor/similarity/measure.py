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
:data:`THRESHOLDS` (the backbone registry's; the study's 0.72 until calibrated per backbone).
"""
from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Iterator, Mapping

import numpy as np

from ..backbones import BACKBONES, Backbone, get_backbone_entry
from ..data import Dataset
from ..data.sampling import sample_indices, stratified_indices
from ..exceptions import DatasetError, SimilarityReferenceError
from ..measurements import SimilarityResult
from ..study import SIMILARITY_THRESHOLD
from .embed import embed_images
from .reference import Reference, describe_reference
from .transport import cosine_matrix, emd_cost, emd_floor, emd_similarity, normalise_rows

__all__ = ["DEFAULT_MAX_IMAGES", "DEFAULT_BOOTSTRAP", "THRESHOLDS", "threshold_for", "dataset_similarity"]

log = logging.getLogger(__name__)

DEFAULT_MAX_IMAGES = 4000
DEFAULT_BOOTSTRAP = 200
#: Near/far threshold per registered backbone (:class:`~finetune_advisor.backbones.BackboneEntry`);
#: other keys use the study's :data:`~finetune_advisor.study.SIMILARITY_THRESHOLD`.
THRESHOLDS: Mapping[str, float] = MappingProxyType({name: e.threshold for name, e in BACKBONES.items()})


def threshold_for(backbone_key: str) -> float:
    """The near/far threshold for ``backbone_key``: its registry entry's, else the study's 0.72.

    >>> threshold_for("efficientnet_lite0"), threshold_for("my_net")
    (0.72, 0.72)
    """
    entry = get_backbone_entry(backbone_key)
    return float(SIMILARITY_THRESHOLD if entry is None else entry.threshold)


def _class_members(dataset: Dataset) -> dict[str, list[int]]:
    """Class -> indices of the items carrying it, in ``dataset.classes`` order (empty classes dropped)."""
    members: dict[str, list[int]] = {c: [] for c in dataset.classes}
    for i, item in enumerate(dataset.items):
        for label in dict.fromkeys(item.labels):  # a label listed twice counts once
            members.setdefault(label, []).append(i)
    return {c: idx for c, idx in members.items() if idx}


def _draw(members: dict[str, list[int]], k: int, max_images: int, seed: int) -> tuple[dict[str, list[int]], bool]:
    """Class -> up to ``k`` of its items (ascending), and whether classes were subsampled.

    When the images to embed (``min(count, k)`` per class) exceed ``max_images``, a seeded
    random subset of the classes is kept: as many as fit ``max_images`` (``max_images // k``
    when every class has ``k``). The items are drawn by the
    package's one sampler over (class, item) pairs, so each class gets a uniform draw of
    ``min(count, k)`` of its own items and a multi-label item can serve each class it carries.

    >>> few = {str(c): [2 * c, 2 * c + 1] for c in range(300)}     # 300 classes x 2 images
    >>> drawn, subsampled = _draw(few, k=20, max_images=4000, seed=0)
    >>> len(drawn), subsampled                                       # 600 images: all of them
    (300, False)
    >>> many = {str(c): list(range(30 * c, 30 * c + 30)) for c in range(300)}
    >>> drawn, subsampled = _draw(many, k=20, max_images=4000, seed=0)
    >>> len(drawn), sum(map(len, drawn.values())), subsampled
    (200, 4000, True)
    """
    classes = list(members)
    per_class = [min(len(members[c]), k) for c in classes]
    n_draw = sum(per_class)
    subsampled = n_draw > max_images
    if subsampled:
        n_keep = max(1, min(len(classes), int(max_images * len(classes) // n_draw)))
        while True:           # classes of unequal size: fewer until the draw fits the cap
            kept_classes = [classes[i] for i in sample_indices(len(classes), n_keep, seed)]
            kept = sum(min(len(members[c]), k) for c in kept_classes)
            if kept <= max_images or n_keep == 1:
                break
            n_keep -= 1
        classes = kept_classes
        log.info("%d classes, %d images at up to %d per class, exceed max_images=%d: using %d random classes "
                 "(%d images)", len(per_class), n_draw, k, max_images, n_keep, kept)
    pairs = [(c, i) for c in classes for i in members[c]]
    sampled: dict[str, list[int]] = {c: [] for c in classes}
    for j in stratified_indices([(c,) for c, _ in pairs], max_per_class=k, seed=seed):
        c, i = pairs[j]
        sampled[c].append(i)
    return sampled, subsampled


def _bootstrap_cosines(emb: np.ndarray, rows: list[np.ndarray], ref_unit: np.ndarray, rounds: int,
                       rng: np.random.Generator) -> Iterator[np.ndarray]:
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


def dataset_similarity(dataset: Dataset, backbone: Backbone, reference: Reference, *,
                       threshold: float | None = None, max_images: int = DEFAULT_MAX_IMAGES,
                       bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, progress: bool = True,
                       image_size: int | None = None, images_per_class: int | None = None) -> SimilarityResult:
    """Similarity of ``dataset`` to ImageNet: 1 - (EMD - class-count floor) to Tiny-ImageNet.

    Samples ``reference.images_per_class`` images per class (seeded, with the package's one
    class-stratified sampler; a class with fewer uses all it has and is listed in ``short_classes``), embeds them at ``reference.image_size``,
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
    sampled, subsampled = _draw(members, k, max_images, seed)
    classes = list(sampled)
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
    cos = cosine_matrix(means, ref_means)
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
        rng = np.random.default_rng(None if seed is None else [seed, 1])  # apart from the sample's stream
        sims = np.asarray([float(np.clip(1.0 - (emd_cost(a, b, cb) - floor), 0.0, 1.0)) for cb in
                           _bootstrap_cosines(emb64, rows, normalise_rows(ref_means), bootstrap, rng)])
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
        reference=describe_reference(reference),
        failed_paths=tuple(str(dataset.items[i].path) for i in sorted(failed_items)), emd_floor=float(floor))
