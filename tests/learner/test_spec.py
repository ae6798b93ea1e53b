"""LearnerSpec: the fields of a Config that the DataLoaders and the Learner are built from."""
from __future__ import annotations

import dataclasses

import pytest

from finetune_advisor.config import PROFILES, Augmentation, Config
from finetune_advisor.learner import LearnerSpec
from finetune_advisor.learner.spec import as_spec


def test_from_config_copies_every_field_it_has():
    cfg = Config(profile="cpu", image_size=48, batch_size=16, valid_pct=0.3, multi_label=True,
                 augmentation=Augmentation(noise_std=0.1), backbone="resnet18", dropout=(0.2, 0.1),
                 head_size=64, weight_decay=0.02, beta2=0.95, lr=1e-2)
    spec = LearnerSpec.from_config(cfg)
    for f in dataclasses.fields(LearnerSpec):
        if f.name != "max_images_per_class":
            assert getattr(spec, f.name) == getattr(cfg, f.name), f.name
    assert spec.max_images_per_class == PROFILES["cpu"]["max_images_per_class"] == 200
    assert LearnerSpec.from_config(Config(profile="paper")).max_images_per_class is None


def test_defaults_are_the_configs():
    assert LearnerSpec() == LearnerSpec.from_config(Config())
    assert isinstance(LearnerSpec(dropout=[0.5, 0.1]).dropout, tuple)


def test_as_spec_takes_either_and_rejects_others():
    spec = LearnerSpec(image_size=32)
    assert as_spec(spec) is spec
    assert as_spec(Config(image_size=32)).image_size == 32
    with pytest.raises(TypeError, match="LearnerSpec or a Config"):
        as_spec({"image_size": 32})


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LearnerSpec().image_size = 3
