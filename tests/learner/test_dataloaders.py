"""build_dataloaders: normalisation, transforms, batch size, splits, the per-class cap, bad input."""
from __future__ import annotations

import dataclasses

import pytest

from finetune_advisor.exceptions import ConfigError, DatasetError

torch = pytest.importorskip("torch")
pytest.importorskip("fastai")

from finetune_advisor.backbones import LITE_MEAN, LITE_STD  # noqa: E402
from finetune_advisor.learner import LearnerSpec, build_dataloaders, build_learner  # noqa: E402


def test_normalize_follows_backbone(tiny, single_ds, backbone):
    from fastai.data.transforms import Normalize
    lite = dataclasses.replace(backbone, mean=LITE_MEAN, std=LITE_STD)
    dls = build_dataloaders(single_ds, tiny.config(), backbone=lite)
    norm = dls.train.after_batch.fs[-1]
    assert isinstance(norm, Normalize)
    assert torch.allclose(norm.mean.flatten().cpu(), torch.tensor(LITE_MEAN))
    # loaders built with other stats get the backbone's in build_learner
    imagenet_dls = build_dataloaders(single_ds, tiny.config(), backbone=backbone)
    learn = build_learner(tiny.config(), single_ds, backbone=lite, dls=imagenet_dls)
    norms = [f for f in learn.dls.valid.after_batch.fs if isinstance(f, Normalize)]
    assert len(norms) == 1 and torch.allclose(norms[0].std.flatten().cpu(), torch.tensor(LITE_STD))


def test_gaussian_noise_is_a_training_only_batch_transform(tiny, single_ds, backbone):
    from fastai.torch_core import TensorImage
    from finetune_advisor.learner.transforms import GaussianNoise
    cfg = tiny.config(augmentation=dataclasses.replace(tiny.no_aug, noise_std=0.3))
    dls = build_dataloaders(single_ds, cfg, backbone=backbone)
    noise = [f for f in dls.train.after_batch.fs if isinstance(f, GaussianNoise)]
    assert len(noise) == 1 and noise[0].std == 0.3
    x = TensorImage(torch.full((2, 3, 8, 8), 0.5))
    noisy = noise[0](x, split_idx=0)
    assert not torch.equal(noisy, x) and 0 <= noisy.min() and noisy.max() <= 1
    assert torch.equal(noise[0](x, split_idx=1), x)                       # validation: untouched
    assert not any(isinstance(f, GaussianNoise) for f in
                   build_dataloaders(single_ds, tiny.config(augmentation=tiny.no_aug),
                                     backbone=backbone).train.after_batch.fs)


def test_transforms_pickle_by_name():
    import pickle
    from finetune_advisor.learner.transforms import GaussianNoise, LoadRGB
    for tfm in (LoadRGB(32), GaussianNoise(0.1)):
        data = pickle.dumps(tfm)
        assert b"finetune_advisor.learner.transforms" in data
        assert type(pickle.loads(data)) is type(tfm)


def test_batch_size_capped_at_training_set(tiny, tmp_path, backbone):
    ds = tiny.single_label(tmp_path, per_class=3)
    dls = build_dataloaders(ds, tiny.config(batch_size=64, augmentation=tiny.no_aug), backbone=backbone)
    n_train = len(dls.train_ds)
    assert dls.train.bs == n_train and len(dls.train) == 1
    x, y = dls.one_batch()
    assert x.shape == (n_train, 3, 32, 32) and y.shape == (n_train,)


def test_stratified_and_fixed_splits(tiny, tmp_path, backbone):
    ds = tiny.single_label(tmp_path / "a", per_class=5)
    dls = build_dataloaders(ds, tiny.config(valid_pct=0.2), backbone=backbone, seed=0)
    valid = dls.valid_ds.items
    assert sorted(it.labels[0] for it in valid) == ["blue", "red"]     # one of each class
    assert not dls.fixed_split
    again = build_dataloaders(ds, tiny.config(valid_pct=0.2), backbone=backbone, seed=0)
    assert [it.path for it in again.valid_ds.items] == [it.path for it in valid]

    fixed = tiny.single_label(tmp_path / "b", per_class=5, split=True)
    dls = build_dataloaders(fixed, tiny.config(valid_pct=0.5), backbone=backbone)
    assert dls.fixed_split and all(it.split == "valid" for it in dls.valid_ds.items)
    assert len(dls.valid_ds) == 4 and len(dls.train_ds) == 6


def test_max_images_per_class_subset(tiny, tmp_path, backbone):
    ds = tiny.single_label(tmp_path, per_class=8, classes=("blue", "green", "red"))
    dls = build_dataloaders(ds, tiny.config(), backbone=backbone, max_images_per_class=4, seed=5)
    items = list(dls.train_ds.items) + list(dls.valid_ds.items)
    counts = {c: sum(it.labels[0] == c for it in items) for c in ds.classes}
    assert counts == {"blue": 4, "green": 4, "red": 4}
    again = build_dataloaders(ds, tiny.config(), backbone=backbone, max_images_per_class=4, seed=5)
    assert sorted(str(it.path) for it in items) == \
        sorted(str(it.path) for it in list(again.train_ds.items) + list(again.valid_ds.items))
    # the cpu profile caps by default, "paper" does not
    assert build_dataloaders(ds, tiny.config(profile="cpu"), backbone=backbone).max_images_per_class == 200
    assert build_dataloaders(ds, tiny.config(), backbone=backbone).max_images_per_class is None


def test_cap_keeps_a_fixed_split_in_proportion(tiny, tmp_path, backbone):
    fixed = tiny.single_label(tmp_path, per_class=5, split=True)          # 3 train + 2 valid a class
    dls = build_dataloaders(fixed, tiny.config(), backbone=backbone, max_images_per_class=3, seed=0)
    assert dls.fixed_split and len(dls.valid_ds) == 2 and len(dls.train_ds) == 4


def test_a_spec_builds_the_same_loaders_as_its_config(tiny, single_ds, backbone):
    cfg = tiny.config(valid_pct=0.25)
    a = build_dataloaders(single_ds, cfg, backbone=backbone, seed=2)
    b = build_dataloaders(single_ds, LearnerSpec.from_config(cfg), backbone=backbone, seed=2)
    assert [it.path for it in a.valid_ds.items] == [it.path for it in b.valid_ds.items]
    assert a.train.bs == b.train.bs


def test_test_split_items_are_never_loaded(tiny, tmp_path, backbone):
    from finetune_advisor.data import Item
    ds = tiny.single_label(tmp_path, per_class=4)
    held_out = Item(ds.items[0].path, ds.items[0].labels, "Testing")   # data's split names, any case
    dls = build_dataloaders(dataclasses.replace(ds, items=ds.items + (held_out,)), tiny.config(),
                            backbone=backbone)
    assert len(dls.train_ds) + len(dls.valid_ds) == 8


def test_invalid_inputs_raise_project_errors(tiny, tmp_path, single_ds, backbone):
    one_class = tiny.single_label(tmp_path, per_class=4, classes=("red",))
    with pytest.raises(DatasetError, match="at least 2 classes"):
        build_dataloaders(one_class, tiny.config(), backbone=backbone)
    with pytest.raises(ConfigError, match="batch_size"):
        build_dataloaders(single_ds, tiny.config(batch_size=1), backbone=backbone)
