"""similarity.py: EMD by hand, the reference file, sampling, bootstrap, failures, real weights.

Most tests use a transparent "backbone" whose features are an image's mean RGB (identity body,
mean 0 / std 1), so class means, cosines and EMDs can be written down by hand.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor import similarity as S
from finetune_advisor.backbones import Backbone, create_backbone
from finetune_advisor.data import Dataset, Item
from finetune_advisor.exceptions import SimilarityReferenceError

REPO = Path(__file__).resolve().parents[1]
SQ2 = 1 / math.sqrt(2)


# --- helpers ----------------------------------------------------------------------

def rgb_backbone(name: str = "rgbmean") -> Backbone:
    """Features = mean RGB in [0, 1] (a colour's feature vector is the colour itself)."""
    import torch
    return Backbone(name=name, body=torch.nn.Identity(), n_features=3, mean=(0.0, 0.0, 0.0),
                    std=(1.0, 1.0, 1.0), pretrained=True, source="test")


def solid(path: Path, color, size: int = 16) -> Path:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), tuple(int(c) for c in color)).save(path)
    return path


def noisy(path: Path, seed: int, size: int = 24, tint=(0, 0, 0)) -> Path:
    from PIL import Image
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.integers(0, 256, (size, size, 3)) * 0.6 + np.asarray(tint) * 0.4, 0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def folder_dataset(root: Path, spec: dict[str, list], multi: dict[str, tuple[str, ...]] | None = None) -> Dataset:
    """``spec``: class -> list of colours (or existing paths). ``multi``: extra file -> labels."""
    items = []
    for cls, entries in spec.items():
        for i, e in enumerate(entries):
            p = e if isinstance(e, Path) else solid(root / cls / f"{i}.png", e)
            items.append(Item(p, (cls,)))
    for name, labels in (multi or {}).items():
        items.append(Item(root / name, labels))
    classes = tuple(sorted({label for it in items for label in it.labels}))
    return Dataset(root=root, layout="folders", items=tuple(items), classes=classes, multi_label=bool(multi))


def make_reference(means, counts, ids=None, names=None, key="rgbmean", size=16, k=2) -> S.Reference:
    ids = ids or [f"r{i}" for i in range(len(means))]
    return S.Reference(backbone_key=key, image_size=size, images_per_class=k, class_ids=tuple(ids),
                       class_names=tuple(names or [""] * len(ids)), class_means=np.asarray(means, np.float32),
                       class_counts=np.asarray(counts), source="test", created="now")


RED, GREEN, BLUE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


# --- EMD by hand --------------------------------------------------------------------

def test_emd_hand_computed_unequal_counts():
    # a = (3, 1)/4 over e1, e2; b = (1, 1)/2 over e1, (e1+e2)/sqrt2.
    # d = [[0, 1-1/sqrt2], [1, 1-1/sqrt2]]; optimum: a0 -> b0 0.5 (0), a0 -> b1 0.25, a1 -> b1 0.25.
    emd, plan = S.emd_similarity([[1, 0], [0, 1]], [3, 1], [[1, 0], [1, 1]], [1, 1])
    assert emd == pytest.approx(0.5 * (1 - SQ2), abs=1e-9)
    np.testing.assert_allclose(plan, [[0.5, 0.25], [0.0, 0.25]], atol=1e-12)


def test_emd_weights_proportional_to_counts_matter():
    # Same means, counts swapped to (1, 3): b1 can take only 0.5 of a1's 0.75, the other 0.25
    # must go to b0 at distance 1: EMD = 0.25 * 1 + 0.5 * (1 - 1/sqrt2).
    emd_31, _ = S.emd_similarity([[1, 0], [0, 1]], [3, 1], [[1, 0], [1, 1]], [1, 1])
    emd_13, plan = S.emd_similarity([[1, 0], [0, 1]], [1, 3], [[1, 0], [1, 1]], [1, 1])
    assert emd_13 == pytest.approx(0.25 + 0.5 * (1 - SQ2), abs=1e-9)
    assert emd_13 > emd_31 + 0.2
    np.testing.assert_allclose(plan.sum(axis=1), [0.25, 0.75])
    # counts scale: (30, 10) is the same as (3, 1)
    assert S.emd_similarity([[1, 0], [0, 1]], [30, 10], [[1, 0], [1, 1]], [7, 7])[0] == pytest.approx(emd_31)


def test_emd_identical_is_zero_orthogonal_is_one_zero_vector_finite():
    means = np.random.default_rng(0).random((5, 8))
    emd, plan = S.emd_similarity(means, [1, 2, 3, 4, 5], means, [1, 2, 3, 4, 5])
    assert emd == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(np.diag(plan), np.arange(1, 6) / 15, atol=1e-12)
    assert S.emd_similarity([[1, 0]], [1], [[0, 1]], [1])[0] == pytest.approx(1.0)
    emd0, _ = S.emd_similarity([[0, 0]], [1], [[0, 1]], [1])  # cosine of a zero vector := 0
    assert emd0 == pytest.approx(1.0) and math.isfinite(emd0)
    with pytest.raises(ValueError):
        S.emd_similarity([[1, 0]], [0], [[0, 1]], [1])


# --- dataset_similarity with a transparent backbone ----------------------------------

def test_identical_means_give_similarity_one(tmp_path):
    bb = rgb_backbone()
    ds = folder_dataset(tmp_path, {"g": [GREEN] * 2, "r": [RED] * 2})
    ref = make_reference([[1, 0, 0], [0, 1, 0]], [5, 5])
    res = S.dataset_similarity(ds, bb, ref, bootstrap=20, progress=False)
    assert res.similarity == pytest.approx(1.0) and res.emd == pytest.approx(0.0, abs=1e-9)
    assert res.std == pytest.approx(0.0, abs=1e-9) and not res.far
    assert res.n_images_embedded == 4 and res.n_failed == 0 and res.n_classes_used == 2


def test_orthogonal_means_give_similarity_zero(tmp_path):
    ds = folder_dataset(tmp_path, {"r": [RED] * 2})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[0, 1, 0]], [1]), bootstrap=0, progress=False)
    assert res.similarity == pytest.approx(0.0, abs=1e-9) and res.emd == pytest.approx(1.0) and res.far


def test_class_count_floor_one_reference_class_scores_one(tmp_path):
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


def test_emd_floor_removes_the_class_count_trend():
    rng = np.random.default_rng(3)
    ref = np.abs(rng.normal(size=(60, 16))) ** 3        # non-negative, spread-out class means
    counts = np.full(60, 5)
    for k in (1, 4, 15):
        pick = rng.choice(60, k, replace=False)
        emd, _ = S.emd_similarity(ref[pick], np.ones(k), ref, counts)
        floor = S.emd_floor(np.ones(k), ref, counts, draws=64)
        assert emd > 0.05                                  # raw score penalises few classes
        assert abs(emd - floor) < 0.5 * emd, (k, emd, floor)
    floors = [S.emd_floor(np.ones(k), ref, counts) for k in (1, 4, 15, 60)]
    assert floors == sorted(floors, reverse=True) and floors[-1] == pytest.approx(0.0)
    assert S.emd_floor([1, 2], ref, counts, seed=1) == S.emd_floor([1, 2], ref, counts, seed=1)


def test_matches_ranked_by_cosine_not_mass(tmp_path):
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


