"""Shared fixtures (keep this file small: fixtures used by several test files only)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$FINETUNE_ADVISOR_SHARED_DATA``); skips the test when absent."""
    path = Path(os.environ.get("FINETUNE_ADVISOR_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared sample datasets not found at {path} (set FINETUNE_ADVISOR_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run faster on one thread, and two threads stall when the 2-core
    machine is busy (measured: the LR range test 32 s with 2 threads vs 3 s with 1)."""
    import torch
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")   # the CLI's own pick (finetune_advisor._threads) keeps it


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path):
    """No test may reach the network or read/write the user's reference cache."""
    monkeypatch.setenv("FINETUNE_ADVISOR_OFFLINE", "1")
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path / "cache"))


# --- tiny generated images, shared by tests/learner and tests/train ----------------------------

class TinyImages:
    """Tiny noisy colour squares as a :class:`~finetune_advisor.data.Dataset`, and a small Config."""

    COLORS = {"blue": (30, 40, 200), "green": (30, 190, 40), "red": (210, 30, 30)}

    @staticmethod
    def write_png(path: Path, color, seed: int, size: int = 20) -> Path:
        import numpy as np
        from PIL import Image
        rng = np.random.default_rng(seed)
        arr = np.clip(np.array(color)[None, None, :] + rng.normal(0, 20, (size, size, 3)), 0, 255)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.astype("uint8")).save(path)
        return path

    def single_label(self, root: Path, per_class: int = 8, classes=("blue", "red"), split=False):
        from finetune_advisor.data import Dataset, Item
        items = []
        for k, c in enumerate(classes):
            for i in range(per_class):
                p = self.write_png(root / c / f"{c}_{i}.png", self.COLORS[c], seed=100 * k + i)
                sp = None if not split else ("valid" if i < 2 else "train")
                items.append(Item(p, (c,), sp))
        return Dataset(root, "folders", tuple(items), tuple(sorted(classes)), multi_label=False)

    def multi_label(self, root: Path):
        import numpy as np
        from finetune_advisor.data import Dataset, Item
        combos = [("blue",), ("red",), ("blue", "red"), ("green",), ("green", "red"), ("blue", "green")] * 2
        items = []
        for i, labels in enumerate(combos):
            color = np.mean([self.COLORS[c] for c in labels], axis=0)
            items.append(Item(self.write_png(root / f"img_{i}.png", color, seed=i), labels))
        return Dataset(root, "csv", tuple(items), ("blue", "green", "red"), multi_label=True)

    @property
    def no_aug(self):
        from finetune_advisor.config import Augmentation
        return Augmentation(do_flip=False, max_rotate=0.0, max_lighting=0.0, max_zoom=1.0, max_warp=0.0)

    @staticmethod
    def config(**changes):
        from finetune_advisor.config import Augmentation, Config
        base = dict(image_size=32, batch_size=8, head_epochs=1, unfrozen_epochs=1, fine_tune="last",
                    head_size=32, augmentation=Augmentation(max_rotate=5.0, noise_std=0.05))
        base.update(changes)
        return Config(**base)


@pytest.fixture(scope="session")
def tiny() -> TinyImages:
    """Factories for tiny generated datasets (``tiny.single_label(root)``, ``tiny.config()``, ...)."""
    return TinyImages()


@pytest.fixture(scope="module")
def backbone():
    """A random-init resnet18 (no weights needed), one per test module."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("fastai")
    from finetune_advisor.backbones import create_backbone
    torch.manual_seed(0)
    return create_backbone("resnet18", pretrained=False)


@pytest.fixture(scope="module")
def single_ds(tmp_path_factory, tiny):
    """Two classes of 8 tiny images each, one per test module."""
    return tiny.single_label(tmp_path_factory.mktemp("single"))
