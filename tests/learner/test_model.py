"""build_learner: frozen body, prior-initialised output layer, three parameter groups."""
from __future__ import annotations

import numpy as np
import pytest

from finetune_advisor.data import Dataset

torch = pytest.importorskip("torch")
pytest.importorskip("fastai")

from finetune_advisor.learner import LearnerSpec, build_learner, split_body_head  # noqa: E402


def _is_bn(name: str, model) -> bool:
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return isinstance(module, torch.nn.modules.batchnorm._BatchNorm)


def test_frozen_phase_trains_head_and_batchnorm_only(tiny, single_ds, backbone):
    learn = build_learner(tiny.config(), single_ds, backbone=backbone)
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
def test_untrained_model_predicts_the_training_priors(tiny, tmp_path, backbone, multi):
    # Without this a short multi-label run starts at ~0.5 per label, below the all-negative
    # baseline (xray-nih: accuracy_multi 0.578 vs 0.901 before, 0.896 after, same schedule).
    if multi:
        ds = tiny.multi_label(tmp_path / "m")
        keep = tuple(it for i, it in enumerate(ds.items) if i not in (1, 3, 9))  # blue 6, red 5, green 4
        ds = Dataset(ds.root, ds.layout, keep, ds.classes, multi_label=True)
    else:
        ds = tiny.single_label(tmp_path / "s", per_class=9, classes=("blue", "red"))
        ds = Dataset(ds.root, ds.layout, ds.items[:12], ds.classes, multi_label=False)  # 9 blue : 3 red
    learn = build_learner(tiny.config(batch_size=4), ds, backbone=backbone)
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


def test_three_param_groups_last_stage_is_layer4(tiny, single_ds, backbone):
    learn = build_learner(tiny.config(), single_ds, backbone=backbone)
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


def test_a_spec_sets_the_head_and_optimiser(tiny, single_ds, backbone):
    spec = LearnerSpec(image_size=32, batch_size=8, head_size=16, dropout=(0.4, 0.2), beta2=0.9,
                       weight_decay=0.05, lr=2e-3, augmentation=tiny.no_aug)
    learn = build_learner(spec, single_ds, backbone=backbone)
    linears = [m for m in learn.model[1].modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [16, 2]
    assert [m.p for m in learn.model[1].modules() if isinstance(m, torch.nn.Dropout)] == pytest.approx([0.4, 0.2])
    assert learn.lr == 2e-3 and learn.wd == 0.05
    learn.create_opt()
    assert all(h["sqr_mom"] == pytest.approx(0.9) for h in learn.opt.hypers)
