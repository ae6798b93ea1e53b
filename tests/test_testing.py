"""The synthetic dataset generators of finetune_advisor.testing."""
from __future__ import annotations

import numpy as np
from PIL import Image

from finetune_advisor.testing import make_folder_dataset


def test_generators_are_deterministic_and_learnable(tmp_path):
    a = make_folder_dataset(tmp_path / "a", counts={"x": 2, "y": 2}, size=8)
    b = make_folder_dataset(tmp_path / "b", counts={"x": 2, "y": 2}, size=8)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    means = {c: np.mean([np.asarray(Image.open(p), float).mean((0, 1)) for p in (a / c).iterdir()], 0)
             for c in ("x", "y")}
    assert np.abs(means["x"] - means["y"]).max() > 100  # class colours are far apart
