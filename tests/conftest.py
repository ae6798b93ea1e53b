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


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path):
    """No test may reach the network or read/write the user's reference cache."""
    monkeypatch.setenv("FINETUNE_ADVISOR_OFFLINE", "1")
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path / "cache"))
