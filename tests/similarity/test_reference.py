"""similarity/reference.py: the reference file (round trip, atomic writes, corruption) and its backbone check."""
from __future__ import annotations

import numpy as np
import pytest

from finetune_advisor import similarity as S
from finetune_advisor.exceptions import SimilarityReferenceError

RED = (255, 0, 0)


def test_reference_save_load_round_trip(tmp_path, make_reference):
    ref = make_reference([[1, 0, 0], [0.5, 0.25, 0]], [100, 90], ids=["n1", "n2"], names=["goldfish, Carassius", ""])
    path = ref.save(tmp_path / "sub" / "ref.npz")
    back = S.Reference.load(path)
    assert back == ref and back.path == path
    assert back.class_means.dtype == np.float32 and back.class_counts.tolist() == [100, 90]
    assert [p.name for p in path.parent.iterdir()] == ["ref.npz"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others (a shared cache), not mkstemp's 0600


def test_reference_save_is_atomic(tmp_path, monkeypatch, make_reference):
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
def test_corrupt_reference_file_raises(tmp_path, damage, make_reference):
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


def test_backbone_mismatch_raises(tmp_path, resnet18, rgb_backbone, folder_dataset, make_reference):
    path = make_reference([[1, 0, 0]], [1], key="resnet18").save(tmp_path / "ref.npz")  # "real" weights
    with pytest.raises(SimilarityReferenceError, match="resnet18-random"):
        S.get_reference(resnet18, path=path)
    ds = folder_dataset(tmp_path / "d", {"r": [RED]})
    with pytest.raises(SimilarityReferenceError, match="built with backbone"):
        S.dataset_similarity(ds, rgb_backbone(), S.Reference.load(path), progress=False)
