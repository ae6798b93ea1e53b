"""similarity/sources.py: building a reference, the cache, the shipped file, offline failures."""
from __future__ import annotations

import time

import pytest

from finetune_advisor import similarity as S
from finetune_advisor.data import Dataset, Item
from finetune_advisor.exceptions import SimilarityReferenceError


def test_build_reference_and_bootstrap_resnet18(tmp_path, resnet18, monkeypatch, noisy):
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
    cached = S.reference_cache_path(resnet18, 32, 3, source=refroot.resolve())  # keyed by its folder...
    assert cached.is_file() and not S.reference_cache_path(resnet18, 32, 3).exists()  # ...not the default
    again = S.get_reference(resnet18, path=refroot, image_size=32, images_per_class=3)
    assert again.class_ids == ref.class_ids and again.path == cached

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


def test_get_reference_prefers_cache_then_shipped(tmp_path, monkeypatch, rgb_backbone, make_reference):
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


def test_reference_folder_is_cached_apart_from_the_default(tmp_path, monkeypatch, rgb_backbone, make_reference, solid):
    """`recommend X --reference FOLDER` must not replace the default reference for later plain runs."""
    import finetune_advisor.similarity.sources as sources
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache"))
    bb = rgb_backbone()
    default = make_reference([[1, 0, 0]], [1], ids=["default"], size=128, k=20)
    default.save(S.reference_cache_path(bb))
    folder = tmp_path / "my-ref"
    for c, color in enumerate([(200, 0, 0), (0, 200, 0)]):
        for i in range(3):
            solid(folder / f"k{c}" / f"{i}.png", color)
    built = S.get_reference(bb, path=folder, progress=False)
    assert built.class_ids == ("k0", "k1") and built.source == str(folder.resolve())
    own = S.reference_cache_path(bb, source=folder.resolve())
    assert own.is_file() and own != S.reference_cache_path(bb) and "_from-my-ref-" in own.name
    plain = S.get_reference(bb, download=False)                  # a later plain run: still the default
    assert plain.class_ids == ("default",)
    assert S.describe_reference(plain).startswith(str(S.reference_cache_path(bb)))

    monkeypatch.setattr(sources, "build_reference", lambda *a, **k: pytest.fail("rebuilt a cached reference"))
    again = S.get_reference(bb, path=folder, progress=False)     # the same folder again: its own cache
    assert again.class_ids == ("k0", "k1")
    assert S.describe_reference(again) == (f"{own} (built from {folder.resolve()}; rgbmean, 2 classes, 128 px, "
                                           f"20 images/class)")
    # other sizes, k or backbones are other keys
    assert len({S.reference_cache_path(bb, 128, 20, folder), S.reference_cache_path(bb, 64, 20, folder),
                S.reference_cache_path(bb, 128, 5, folder), S.reference_cache_path("other", 128, 20, folder),
                S.reference_cache_path(bb, 128, 20, tmp_path / "elsewhere" / "my-ref")}) == 5


def test_reference_folder_without_a_default_leaves_none(tmp_path, monkeypatch, rgb_backbone, solid):
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache"))
    bb = rgb_backbone()
    for c, color in enumerate([(200, 0, 0), (0, 200, 0)]):
        solid(tmp_path / "ref" / f"k{c}" / "0.png", color)
    S.get_reference(bb, path=tmp_path / "ref", progress=False)
    with pytest.raises(SimilarityReferenceError, match="none cached"):
        S.get_reference(bb, download=False)


def test_shipped_reference_is_named_as_such():
    shipped = S.shipped_reference_path("efficientnet_lite0")
    if shipped is None:
        pytest.skip("shipped reference not built")
    text = S.describe_reference(S.Reference.load(shipped))
    assert text.startswith("shipped with finetune-advisor (reference_efficientnet_lite0_128px_k20.npz")


# --- the Tiny-ImageNet download: https, and the archive checked before it is extracted --------------

def test_tiny_imagenet_is_fetched_over_https_with_the_official_checksum():
    from finetune_advisor.similarity import sources
    assert S.TINY_IMAGENET_URL.startswith("https://") and S.TINY_IMAGENET_URL.endswith("/tiny-imagenet-200.zip")
    assert sources.TINY_IMAGENET_MD5 == "90528d7ca1a48142e341f4ef8d21d0de"


def test_an_archive_with_the_wrong_checksum_is_named_and_removed(tmp_path):
    import hashlib

    from finetune_advisor.similarity.sources import _check_archive
    archive = tmp_path / "tiny-imagenet-200.zip"
    archive.write_bytes(b"not the archive")
    _check_archive(archive, md5=hashlib.md5(b"not the archive").hexdigest())     # the right sum: kept
    assert archive.is_file()
    with pytest.raises(SimilarityReferenceError) as info:
        _check_archive(archive)                                                 # the official sum: no match
    assert str(archive) in str(info.value) and "not the official 90528d7ca1a48142e341f4ef8d21d0de" in str(info.value)
    assert not archive.exists()


def test_a_download_that_does_not_match_is_not_extracted(tmp_path, monkeypatch):
    """The whole download path on a fake response (nothing is fetched): a bad archive leaves nothing."""
    import io
    import urllib.request

    from finetune_advisor.similarity import sources

    class Response(io.BytesIO):
        headers = {"Content-Length": "15"}

    def urlopen(url, timeout):
        assert url.startswith("https://")
        return Response(b"not the archive")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(SimilarityReferenceError, match="MD5 .* not the official"):
        sources._download_tiny_imagenet(tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []
