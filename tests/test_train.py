"""Tests for finetune_advisor.train: tiny generated images, random-init resnet18, 1+1 epochs."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor.config import Augmentation, Config
from finetune_advisor.data import Dataset, Item
from finetune_advisor.exceptions import ConfigError, DatasetError

torch = pytest.importorskip("torch")
pytest.importorskip("fastai")

from finetune_advisor.backbones import LITE_MEAN, LITE_STD, create_backbone  # noqa: E402
from finetune_advisor.train import (  # noqa: E402
    TrainResult, build_dataloaders, build_learner, majority_baseline, plot_history,
    split_body_head, train)

COLORS = {"blue": (30, 40, 200), "green": (30, 190, 40), "red": (210, 30, 30)}
NO_AUG = Augmentation(do_flip=False, max_rotate=0.0, max_lighting=0.0, max_zoom=1.0, max_warp=0.0)


def _write_png(path: Path, color, seed: int, size: int = 20) -> Path:
    from PIL import Image
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(color)[None, None, :] + rng.normal(0, 20, (size, size, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype("uint8")).save(path)
    return path


def _single_label(root: Path, per_class: int = 8, classes=("blue", "red"), split=False) -> Dataset:
    items = []
    for k, c in enumerate(classes):
        for i in range(per_class):
            p = _write_png(root / c / f"{c}_{i}.png", COLORS[c], seed=100 * k + i)
            sp = None if not split else ("valid" if i < 2 else "train")
            items.append(Item(p, (c,), sp))
    return Dataset(root, "folders", tuple(items), tuple(sorted(classes)), multi_label=False)


def _multi_label(root: Path) -> Dataset:
    combos = [("blue",), ("red",), ("blue", "red"), ("green",), ("green", "red"), ("blue", "green")] * 2
    items = []
    for i, labels in enumerate(combos):
        color = np.mean([COLORS[c] for c in labels], axis=0)
        items.append(Item(_write_png(root / f"img_{i}.png", color, seed=i), labels))
    return Dataset(root, "csv", tuple(items), ("blue", "green", "red"), multi_label=True)


def _config(**changes) -> Config:
    base = dict(image_size=32, batch_size=8, head_epochs=1, unfrozen_epochs=1, fine_tune="last",
                head_size=32, augmentation=Augmentation(max_rotate=5.0, noise_std=0.05))
    base.update(changes)
    return Config(**base)


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return create_backbone("resnet18", pretrained=False)


@pytest.fixture(scope="module")
def single_ds(tmp_path_factory) -> Dataset:
    return _single_label(tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, single_ds, backbone):
    """One end-to-end single-label run with exports, shared by several tests."""
    out = tmp_path_factory.mktemp("run") / "out"
    cfg = _config(beta2=0.95, weight_decay=0.02, dropout=(0.3, 0.1))
    return train(cfg, single_ds, out_dir=out, backbone=backbone, seed=1, progress=False), out


# --- end to end -------------------------------------------------------------------------

def test_single_label_end_to_end(single_run):
    res, out = single_run
    assert isinstance(res, TrainResult)
    h = res.history
    assert list(h["phase"]) == ["frozen", "unfrozen"] and list(h["epoch"]) == [1, 2]
    for col in ("train_loss", "valid_loss", "accuracy", "error_rate", "seconds"):
        assert h[col].notna().all(), col
    assert set(res.final_metrics) == {"valid_loss", "accuracy", "error_rate"}
    assert res.final_metrics["accuracy"] == pytest.approx(1 - res.final_metrics["error_rate"])
    assert res.baseline["metric"] == "accuracy" and 0 <= res.baseline["value"] <= 1
    assert res.n_train + res.n_valid == 16 and res.backbone == "resnet18"
    summary = json.loads(json.dumps(res.to_dict()))           # JSON-friendly
    assert summary["history"][1]["phase"] == "unfrozen" and isinstance(summary["beats_baseline"], bool)


def test_outputs_written_and_export_reloads(single_run, single_ds):
    from fastai.learner import load_learner
    from PIL import Image
    res, out = single_run
    for name in ("config.json", "history.csv", "curves.png", "model.pkl", "result.json"):
        assert (out / name).stat().st_size > 0, name
    assert Config.from_json((out / "config.json").read_text()) == res.config
    import pandas as pd
    assert list(pd.read_csv(out / "history.csv")["phase"]) == ["frozen", "unfrozen"]
    assert json.loads((out / "result.json").read_text())["n_valid"] == res.n_valid

    with pytest.warns(UserWarning):  # fastai's pickle warning
        learn = load_learner(out / "model.pkl")
    item = single_ds.items[0]
    with learn.no_bar():
        with Image.open(item.path) as img:
            for source in (str(item.path), item.path, img, np.asarray(img)):
                label, idx, probs = learn.predict(source)
                assert label in single_ds.classes and probs.shape == (2,)
        # same prediction as the in-memory learner
        assert torch.allclose(probs, res.learner.predict(item.path)[2], atol=1e-5)


def test_multi_label_end_to_end(tmp_path, backbone):
    ds = _multi_label(tmp_path / "multi")
    res = train(_config(fine_tune="all", batch_size=4), ds, backbone=backbone, progress=False)
    assert set(res.final_metrics) == {"valid_loss", "accuracy_multi", "f1_score", "roc_auc_macro"}
    assert res.baseline["metric"] == "accuracy_multi"
    auc = res.final_metrics["roc_auc_macro"]
    assert np.isnan(auc) or 0.0 <= auc <= 1.0
    # multi-label "beats the baseline" is decided on the loss against the prior predictor's
    assert res.beats_baseline == (res.final_metrics["valid_loss"] < res.baseline["log_loss"])
    assert type(res.learner.loss_func).__name__ == "BCEWithLogitsLossFlat"
    assert list(res.learner.dls.vocab) == ["blue", "green", "red"]
    with res.learner.no_bar():
        labels, mask, probs = res.learner.predict(ds.items[0].path)
    assert probs.shape == (3,) and set(labels) <= set(ds.classes)
    assert res.n_train + res.n_valid == len(ds.items)


# --- freezing, learning rates, hyper-parameters -------------------------------------------

def _is_bn(name: str, model) -> bool:
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return isinstance(module, torch.nn.modules.batchnorm._BatchNorm)


def test_frozen_phase_trains_head_and_batchnorm_only(single_ds, backbone):
    learn = build_learner(_config(), single_ds, backbone=backbone)
    before = {k: v.detach().clone() for k, v in learn.model.named_parameters()}
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
    after = dict(learn.model.named_parameters())
    body = [k for k in before if k.startswith("0.")]
    frozen = [k for k in body if not _is_bn(k, learn.model)]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in body if _is_bn(k, learn.model))  # train_bn
    head = [k for k in before if k.startswith("1.")]
    assert any(not torch.equal(before[k], after[k]) for k in head)


@pytest.mark.parametrize("multi", [False, True])
def test_untrained_model_predicts_the_training_priors(tmp_path, backbone, multi):
    # Without this a short multi-label run starts at ~0.5 per label, below the all-negative
    # baseline (xray-nih: accuracy_multi 0.578 vs 0.901 before, 0.896 after, same schedule).
    if multi:
        ds = _multi_label(tmp_path / "m")
        keep = tuple(it for i, it in enumerate(ds.items) if i not in (1, 3, 9))  # blue 6, red 5, green 4
        ds = Dataset(ds.root, ds.layout, keep, ds.classes, multi_label=True)
    else:
        ds = _single_label(tmp_path / "s", per_class=9, classes=("blue", "red"))
        ds = Dataset(ds.root, ds.layout, ds.items[:12], ds.classes, multi_label=False)  # 9 blue : 3 red
    learn = build_learner(_config(batch_size=4), ds, backbone=backbone)
    items = list(learn.dls.train_ds.items)
    vocab = list(learn.dls.vocab)
    if multi:
        expected = [sum(c in it.labels for it in items) / len(items) for c in vocab]
    else:
        expected = [sum(it.labels[0] == c for it in items) / len(items) for c in vocab]
    out = learn.model[1][-1]
    assert out.bias is not None and float(out.weight.detach().std()) < 0.02
    learn.model.eval()
    xb = learn.dls.one_batch()[0]
    with torch.no_grad():
        logits = learn.model(xb)
    probs = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=1)
    np.testing.assert_allclose(probs.mean(0).numpy(), expected, atol=0.05)
    assert not np.allclose(expected, expected[0])   # the priors differ, so this can fail


def test_three_param_groups_last_stage_is_layer4(single_ds, backbone):
    learn = build_learner(_config(), single_ds, backbone=backbone)
    groups = split_body_head(learn.model)
    assert len(groups) == 3 and len(learn.opt.param_lists) == 3
    layer4 = {id(p) for p in learn.model[0][7].parameters()}   # conv1 bn1 relu maxpool layer1-4
    assert {id(p) for p in groups[1]} == layer4
    assert {id(p) for p in groups[2]} == {id(p) for p in learn.model[1].parameters()}
    learn.freeze_to(-2)  # fine_tune="last"
    assert all(p.requires_grad for p in groups[1])
    assert not learn.model[0][0].weight.requires_grad          # conv1 stays frozen
    learn.unfreeze()     # fine_tune="all"
    assert all(p.requires_grad for p in learn.model.parameters())


def test_hyperparameters_reach_optimizer_and_head(single_run):
    res, _ = single_run
    learn = res.learner
    for hyper in learn.opt.hypers:
        assert hyper["sqr_mom"] == pytest.approx(0.95)
        assert hyper["wd"] == pytest.approx(0.02)
    from fastai.optimizer import l2_reg, weight_decay
    assert weight_decay in learn.opt.cbs and l2_reg not in learn.opt.cbs  # decoupled (AdamW)
    drops = [m.p for m in learn.model[1].modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == pytest.approx([0.3, 0.1])
    linears = [m for m in learn.model[1].modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [32, 2]                 # head_size, n_classes
    assert linears[0].in_features == 2 * 512                            # concat pool of resnet18


def test_unfrozen_phase_uses_discriminative_lrs(single_run):
    res, _ = single_run
    cfg = res.config
    lrs = [h["lr"] for h in res.learner.opt.hypers]                     # end of the one-cycle
    assert lrs[0] < lrs[1] < lrs[2]
    assert lrs[2] / lrs[0] == pytest.approx(cfg.lr_divisor, rel=1e-4)
    row = res.history.iloc[1]
    assert row["lr_head"] == pytest.approx(cfg.lr_finetune)
    assert row["lr_body"] == pytest.approx(cfg.lr_finetune / np.sqrt(cfg.lr_divisor))
    assert np.isnan(res.history.iloc[0]["lr_body"]) and res.history.iloc[0]["lr_head"] == cfg.lr


def test_fine_tune_none_runs_head_only_from_a_folder_path(single_ds, backbone):
    res = train(_config(fine_tune="none"), str(single_ds.root), backbone=backbone, progress=False)
    assert list(res.history["phase"]) == ["frozen"] and res.n_train + res.n_valid == 16


def test_same_seed_same_history(single_ds, backbone, capsys):
    cfg = _config()
    runs = [train(cfg, single_ds, backbone=backbone, seed=3, progress=False) for _ in range(2)]
    cols = ["train_loss", "valid_loss", "accuracy"]
    assert runs[0].history[cols].values.tolist() == runs[1].history[cols].values.tolist()
    captured = capsys.readouterr()
    assert "train_loss" not in captured.out + captured.err                 # progress=False: quiet


def test_progress_goes_to_stderr(single_ds, backbone, capsys):
    train(_config(fine_tune="none"), single_ds, backbone=backbone, progress=True)
    captured = capsys.readouterr()
    assert "train_loss" in captured.err and "train_loss" not in captured.out


# --- data loaders -----------------------------------------------------------------------

def test_normalize_follows_backbone(single_ds, backbone):
    from fastai.data.transforms import Normalize
    lite = dataclasses.replace(backbone, mean=LITE_MEAN, std=LITE_STD)
    dls = build_dataloaders(single_ds, _config(), backbone=lite)
    norm = dls.train.after_batch.fs[-1]
    assert isinstance(norm, Normalize)
    assert torch.allclose(norm.mean.flatten().cpu(), torch.tensor(LITE_MEAN))
    # loaders built with other stats get the backbone's in build_learner
    imagenet_dls = build_dataloaders(single_ds, _config(), backbone=backbone)
    learn = build_learner(_config(), single_ds, backbone=lite, dls=imagenet_dls)
    norms = [f for f in learn.dls.valid.after_batch.fs if isinstance(f, Normalize)]
    assert len(norms) == 1 and torch.allclose(norms[0].std.flatten().cpu(), torch.tensor(LITE_STD))


def test_gaussian_noise_is_a_training_only_batch_transform(single_ds, backbone):
    from fastai.torch_core import TensorImage
    from finetune_advisor.train import GaussianNoise
    cfg = _config(augmentation=dataclasses.replace(NO_AUG, noise_std=0.3))
    dls = build_dataloaders(single_ds, cfg, backbone=backbone)
    noise = [f for f in dls.train.after_batch.fs if isinstance(f, GaussianNoise)]
    assert len(noise) == 1 and noise[0].std == 0.3
    x = TensorImage(torch.full((2, 3, 8, 8), 0.5))
    noisy = noise[0](x, split_idx=0)
    assert not torch.equal(noisy, x) and 0 <= noisy.min() and noisy.max() <= 1
    assert torch.equal(noise[0](x, split_idx=1), x)                       # validation: untouched
    assert not any(isinstance(f, GaussianNoise) for f in
                   build_dataloaders(single_ds, _config(augmentation=NO_AUG), backbone=backbone).train.after_batch.fs)


def test_batch_size_capped_at_training_set(tmp_path, backbone):
    ds = _single_label(tmp_path, per_class=3)
    dls = build_dataloaders(ds, _config(batch_size=64, augmentation=NO_AUG), backbone=backbone)
    n_train = len(dls.train_ds)
    assert dls.train.bs == n_train and len(dls.train) == 1
    x, y = dls.one_batch()
    assert x.shape == (n_train, 3, 32, 32) and y.shape == (n_train,)


def test_stratified_and_fixed_splits(tmp_path, backbone):
    ds = _single_label(tmp_path / "a", per_class=5)
    dls = build_dataloaders(ds, _config(valid_pct=0.2), backbone=backbone, seed=0)
    valid = dls.valid_ds.items
    assert sorted(it.labels[0] for it in valid) == ["blue", "red"]     # one of each class
    assert not dls.fixed_split
    again = build_dataloaders(ds, _config(valid_pct=0.2), backbone=backbone, seed=0)
    assert [it.path for it in again.valid_ds.items] == [it.path for it in valid]

    fixed = _single_label(tmp_path / "b", per_class=5, split=True)
    dls = build_dataloaders(fixed, _config(valid_pct=0.5), backbone=backbone)
    assert dls.fixed_split and all(it.split == "valid" for it in dls.valid_ds.items)
    assert len(dls.valid_ds) == 4 and len(dls.train_ds) == 6


def test_max_images_per_class_subset(tmp_path, backbone):
    ds = _single_label(tmp_path, per_class=8, classes=("blue", "green", "red"))
    dls = build_dataloaders(ds, _config(), backbone=backbone, max_images_per_class=4, seed=5)
    items = list(dls.train_ds.items) + list(dls.valid_ds.items)
    counts = {c: sum(it.labels[0] == c for it in items) for c in ds.classes}
    assert counts == {"blue": 4, "green": 4, "red": 4}
    again = build_dataloaders(ds, _config(), backbone=backbone, max_images_per_class=4, seed=5)
    assert sorted(str(it.path) for it in items) == \
        sorted(str(it.path) for it in list(again.train_ds.items) + list(again.valid_ds.items))
    # the cpu profile caps by default, "paper" does not
    assert build_dataloaders(ds, _config(profile="cpu"), backbone=backbone).max_images_per_class == 200
    assert build_dataloaders(ds, _config(), backbone=backbone).max_images_per_class is None


def test_corrupt_and_odd_images_do_not_crash(tmp_path, backbone):
    from PIL import Image
    ds = _single_label(tmp_path, per_class=4)
    bad = tmp_path / "red" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    gray = tmp_path / "blue" / "gray16.png"
    Image.fromarray((np.random.default_rng(0).random((20, 20)) * 65535).astype("uint16")).save(gray)
    rgba = tmp_path / "blue" / "rgba.png"
    Image.new("RGBA", (20, 20), (0, 0, 255, 128)).save(rgba)
    ds = dataclasses.replace(ds, items=ds.items + (Item(bad, ("red",)), Item(gray, ("blue",)),
                                                   Item(rgba, ("blue",))))
    res = train(_config(fine_tune="none", augmentation=NO_AUG), ds, backbone=backbone, progress=False)
    assert res.n_unreadable == 1 and res.unreadable == (str(bad),)
    assert res.n_train + res.n_valid == 10
    assert any("unreadable" in note for note in res.notes)


def test_invalid_inputs_raise_project_errors(tmp_path, single_ds, backbone):
    one_class = _single_label(tmp_path, per_class=4, classes=("red",))
    with pytest.raises(DatasetError, match="at least 2 classes"):
        build_dataloaders(one_class, _config(), backbone=backbone)
    with pytest.raises(ConfigError, match="batch_size"):
        build_dataloaders(single_ds, _config(batch_size=1), backbone=backbone)
    empty = dataclasses.replace(single_ds, items=())
    with pytest.raises(DatasetError, match="no images"):
        train(_config(), empty, backbone=backbone, progress=False)


# --- baseline and plotting --------------------------------------------------------------------

def test_majority_baseline_multi_label():
    tr = [Item(Path("a"), ("x",)), Item(Path("b"), ("x", "y")), Item(Path("c"), ("x",))]
    va = [Item(Path("d"), ("x",)), Item(Path("e"), ("y",))]
    base = majority_baseline(tr, va, multi_label=True, classes=("x", "y"))
    # predicts {x}: d is right on both labels, e wrong on both -> 2 of 4 decisions
    loss = base.pop("log_loss")
    assert base == {"metric": "accuracy_multi", "value": 0.5, "prediction": ["x"]}
    # priors x: 3/3 (clipped to 0.999), y: 1/3; BCE over the 4 decisions
    p_x, p_y = 0.999, 1 / 3
    expected = -(np.log(p_x) + np.log(1 - p_y) + np.log(1 - p_x) + np.log(p_y)) / 4
    assert loss == pytest.approx(expected)


def test_plot_history_on_given_axes(single_run, tmp_path):
    from matplotlib.figure import Figure
    res, _ = single_run
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_history(res.history, tmp_path / "c.png", ax=ax) is fig
    assert (tmp_path / "c.png").stat().st_size > 0
    assert any(line.get_label() == "unfreeze" for line in ax.get_lines())
    fig = plot_history(res.history, baseline=res.baseline)
    lines = {ln.get_label(): ln for a in fig.axes for ln in a.get_lines()}
    assert lines["majority baseline"].get_ydata()[0] == pytest.approx(res.baseline["value"])
    assert lines["majority baseline (valid)"].get_ydata()[0] == pytest.approx(res.baseline["log_loss"])
