"""The one table of split names: which folder names or CSV values mean train, valid or test."""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

__all__ = ["SPLIT_NAMES", "VALID_SPLITS", "TEST_SPLITS", "split_role"]

# Compared lower-case. "test" splits are reported, not read (their labels are not ours to use).
SPLIT_NAMES: Mapping[str, str] = MappingProxyType({
    "train": "train", "training": "train",
    "valid": "valid", "val": "valid", "validation": "valid",
    "test": "test", "testing": "test",
})
VALID_SPLITS: tuple[str, ...] = tuple(n for n, role in SPLIT_NAMES.items() if role == "valid")
TEST_SPLITS: tuple[str, ...] = tuple(n for n, role in SPLIT_NAMES.items() if role == "test")


def split_role(name: str | None) -> str | None:
    """``"train"``, ``"valid"`` or ``"test"`` for a split's name (any case), else None.

    >>> split_role("Val"), split_role("testing"), split_role("images"), split_role(None)
    ('valid', 'test', None, None)
    """
    return SPLIT_NAMES.get((name or "").lower())
