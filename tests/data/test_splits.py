"""The one table of split names."""
from __future__ import annotations

from finetune_advisor.data import SPLIT_NAMES, TEST_SPLITS, VALID_SPLITS
from finetune_advisor.data.splits import split_role


def test_split_table():
    assert set(VALID_SPLITS) == {"valid", "val", "validation"}
    assert set(TEST_SPLITS) == {"test", "testing"}
    assert {SPLIT_NAMES[n] for n in ("train", "training")} == {"train"}
    assert all(name == name.lower() for name in SPLIT_NAMES)


def test_split_role_ignores_case_only():
    assert [split_role(n) for n in ("TRAIN", "Val", "Testing", "images", "", None)] == \
        ["train", "valid", "test", None, None, None]