def test_full_dataset_counts_weight_classes_and_short_classes(tmp_path):
    # k = 2: "r" has 6 images (weight 6, 2 embedded), "g" has 1 (weight 1, short).
    ds = folder_dataset(tmp_path, {"r": [RED] * 6, "g": [GREEN]})
    ref = make_reference([[1, 0, 0], [1, 1, 0]], [1, 1])
    res = S.dataset_similarity(ds, rgb_backbone(), ref, bootstrap=0, progress=False)
    assert res.n_images_embedded == 3 and dict(res.short_classes) == {"g": 1}
    emd, _ = S.emd_similarity([[0, 1, 0], [1, 0, 0]], [1, 6], [[1, 0, 0], [1, 1, 0]], [1, 1])
    assert res.emd == pytest.approx(emd, abs=1e-6)


def test_multi_label_image_counts_for_each_class(tmp_path):
    solid(tmp_path / "both.png", RED)
    solid(tmp_path / "g.png", GREEN)
    ds = folder_dataset(tmp_path, {}, multi={"both.png": ("a", "b"), "g.png": ("b",)})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0]], [1]), bootstrap=0, progress=False)
    cos = {c: m[0][2] for c, m in res.matches.items()}
    assert cos["a"] == pytest.approx(1.0) and cos["b"] == pytest.approx(SQ2, abs=1e-6)  # mean of red and green
    assert res.n_images_embedded == 2 and dict(res.short_classes) == {"a": 1}


def test_class_subsampling_caps_images(tmp_path):
    ds = folder_dataset(tmp_path, {c: [RED] * 3 for c in "abcde"})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0]], [1]), max_images=6,
                               bootstrap=0, progress=False)
    assert res.class_subsampled and res.n_classes_used == 3 and res.n_images_embedded == 6
    again = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0]], [1]), max_images=6,
                                 bootstrap=0, progress=False)
    assert set(again.matches) == set(res.matches)  # seeded


def test_constant_black_images_give_finite_score(tmp_path):
    ds = folder_dataset(tmp_path, {"a": [BLACK] * 3, "b": [BLACK] * 3})  # zero feature vectors
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0], [0, 0, 0]], [1, 1]),
                               bootstrap=20, progress=False)
    values = [res.similarity, res.emd, res.std, res.ci_low, res.ci_high]
    assert all(math.isfinite(v) for v in values) and res.emd == pytest.approx(1.0)
    # the floor: the reference's own zero-vector class pays distance 1 for its half of the mass
    assert res.emd_floor == pytest.approx(0.5) and res.similarity == pytest.approx(0.5)


def test_corrupt_image_is_skipped_and_counted(tmp_path):
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


def test_result_to_dict_is_json_and_round_trips(tmp_path):
    ds = folder_dataset(tmp_path, {"r": [RED] * 2, "g": [GREEN] * 2})
    res = S.dataset_similarity(ds, rgb_backbone(), make_reference([[1, 0, 0], [1, 1, 0]], [2, 1]),
                               bootstrap=10, progress=False)
    d = json.loads(json.dumps(res.to_dict()))
    assert S.SimilarityResult.from_dict(d) == res
    assert d["threshold"] == S.THRESHOLDS.get("rgbmean", S.DEFAULT_THRESHOLD) == 0.72
    assert d["far"] == (d["similarity"] < 0.72)


def test_threshold_override_sets_far(tmp_path):
    ds = folder_dataset(tmp_path, {"r": [RED] * 2})
    ref = make_reference([[1, 1, 0]], [1])  # similarity 1/sqrt2 = 0.707
    assert S.dataset_similarity(ds, rgb_backbone(), ref, bootstrap=0, progress=False).far
    assert not S.dataset_similarity(ds, rgb_backbone(), ref, threshold=0.7, bootstrap=0, progress=False).far


# --- bootstrap, embedding and a built reference with a random-init resnet18 ---------

@pytest.fixture(scope="module")
def resnet18():
    return create_backbone("resnet18", pretrained=False)


