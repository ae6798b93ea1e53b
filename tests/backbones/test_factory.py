"""backbones/factory.py: name resolution, close-match hints, and the offline fallback."""
import pytest

from finetune_advisor.backbones import FALLBACK_BACKBONE, create_backbone
from finetune_advisor.exceptions import BackboneNotFoundError, WeightsUnavailableError


def test_unknown_name_suggests_close_matches_and_never_falls_back():
    with pytest.raises(BackboneNotFoundError, match="resnet18"):
        create_backbone("resnet19", fallback=True)


def test_missing_weights_fall_back_to_the_shipped_backbone(monkeypatch, tmp_path):
    monkeypatch.setenv("FINETUNE_ADVISOR_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: resnet34 weights are not there
    with pytest.raises(WeightsUnavailableError, match="--weights"):
        create_backbone("resnet34")
    bb = create_backbone("resnet34", fallback=True)
    assert bb.name == FALLBACK_BACKBONE and bb.fallback_from == "resnet34" and bb.pretrained
    assert bb.n_features == 1280
