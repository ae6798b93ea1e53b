"""Helpers shared by the data tests (as fixtures: test files do not import each other)."""
from __future__ import annotations

from pathlib import Path

import pytest

from finetune_advisor.data import read_dataset
from finetune_advisor.exceptions import DatasetError


def _write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _read_error(path, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        read_dataset(path, **kwargs)
    assert str(path) in str(info.value), str(info.value)  # every message names the path
    assert info.value.path is not None
    return info.value


@pytest.fixture
def write_csv():
    """``write_csv(path, text) -> path``: a UTF-8 CSV, parent folders created."""
    return _write_csv


@pytest.fixture
def read_error():
    """``read_error(path, **read_dataset_kwargs) -> DatasetError``, checking the message names the path."""
    return _read_error
