"""backbones/registry.py: every entry carries its metadata, and the metadata matches what its
factory builds."""
from importlib import resources

import pytest

from finetune_advisor import study
from finetune_advisor.backbones import BACKBONES, create_backbone, list_backbones, register_backbone


def test_registered_names_and_their_metadata():
    assert list_backbones() == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "efficientnet_lite0"]
    assert list_backbones("resnet*")[:2] == ["resnet18", "resnet34"]
    assert all(e.threshold == study.SIMILARITY_THRESHOLD for e in BACKBONES.values())
    for entry in BACKBONES.values():  # a shipped reference named by an entry is in the package
        if entry.shipped_reference:
            assert (resources.files("finetune_advisor") / "resources" / entry.shipped_reference).is_file()


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_entry_matches_what_the_factory_builds(name):
    entry = BACKBONES[name]
    bb = create_backbone(name, pretrained=False)
    assert (bb.n_features, tuple(bb.mean), tuple(bb.std)) == (entry.n_features, entry.mean, entry.std)


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet18", n_features=512)(lambda **kw: None)
    with pytest.raises(TypeError):
        BACKBONES["mine"] = None  # read-only view
