"""similarity/measure.py: dataset_similarity with a transparent backbone (sampling, weights,
the floor, matches, bootstrap, failures) and with real weights on real data."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor import similarity as S
from finetune_advisor import study
from finetune_advisor.backbones import create_backbone
from finetune_advisor.data import Dataset, Item

REPO = Path(__file__).resolve().parents[2]
SQ2 = 1 / math.sqrt(2)
RED, GREEN, BLUE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


def test_identical_means_give_similarity_one(tmp_path, rgb_backbone, folder_dataset, make_reference):
    bb = rgb_backbone()
    ds = folder_dataset(tmp_path, {"g": [GREEN] * 2, "r": [RED] * 2})
    ref = make_reference([[1, 0, 0], [0, 1, 0]], [5, 5])
    res = S.dataset_similarity(ds, bb, ref, bootstrap=20, progress=False)
    assert res.similarity == pytest.approx(1.0) and res.emd == pytest.approx(0.0, abs=1e-9)
    assert res.std == pytest.approx(0.0, abs=1e-9) and not res.far
    assert res.n_images_embedded == 4 and res.n_failed == 0 and res.n_classes_used == 2


def test_orthogonal_means_give_similarity_zero(tmp_path, rgb_backbone, folder_dataset, make_reference):
    ds = folder_dataset(tmp_path, {"r": [RED] * 2})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[0, 1, 0]], [1]), bootstrap=0, progress=False)
    assert res.similarity == pytest.approx(0.0, abs=1e-9) and res.emd == pytest.approx(1.0) and res.far


def test_class_count_floor_one_reference_class_scores_one(tmp_path, rgb_backbone, folder_dataset, make_reference):
    # One class that *is* a reference class must still send 2/3 of its mass to the other two
    # (raw 1 - EMD = 1/3); an in-domain dataset of one class pays that too, so it scores 1.
    ds = folder_dataset(tmp_path / "in", {"r": [RED] * 2})
    ref = make_reference([[1, 0, 0], [0, 1, 0], [0, 0, 1]], [4, 4, 4])
    res = S.dataset_similarity(ds, rgb_backbone(), ref, bootstrap=10, progress=False)
    assert res.emd == pytest.approx(2 / 3) and res.emd_floor == pytest.approx(2 / 3)
    assert res.similarity == pytest.approx(1.0) and not res.far
    # and a class unlike any reference class still scores low: EMD 1, floor 1/2
    far = S.dataset_similarity(folder_dataset(tmp_path / "out", {"b": [BLUE] * 2}), rgb_backbone(),
                               make_reference([[1, 0, 0], [0, 1, 0]], [1, 1]), bootstrap=0, progress=False)
    assert far.emd == pytest.approx(1.0) and far.emd_floor == pytest.approx(0.5)
    assert far.similarity == pytest.approx(0.5) and far.far


def test_matches_ranked_by_cosine_not_mass(tmp_path, rgb_backbone, folder_dataset, make_reference):
    # One class sends its mass to every reference class in proportion to their counts
    # (C gets most); the explanation must still rank by cosine: A (1), B (.707), C (.577).
    ds = folder_dataset(tmp_path, {"red": [RED] * 2})
    ref = make_reference([[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, 0]], [1, 5, 10, 3], ids=["A", "B", "C", "D"],
                         names=["apple, Malus", "", "cloud", "dune"])
    res = S.dataset_similarity(ds, rgb_backbone(), ref, bootstrap=0, progress=False)
    assert [m[0] for m in res.matches["red"]] == ["A", "B", "C"]
    assert [m[1] for m in res.matches["red"]] == ["apple", None, "cloud"]  # first synonym; None if unknown
    np.testing.assert_allclose([m[2] for m in res.matches["red"]], [1, SQ2, 1 / math.sqrt(3)], atol=1e-6)
    expected_emd = (1 * 0 + 5 * (1 - SQ2) + 10 * (1 - 1 / math.sqrt(3)) + 3 * 1) / 19
    assert res.emd == pytest.approx(expected_emd, abs=1e-6)
    assert res.emd_floor > 0 and res.similarity == pytest.approx(1 - (expected_emd - res.emd_floor), abs=1e-6)


def test_full_dataset_counts_weight_classes_and_short_classes(tmp_path, rgb_backbone, folder_dataset, make_reference):
    # k = 2: "r" has 6 images (weight 6, 2 embedded), "g" has 1 (weight 1, short).
    ds = folder_dataset(tmp_path, {"r": [RED] * 6, "g": [GREEN]})
    ref = make_reference([[1, 0, 0], [1, 1, 0]], [1, 1])
    res = S.dataset_similarity(ds, rgb_backbone(), ref, bootstrap=0, progress=False)
    assert res.n_images_embedded == 3 and dict(res.short_classes) == {"g": 1}
    emd, _ = S.emd_similarity([[0, 1, 0], [1, 0, 0]], [1, 6], [[1, 0, 0], [1, 1, 0]], [1, 1])
    assert res.emd == pytest.approx(emd, abs=1e-6)


def test_multi_label_image_counts_for_each_class(tmp_path, rgb_backbone, solid, folder_dataset, make_reference):
    solid(tmp_path / "both.png", RED)
    solid(tmp_path / "g.png", GREEN)
    ds = folder_dataset(tmp_path, {}, multi={"both.png": ("a", "b"), "g.png": ("b",)})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0]], [1]), bootstrap=0, progress=False)
    cos = {c: m[0][2] for c, m in res.matches.items()}
    assert cos["a"] == pytest.approx(1.0) and cos["b"] == pytest.approx(SQ2, abs=1e-6)  # mean of red and green
    assert res.n_images_embedded == 2 and dict(res.short_classes) == {"a": 1}


def test_class_subsampling_caps_images(tmp_path, rgb_backbone, folder_dataset, make_reference):
    ds = folder_dataset(tmp_path, {c: [RED] * 3 for c in "abcde"})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0]], [1]), max_images=6,
                               bootstrap=0, progress=False)
    assert res.class_subsampled and res.n_classes_used == 3 and res.n_images_embedded == 6
    again = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0]], [1]), max_images=6,
                                 bootstrap=0, progress=False)
    assert set(again.matches) == set(res.matches)  # seeded


def test_constant_black_images_give_finite_score(tmp_path, rgb_backbone, folder_dataset, make_reference):
    ds = folder_dataset(tmp_path, {"a": [BLACK] * 3, "b": [BLACK] * 3})  # zero feature vectors
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0], [0, 0, 0]], [1, 1]),
                               bootstrap=20, progress=False)
    values = [res.similarity, res.emd, res.std, res.ci_low, res.ci_high]
    assert all(math.isfinite(v) for v in values) and res.emd == pytest.approx(1.0)
    # the floor: the reference's own zero-vector class pays distance 1 for its half of the mass
    assert res.emd_floor == pytest.approx(0.5) and res.similarity == pytest.approx(0.5)


def test_corrupt_image_is_skipped_and_counted(tmp_path, rgb_backbone, folder_dataset, make_reference):
    bad = tmp_path / "r" / "bad.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    ds = folder_dataset(tmp_path, {"r": [RED, RED, bad], "g": [bad.with_name("missing.png")]})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0]], [1], k=3), bootstrap=5,
                               progress=False)
    assert res.n_failed == 2 and res.n_images_embedded == 2 and res.n_classes_used == 1
    assert dict(res.short_classes) == {"r": 2, "g": 0} and res.similarity == pytest.approx(1.0)
    emb, failed = S.embed_images(rgb_backbone(), [bad, tmp_path / "r" / "0.png"], image_size=8, progress=False)
    assert failed == [0] and emb.shape == (1, 3)
    np.testing.assert_allclose(emb[0], [1, 0, 0], atol=1e-6)


def test_result_to_dict_is_json_and_round_trips(tmp_path, rgb_backbone, folder_dataset, make_reference):
    ds = folder_dataset(tmp_path, {"r": [RED] * 2, "g": [GREEN] * 2})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0], [1, 1, 0]], [2, 1]),
                               bootstrap=10, progress=False)
    d = json.loads(json.dumps(res.to_dict()))
    assert S.SimilarityResult.from_dict(d) == res
    assert d["threshold"] == S.THRESHOLDS.get("rgbmean", study.SIMILARITY_THRESHOLD) == 0.72
    assert d["far"] == (d["similarity"] < 0.72)


def test_threshold_override_sets_far(tmp_path, rgb_backbone, folder_dataset, make_reference):
    ds = folder_dataset(tmp_path, {"r": [RED] * 2})
    ref = make_reference([[1, 1, 0]], [1])  # similarity 1/sqrt2 = 0.707
    assert S.dataset_similarity(ds, rgb_backbone(), ref, bootstrap=0, progress=False).far
    assert not S.dataset_similarity(ds, rgb_backbone(), ref, threshold=0.7, bootstrap=0, progress=False).far


def test_constant_images_resnet18_finite(tmp_path, resnet18, folder_dataset):
    ds = folder_dataset(tmp_path, {"a": [(128, 128, 128)] * 3, "b": [(128, 128, 128)] * 3})
    emb, _ = S.embed_images(resnet18, [it.path for it in ds.items], image_size=32, progress=False)
    ref = S.Reference(backbone_key=resnet18.key, image_size=32, images_per_class=3, class_ids=("x", "y"),
                      class_names=("", ""), class_means=np.stack([emb[0], np.zeros_like(emb[0])]),
                      class_counts=np.array([1, 1]))
    res = S.dataset_similarity(ds, resnet18, ref, bootstrap=20, progress=False)
    assert all(math.isfinite(v) for v in (res.similarity, res.emd, res.std, res.ci_low, res.ci_high))
    assert res.emd == pytest.approx(0.5, abs=1e-5)  # half the reference mass is at a zero vector
    assert res.emd_floor == pytest.approx(0.5, abs=1e-5) and res.similarity == pytest.approx(1.0, abs=1e-5)


@pytest.mark.real_weights
@pytest.mark.shared_data
def test_tiny_imagenet_is_nearer_than_quickdraw():
    shared = Path(os.environ.get("FINETUNE_ADVISOR_SHARED_DATA", REPO.parent / "shared" / "data"))
    tiny_val, draw = shared / "tiny-imagenet-200" / "val", shared / "draw-quickdraw"
    if not (tiny_val.is_dir() and draw.is_dir()):
        pytest.skip(f"shared data not found at {shared} (set FINETUNE_ADVISOR_SHARED_DATA)")
    shipped = S.shipped_reference_path("efficientnet_lite0")
    if shipped is None:
        pytest.skip("shipped efficientnet_lite0 reference absent (run benchmarks/build_shipped_reference.py)")
    from finetune_advisor.exceptions import BackboneNotFoundError
    try:
        bb = create_backbone("efficientnet_lite0")
    except BackboneNotFoundError as exc:
        pytest.skip(str(exc))
    ref = S.get_reference(bb, path=shipped)

    def dataset(root: Path, n_classes: int, per_class: int) -> Dataset:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())[:n_classes]
        items = tuple(Item(p, (c,)) for c in classes for p in sorted((root / c).iterdir())[:per_class])
        return Dataset(root=root, layout="folders", items=items, classes=tuple(classes), multi_label=False)

    near = S.dataset_similarity(dataset(tiny_val, 40, 3), bb, ref, bootstrap=20, progress=False)
    far = S.dataset_similarity(dataset(draw, 6, 10), bb, ref, bootstrap=20, progress=False)
    assert near.n_images_embedded == 120 and far.n_images_embedded == 60
    # measured: near 0.64 (only 3 images and 40 of 200 classes lower it), far 0.39
    assert near.similarity > far.similarity + 0.1, (near.similarity, far.similarity)
    assert near.ci_low > far.ci_high
    assert far.far


def test_non_finite_features_are_skipped_like_corrupt_images(tmp_path, rgb_backbone, folder_dataset, make_reference):
    import torch

    class NanOnBlack(torch.nn.Module):
        def forward(self, x):
            black = x.amax(dim=(1, 2, 3), keepdim=True) == 0
            return torch.where(black, torch.full_like(x, float("nan")), x)

    bb = rgb_backbone()
    bb.body = NanOnBlack()
    ds = folder_dataset(tmp_path, {"r": [RED, BLACK, RED]})
    res = S.dataset_similarity(ds, bb, make_reference([[1, 0, 0]], [1], k=3), bootstrap=5, progress=False)
    assert res.n_failed == 1 and res.n_images_embedded == 2 and res.similarity == pytest.approx(1.0)
