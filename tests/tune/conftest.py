"""Fixtures of the tune tests: a tiny folder dataset and the small Config every search starts from."""
from __future__ import annotations

import pytest

from finetune_advisor.config import Config


def _small_config(**changes) -> Config:
    base = dict(backbone="resnet18", profile="cpu", image_size=32, batch_size=8, head_epochs=2, unfrozen_epochs=2,
                fine_tune="all", head_size=32, lr=1e-3, lr_finetune=5e-4)
    return Config(**{**base, **changes})


@pytest.fixture(scope="session")
def small_config():
    """``small_config(**changes)``: 2 + 2 epochs at 32 px on ResNet-18, about a second a trial."""
    return _small_config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 10 tiny images."""
    from finetune_advisor.testing import make_folder_dataset
    return make_folder_dataset(tmp_path_factory.mktemp("tune-data") / "d", counts={"a": 10, "b": 10}, size=16)
