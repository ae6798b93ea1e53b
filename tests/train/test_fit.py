"""train(): tiny generated images, random-init resnet18, 1+1 epochs."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from finetune_advisor.config import Config
from finetune_advisor.data import Item
from finetune_advisor.exceptions import DatasetError

torch = pytest.importorskip("torch")
pytest.importorskip("fastai")

from finetune_advisor.train import TrainResult, train  # noqa: E402


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


def test_multi_label_end_to_end(tiny, tmp_path, backbone):
    ds = tiny.multi_label(tmp_path / "multi")
    res = train(tiny.config(fine_tune="all", batch_size=4), ds, backbone=backbone, progress=False)
    assert set(res.final_metrics) == {"valid_loss", "accuracy_multi", "f1_score", "roc_auc_macro"}
    assert res.baseline["metric"] == "accuracy_multi"
    auc = res.final_metrics["roc_auc_macro"]
    assert np.isnan(auc) or 0.0 <= auc <= 1.0
    # multi-label "beats the baseline" is decided on the loss against the prior predictor's
    assert res.beats_baseline == (res.final_metrics["valid_loss"] < res.baseline["log_loss"] * (1 - 1e-3))
    assert type(res.learner.loss_func).__name__ == "BCEWithLogitsLossFlat"
    assert list(res.learner.dls.vocab) == ["blue", "green", "red"]
    with res.learner.no_bar():
        labels, mask, probs = res.learner.predict(ds.items[0].path)
    assert probs.shape == (3,) and set(labels) <= set(ds.classes)
    assert res.n_train + res.n_valid == len(ds.items)


@pytest.mark.parametrize("multi", [False, True])
def test_nothing_learned_does_not_beat_the_baseline(tiny, tmp_path, backbone, multi):
    """At a learning rate of (practically) zero nothing is learned: no win over the majority."""
    ds = tiny.multi_label(tmp_path / "m") if multi else tiny.single_label(tmp_path / "s", per_class=6)
    cfg = tiny.config(lr=1e-30, lr_finetune=1e-30, head_epochs=1, unfrozen_epochs=0, fine_tune="none",
                      augmentation=tiny.no_aug)
    res = train(cfg, ds, backbone=backbone, seed=0, progress=False)
    assert res.beats_baseline is False, (res.final_metrics, res.baseline)


# --- learning rates, hyper-parameters -------------------------------------------------------

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


def test_fine_tune_none_runs_head_only_from_a_folder_path(tiny, single_ds, backbone):
    res = train(tiny.config(fine_tune="none"), str(single_ds.root), backbone=backbone, progress=False)
    assert list(res.history["phase"]) == ["frozen"] and res.n_train + res.n_valid == 16


def test_same_seed_same_history(tiny, single_ds, backbone, capsys):
    cfg = tiny.config()
    runs = [train(cfg, single_ds, backbone=backbone, seed=3, progress=False) for _ in range(2)]
    cols = ["train_loss", "valid_loss", "accuracy"]
    assert runs[0].history[cols].values.tolist() == runs[1].history[cols].values.tolist()
    captured = capsys.readouterr()
    assert "train_loss" not in captured.out + captured.err                 # progress=False: quiet


def test_progress_goes_to_stderr(tiny, single_ds, backbone, capsys):
    train(tiny.config(fine_tune="none"), single_ds, backbone=backbone, progress=True)
    captured = capsys.readouterr()
    assert "train_loss" in captured.err and "train_loss" not in captured.out


# --- bad input ------------------------------------------------------------------------------

def test_corrupt_and_odd_images_do_not_crash(tiny, tmp_path, backbone):
    from PIL import Image
    ds = tiny.single_label(tmp_path, per_class=4)
    bad = tmp_path / "red" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    gray = tmp_path / "blue" / "gray16.png"
    Image.fromarray((np.random.default_rng(0).random((20, 20)) * 65535).astype("uint16")).save(gray)
    rgba = tmp_path / "blue" / "rgba.png"
    Image.new("RGBA", (20, 20), (0, 0, 255, 128)).save(rgba)
    ds = dataclasses.replace(ds, items=ds.items + (Item(bad, ("red",)), Item(gray, ("blue",)),
                                                   Item(rgba, ("blue",))))
    res = train(tiny.config(fine_tune="none", augmentation=tiny.no_aug), ds, backbone=backbone, progress=False)
    assert res.n_unreadable == 1 and res.unreadable == (str(bad),)
    assert res.n_train + res.n_valid == 10
    assert any(note.startswith("skipped 1: 1 ") and str(bad) in note for note in res.notes)   # format_skips' wording


def test_empty_dataset_raises_a_project_error(tiny, single_ds, backbone):
    empty = dataclasses.replace(single_ds, items=())
    with pytest.raises(DatasetError, match="no images"):
        train(tiny.config(), empty, backbone=backbone, progress=False)
