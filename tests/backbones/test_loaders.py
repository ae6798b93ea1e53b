"""backbones/loaders.py: torchvision ResNets, local weights files, architecture callables and specs."""
import pytest
import torch

from finetune_advisor.backbones import create_backbone, spec_name
from finetune_advisor.exceptions import BackboneNotFoundError


def tiny_arch(pretrained=True):
    """An architecture callable in fastai's convention: conv body, pool, classifier."""
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 10))


def test_torchvision_resnet_random_init_features():
    bb = create_backbone("resnet18", pretrained=False)
    with torch.inference_mode():
        f = bb.features(torch.randn(2, 3, 32, 32))
    assert f.shape == (2, 512) and bb.key == "resnet18-random"


def test_callable_and_module_function_spec(tmp_path, monkeypatch):
    bb = create_backbone(tiny_arch)
    assert bb.n_features == 8 and bb.name == "tiny_arch"
    mod = tmp_path / "my_arch.py"
    mod.write_text("import torch\n"
                   "def net(pretrained=True):\n"
                   "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),"
                   " torch.nn.Flatten(), torch.nn.Linear(4, 2))\n")
    assert create_backbone(f"{mod}:net").n_features == 4
    monkeypatch.syspath_prepend(str(tmp_path))
    assert create_backbone("my_arch:net").name == "net"
    assert spec_name(f"{mod}:net") == "net"


def test_local_weights_file(tmp_path):
    import torchvision
    model = torchvision.models.resnet18(weights=None)
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    bb = create_backbone("resnet18", weights=tmp_path / "r18.pth")
    assert torch.equal(next(bb.body.parameters()), next(model.parameters()))
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(BackboneNotFoundError, match="bad.pth"):
        create_backbone("resnet18", weights=tmp_path / "bad.pth")


def test_bad_spec_messages(tmp_path):
    with pytest.raises(BackboneNotFoundError, match="no callable 'nope'"):
        create_backbone("math:nope")
    with pytest.raises(BackboneNotFoundError, match="file not found"):
        create_backbone(f"{tmp_path}/missing.py:net")
    with pytest.raises(BackboneNotFoundError, match="not a torch.nn.Module"):
        create_backbone(lambda pretrained=True: 3)