def test_build_reference_and_bootstrap_resnet18(tmp_path, resnet18, monkeypatch):
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache"))
    refroot = tmp_path / "tiny"
    for c in range(4):
        for i in range(5):
            noisy(refroot / "train" / f"n0{c}" / "images" / f"{i}.JPEG", seed=100 * c + i, tint=(60 * c, 0, 0))
    (refroot / "words.txt").write_text("n00\tzero, nought\nn01\tone\n")
    ref = S.get_reference(resnet18, path=refroot, image_size=32, images_per_class=3, progress=False)
    assert ref.class_ids == ("n00", "n01", "n02", "n03") and ref.class_names[:3] == ("zero, nought", "one", "")
    assert ref.class_means.shape == (4, 512) and ref.class_counts.tolist() == [5, 5, 5, 5]
    assert (ref.image_size, ref.images_per_class, ref.backbone_key) == (32, 3, "resnet18-random")
    cached = S.reference_cache_path(resnet18, 32, 3)
    assert cached.is_file() and S.get_reference(resnet18, image_size=32, images_per_class=3).class_ids == ref.class_ids

    data = tmp_path / "data"
    items = [Item(noisy(data / f"c{c}" / f"{i}.png", seed=1000 + 10 * c + i, size=20 + c, tint=(0, 80 * c, 0)),
                  (f"c{c}",)) for c in range(3) for i in range(4 + c)]
    ds = Dataset(root=data, layout="folders", items=tuple(items), classes=("c0", "c1", "c2"), multi_label=False)
    res = S.dataset_similarity(ds, resnet18, ref, bootstrap=40, progress=False)
    assert res.std >= 0 and res.ci_low <= res.similarity <= res.ci_high
    assert 0 <= res.similarity <= 1 and res.images_per_class == 3 and res.image_size == 32
    assert res.n_images_embedded == 9 and res.bootstrap_rounds == 40
    assert all(1 <= len(m) <= 3 for m in res.matches.values())
    again = S.dataset_similarity(ds, resnet18, ref, bootstrap=40, progress=False)
    assert (again.similarity, again.std) == (res.similarity, res.std)  # seeded

    with pytest.raises(SimilarityReferenceError, match="image_size"):
        S.dataset_similarity(ds, resnet18, ref, image_size=64, progress=False)
    with pytest.raises(SimilarityReferenceError, match="images_per_class"):
        S.dataset_similarity(ds, resnet18, ref, images_per_class=20, progress=False)


def test_constant_images_resnet18_finite(tmp_path, resnet18):
    ds = folder_dataset(tmp_path, {"a": [(128, 128, 128)] * 3, "b": [(128, 128, 128)] * 3})
    emb, _ = S.embed_images(resnet18, [it.path for it in ds.items], image_size=32, progress=False)
    ref = S.Reference(backbone_key=resnet18.key, image_size=32, images_per_class=3, class_ids=("x", "y"),
                      class_names=("", ""), class_means=np.stack([emb[0], np.zeros_like(emb[0])]),
                      class_counts=np.array([1, 1]))
    res = S.dataset_similarity(ds, resnet18, ref, bootstrap=20, progress=False)
    assert all(math.isfinite(v) for v in (res.similarity, res.emd, res.std, res.ci_low, res.ci_high))
    assert res.emd == pytest.approx(0.5, abs=1e-5)  # half the reference mass is at a zero vector
    assert res.emd_floor == pytest.approx(0.5, abs=1e-5) and res.similarity == pytest.approx(1.0, abs=1e-5)


def test_embed_images_matches_manual_pipeline(tmp_path, resnet18):
    import torch
    from PIL import Image
    paths = [noisy(tmp_path / f"{i}.png", seed=i, size=20 + 3 * i) for i in range(5)]
    emb, failed = S.embed_images(resnet18, paths, image_size=32, batch_size=2, progress=False)
    assert failed == [] and emb.shape == (5, 512) and emb.dtype == np.float32
    arr = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.BILINEAR)) for p in paths])
    x = (torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255 - torch.tensor(resnet18.mean).view(1, 3, 1, 1)) \
        / torch.tensor(resnet18.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = resnet18.features(x.contiguous()).numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-4)


# --- the reference file ---------------------------------------------------------------

def test_reference_save_load_round_trip(tmp_path):
    ref = make_reference([[1, 0, 0], [0.5, 0.25, 0]], [100, 90], ids=["n1", "n2"], names=["goldfish, Carassius", ""])
    path = ref.save(tmp_path / "sub" / "ref.npz")
    back = S.Reference.load(path)
    assert back == ref and back.path == path
    assert back.class_means.dtype == np.float32 and back.class_counts.tolist() == [100, 90]
    assert [p.name for p in path.parent.iterdir()] == ["ref.npz"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others (a shared cache), not mkstemp's 0600


def test_reference_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ref.npz"
    make_reference([[1, 0, 0]], [1], ids=["old"]).save(path)

    def killed(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np, "savez_compressed", killed)
    with pytest.raises(KeyboardInterrupt):
        make_reference([[0, 1, 0]], [1], ids=["new"]).save(path)
    monkeypatch.undo()
    assert S.Reference.load(path).class_ids == ("old",)
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not_a_reference"])
def test_corrupt_reference_file_raises(tmp_path, damage):
    path = tmp_path / "ref.npz"
    make_reference(np.random.default_rng(0).random((50, 64)), np.ones(50)).save(path)
    if damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        np.savez(path, something=np.arange(3))
    with pytest.raises(SimilarityReferenceError) as info:
        S.Reference.load(path)
    assert str(path) in str(info.value) and "finetune-advisor reference build" in str(info.value)


def test_backbone_mismatch_raises(tmp_path, resnet18):
    path = make_reference([[1, 0, 0]], [1], key="resnet18").save(tmp_path / "ref.npz")  # "real" weights
    with pytest.raises(SimilarityReferenceError, match="resnet18-random"):
        S.get_reference(resnet18, path=path)
    ds = folder_dataset(tmp_path / "d", {"r": [RED]})
    with pytest.raises(SimilarityReferenceError, match="built with backbone"):
        S.dataset_similarity(ds, rgb_backbone(), S.Reference.load(path), progress=False)


def test_get_reference_offline_fails_fast_with_hint(tmp_path, monkeypatch, resnet18):
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("FINETUNE_ADVISOR_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(SimilarityReferenceError) as info:
        S.get_reference(resnet18)
    assert time.perf_counter() - start < 2
    msg = str(info.value)
    assert "finetune-advisor reference build PATH" in msg and "--reference PATH" in msg
    assert S.reference_cache_dir() == tmp_path / "cache" / "references"
    monkeypatch.delenv("FINETUNE_ADVISOR_OFFLINE")
    with pytest.raises(SimilarityReferenceError, match="downloads are off"):
        S.get_reference(resnet18, download=False)
    with pytest.raises(SimilarityReferenceError, match="not found"):
        S.get_reference(resnet18, path=tmp_path / "nowhere")


def test_get_reference_prefers_cache_then_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache"))
    bb = rgb_backbone()
    make_reference([[1, 0, 0]], [1], ids=["cached"], size=128, k=20).save(S.reference_cache_path(bb))
    assert S.get_reference(bb, download=False).class_ids == ("cached",)
    shipped = S.shipped_reference_path("efficientnet_lite0")
    if shipped is None:
        pytest.skip("shipped reference not built")
    ref = S.Reference.load(shipped)
    assert (ref.backbone_key, ref.image_size, ref.images_per_class, ref.n_classes) == ("efficientnet_lite0", 128, 20, 200)
    assert ref.class_means.shape[1] == 1280 and shipped.stat().st_size < 1.5e6
    assert "goldfish" in ref.class_names[ref.class_ids.index("n01443537")]


# --- real weights on real data --------------------------------------------------------

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


def test_non_finite_features_are_skipped_like_corrupt_images(tmp_path):
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
