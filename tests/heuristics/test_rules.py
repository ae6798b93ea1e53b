"""Pure rules: each threshold from both sides, the fine-tune matrix, invariances, reasons."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finetune_advisor import heuristics as h
from finetune_advisor.config import DECISION_FIELDS, Augmentation, Config
from finetune_advisor.exceptions import ConfigError
from finetune_advisor.heuristics import make_profile


def uniform(per_class: int, n_classes: int = 2, **kw):
    return make_profile({f"c{i}": per_class for i in range(n_classes)}, **kw)


def test_importing_heuristics_does_not_import_torch_or_fastai():
    code = ("import sys, finetune_advisor.heuristics; "
            "print(sorted(m for m in ('torch', 'fastai', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- architecture ---------------------------------------------------------------------
@pytest.mark.parametrize("per_class, n_classes, expected", [
    (299, 2, "resnet18"), (300, 2, "resnet34"),          # small | medium
    (999, 20, "resnet34"), (1000, 10, "resnet50"),      # medium | large with 10,000 images
    (1000, 9, "resnet34"),                              # large per class, 9,000 images in all
])
def test_choose_architecture(per_class, n_classes, expected):
    name, reason = h.choose_architecture(uniform(per_class, n_classes))
    assert name == expected
    assert str(per_class) in reason


# --- validation split -----------------------------------------------------------------
@pytest.mark.parametrize("per_class, expected, words", [
    (20, 0.4, "cannot give"), (34, 0.4, "cannot give"),
    (35, 0.4, "0.4 cap"), (40, 0.4, "rounded up"),
    (100, 0.15, "rounded up"), (149, 0.15, "rounded up"), (150, 0.1, "rounded up"),
    (151, 0.1, "0.1 floor"), (5000, 0.1, "0.1 floor"),
])
def test_validation_split(per_class, expected, words):
    pct, reason = h.validation_split(uniform(per_class))
    assert pct == expected
    assert words in reason and str(per_class) in reason


def test_validation_split_uses_the_median_not_one_tiny_class():
    profile = make_profile({"a": 500, "b": 600, "c": 700, "tiny": 3})
    assert h.validation_split(profile).value == 0.1


# --- batch size -----------------------------------------------------------------------
@pytest.mark.parametrize("n_images, expected", [
    (498, 16), (500, 32), (1998, 32), (2000, 64), (9998, 64), (10_000, 128),
])
def test_batch_size_bands(n_images, expected):
    bs, reason = h.batch_size(uniform(n_images // 2), 0.2)
    assert bs == expected
    assert str(n_images) in reason and "capped" not in reason


@pytest.mark.parametrize("n_images, valid_pct, expected", [(20, 0.4, 4), (40, 0.2, 16), (3, 0.4, 2), (1, 0.4, 2)])
def test_batch_size_is_capped_by_a_tiny_training_set(n_images, valid_pct, expected):
    bs, reason = h.batch_size(make_profile({"a": n_images}), valid_pct)
    assert bs == expected
    n_train = n_images - int(valid_pct * n_images)
    if expected < 16:
        assert "capped" in reason and str(n_train) in reason


def test_batch_size_is_a_power_of_two_giving_two_batches():
    for n in range(4, 700, 7):
        bs = h.batch_size(make_profile({"a": n}), 0.2).value
        n_train = n - int(0.2 * n)
        assert bs & (bs - 1) == 0 and 2 <= bs and (bs <= n_train // 2 or bs == 2)


# --- fine-tune plan (Overture Figure 9) -----------------------------------------------
@pytest.mark.parametrize("per_class, similarity, fine_tune, epochs", [
    (100, 0.80, "none", 0),    # small & similar: head only
    (100, 0.60, "all", 5),     # small & different: large part, <= 5 epochs (tricky)
    (299, 0.80, "none", 0),
    (300, 0.80, "last", 5),    # medium: last layers
    (500, 0.60, "last", 5),
    (999, 0.80, "last", 5),
    (1000, 0.80, "last", 5),   # large & similar: last layers
    (1000, 0.60, "all", 15),   # large & different: whole network, study schedule
    (100, None, "all", 15),    # similarity unknown: study default
])
def test_fine_tune_matrix(per_class, similarity, fine_tune, epochs):
    plan = h.fine_tune_plan(uniform(per_class), similarity, profile_name="paper")
    assert (plan["fine_tune"].value, plan["unfrozen_epochs"].value) == (fine_tune, epochs)
    assert str(per_class) in plan["fine_tune"].reason
    if similarity is not None:
        assert f"{similarity:.2f}" in plan["fine_tune"].reason


def test_fine_tune_far_flag_overrides_similarity_and_cpu_profile_caps_epochs():
    plan = h.fine_tune_plan(uniform(100), 0.9, far=True, profile_name="cpu")
    assert plan["fine_tune"].value == "all" and plan["unfrozen_epochs"].value == 2


# --- learning rates -------------------------------------------------------------------
@pytest.mark.parametrize("similarity, expected", [(0.71, 3e-4), (0.72, 3e-3), (0.73, 3e-3)])
def test_lr_divided_by_ten_only_when_far(similarity, expected):
    rates = h.learning_rates(3e-3, None, similarity=similarity)
    assert rates["lr"].value == pytest.approx(expected)
    assert f"{similarity:.2f}" in rates["lr"].reason and "3.0e-03" in rates["lr"].reason
    assert ("÷ 10" in rates["lr"].reason) == (similarity < 0.72)


def test_finetune_lr_and_divisor():
    rates = h.learning_rates(3.2e-3, False)
    assert rates["lr_finetune"].value <= rates["lr"].value / 10 * (1 + 1e-9)
    assert rates["lr_divisor"].value == 10
    assert "unused" in h.learning_rates(3.2e-3, False, fine_tune="none")["lr_finetune"].reason


def test_lr_without_finder_uses_overture_default():
    rates = h.learning_rates(None, None)
    assert rates["lr"].value == 3e-3
    assert "Overture default" in rates["lr"].reason and "not measured" in rates["lr"].reason


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf")])
def test_bad_lr_find_raises(bad):
    with pytest.raises(ConfigError, match="lr_find"):
        h.learning_rates(bad, False)


# --- head, epochs, image size, fixed study defaults -----------------------------------
@pytest.mark.parametrize("per_class, n_classes, expected", [
    (100, 9, 256), (100, 10, 512), (300, 9, 512), (100, 256, 512), (100, 257, 1024),
])
def test_head_size(per_class, n_classes, expected):
    size, reason = h.head_size(uniform(per_class, n_classes))
    assert size == expected and str(n_classes) in reason


@pytest.mark.parametrize("profile_name, fine_tune, expected", [
    ("paper", "all", 5), ("paper", "none", 15), ("cpu", "last", 2), ("cpu", "none", 4),
])
def test_head_epochs(profile_name, fine_tune, expected):
    assert h.head_epochs(profile_name, fine_tune).value == expected


@pytest.mark.parametrize("mean_size, profile_name, expected", [
    ((28, 28), "paper", 48), ((28, 28), "cpu", 48), ((32, 40), "cpu", 64), ((31, 40), "cpu", 48),
    ((600, 450), "paper", 224), ((112, 200), "paper", 224), ((111, 200), "paper", 208), ((10, 10), "cpu", 32),
])
def test_image_size_is_capped_at_twice_the_mean_resolution(mean_size, profile_name, expected):
    size, reason = h.image_size(uniform(50, mean_size=mean_size), profile_name)
    assert size == expected and f"{mean_size[0]}x{mean_size[1]}" in reason


def test_image_size_without_resolution_uses_the_profile():
    profile = make_profile({"a": 5})
    object.__setattr__(profile, "resolution", {})
    assert h.image_size(profile, "paper") == (224, "profile 'paper' image size 224 (dataset resolution unknown)")


def test_study_defaults():
    assert h.weight_decay().value == 0.1 and h.beta2().value == 0.99 and h.dropout().value == (0.5, 0.25)


def test_multi_label_from_profile():
    assert h.multi_label(make_profile({"a": 3}, multi_label=True)).value is True
    assert h.multi_label(make_profile({"a": 3})).value is False


def test_unknown_profile_name():
    with pytest.raises(ConfigError, match="unknown profile"):
        h.head_epochs("laptop", "all")


# --- augmentation ---------------------------------------------------------------------
DEFAULT = Augmentation()


@pytest.mark.parametrize("key, field, value, words", [
    ("orientation_matters", "do_flip", False, "left/right flips off"),
    ("color_matters", "max_lighting", 0.0, "no lighting change"),
    ("size_matters", "max_zoom", 1.0, "no zoom"),
    ("shape_matters", "max_warp", 0.0, "no warp"),
    ("vertical_symmetry", "flip_vert", True, "vertical flips on"),
    ("noise", "noise_std", h.DEFAULT_NOISE_STD, "Gaussian noise"),
])
def test_each_invariance_changes_only_its_augmentation(key, field, value, words):
    aug, reason = h.augmentation({key: True})
    assert getattr(aug, field) == value
    others = {f: getattr(aug, f) for f in vars(DEFAULT) if f != field}
    assert others == {f: getattr(DEFAULT, f) for f in others}
    assert words in reason


def test_default_augmentation_is_fastai_default_without_vertical_flips():
    aug, reason = h.augmentation(None)
    assert aug == DEFAULT and "canonical up" in reason and "no noise" in reason


def test_orientation_also_forbids_vertical_mirror_flips():
    aug, reason = h.augmentation({"orientation_matters": True, "vertical_symmetry": True})
    assert not aug.do_flip and not aug.flip_vert and "vertical flips off (orientation matters)" in reason


def test_noise_std_can_be_given():
    assert h.augmentation({"noise": 0.1}).value.noise_std == 0.1


@pytest.mark.parametrize("bad, match", [({"colour_matters": True}, "unknown invariance"),
                                        ({"noise": 3}, "noise"), ({"noise": "yes"}, "noise")])
def test_bad_invariances(bad, match):
    with pytest.raises(ConfigError, match=match):
        h.augmentation(bad)


# --- warnings -------------------------------------------------------------------------
def _has(warnings, text):
    return any(text in w for w in warnings)


def test_no_warnings_for_a_healthy_near_dataset():
    assert h.warnings_for(make_profile({"a": 400, "b": 350}), similarity=0.8) == ()


@pytest.mark.parametrize("counts, imbalanced", [
    ({"a": 400, "b": 40}, False),    # ratio 10 (not > 10), SD 180 < mean 220
    ({"a": 440, "b": 40}, True),     # ratio 11
])
def test_imbalance_ratio(counts, imbalanced):
    assert _has(h.warnings_for(make_profile(counts)), "class imbalance") == imbalanced


def test_imbalance_by_sd_relative_to_mean():
    profile = make_profile({**{f"c{i}": 40 for i in range(20)}, "big": 400})  # ratio 10, SD 76 > mean 57
    assert profile.imbalance_sd > profile.n_images / profile.n_classes
    assert _has(h.warnings_for(profile), "class imbalance")


@pytest.mark.parametrize("per_class, warned", [(29, True), (30, False)])
def test_below_overture_small_bound(per_class, warned):
    assert _has(h.warnings_for(uniform(per_class)), "small-data bound") == warned


@pytest.mark.parametrize("smallest, warned", [(34, True), (35, False)])
def test_classes_too_small_for_a_usable_split(smallest, warned):
    warnings = h.warnings_for(make_profile({"a": 100, "b": 100, "small": smallest}))
    assert _has(warnings, "fewer than 35 images") == warned
    if warned:
        assert _has(warnings, "small (34)")


def test_single_image_classes():
    warnings = h.warnings_for(make_profile({"a": 100, "b": 100, "lonely": 1}))
    assert _has(warnings, "at most one image") and _has(warnings, "lonely")


@pytest.mark.parametrize("n_images, n_corrupt, warned", [(99, 1, True), (199, 1, False), (100, 0, False)])
def test_corrupt_files(n_images, n_corrupt, warned):
    profile = make_profile({"a": n_images}, n_corrupt=n_corrupt)
    assert _has(h.warnings_for(profile), "could not be read") == warned


@pytest.mark.parametrize("per_class, similarity, far_warned, tricky", [
    (100, 0.71, True, True), (100, 0.73, False, False), (500, 0.6, True, False)])
def test_far_from_imagenet(per_class, similarity, far_warned, tricky):
    warnings = h.warnings_for(uniform(per_class), similarity)
    assert _has(warnings, "far from ImageNet") == far_warned
    assert _has(warnings, "tricky") == tricky


def test_single_class_dataset():
    assert _has(h.warnings_for(make_profile({"only": 50})), "at least 2")


# --- composition ----------------------------------------------------------------------
def test_recommend_config_reasons_cover_every_decision_and_name_the_numbers():
    profile = make_profile({"cat": 180, "dog": 150, "bird": 40}, mean_size=(400, 300))
    cfg = h.recommend_config(profile, similarity=0.58, lr_find=3.2e-3, profile_name="paper")
    assert set(cfg.reasons) == set(DECISION_FIELDS)
    assert all(isinstance(r, str) and len(r) > 10 for r in cfg.reasons.values())
    assert "370 images" in cfg.reasons["batch_size"]
    assert "3.2e-03 ÷ 10" in cfg.reasons["lr"] and "0.58 < 0.72" in cfg.reasons["lr"]
    assert "150" in cfg.reasons["valid_pct"] and "150" in cfg.reasons["backbone"]
    assert cfg.lr == pytest.approx(3.2e-4) and cfg.lr_finetune == pytest.approx(3.2e-5)
    assert cfg.fine_tune == "all" and cfg.unfrozen_epochs == 5 and cfg.profile == "paper"
    assert cfg.measurements.lr_find == 3.2e-3 and cfg.measurements.score == 0.58
    assert any("tricky" in w for w in cfg.warnings)


def test_recommend_config_json_round_trip():
    cfg = h.recommend_config(make_profile({"a": 60, "b": 1}, mean_size=(28, 28)), similarity=0.9, lr_find=1e-2,
                             invariances={"orientation_matters": True, "noise": True},
                             measurements={"similarity": {"similarity": 0.9, "emd": 0.12}, "extra": [1, 2]})
    again = Config.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["measurements"]["similarity"] == {"similarity": 0.9, "emd": 0.12}
    assert cfg.measurements.extra["extra"] == [1, 2]


def test_recommend_config_defaults_without_measurements():
    cfg = h.recommend_config(uniform(500))
    assert cfg.lr == 3e-3 and "Overture default" in cfg.reasons["lr"]
    assert cfg.fine_tune == "all" and "study default" in cfg.reasons["fine_tune"]
    assert cfg.profile == "cpu" and cfg.image_size == 64 and cfg.measurements.far is None


def test_recommend_config_backbone_override_and_result_objects():
    class Sim:
        similarity = 0.65

    class LR:
        lr = 5e-3

    cfg = h.recommend_config(uniform(500), similarity=Sim(), lr_find=LR(), backbone="efficientnet_lite0",
                             backbone_reason="offline fallback")
    assert cfg.backbone == "efficientnet_lite0" and cfg.reasons["backbone"] == "offline fallback"
    assert cfg.lr == 5e-4


def test_recommend_config_quick_draw_like():
    profile = make_profile({f"c{i}": 1500 for i in range(340)}, mean_size=(28, 28))
    cfg = h.recommend_config(profile, similarity=0.581, lr_find=3.8e-3, profile_name="paper")
    assert (cfg.backbone, cfg.image_size, cfg.head_size, cfg.fine_tune, cfg.unfrozen_epochs) == \
        ("resnet50", 48, 1024, "all", 15)
    assert cfg.lr == pytest.approx(3.8e-4) and cfg.batch_size == 128 and cfg.valid_pct == 0.1


def test_recommend_config_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile"):
        h.recommend_config(uniform(50), profile_name="gpu")


# --- LR finder picks at the edge of the sweep -----------------------------------------
def _with_finder(lr, index, n_steps=200, valley=None, **kw):
    from finetune_advisor.measurements import LRFinderResult, Measurements
    finder = LRFinderResult(lr=lr, index=index, n_steps=n_steps, fastai_valley=valley, method="cached")
    return h.recommend_config(uniform(100, 3), lr_find=lr, measurements=Measurements(lr_finder=finder), **kw)


@pytest.mark.parametrize("lr, index, valley, needles", [
    (1.4e-7, 0, 7.6e-3, ["at the start of its sweep (point 1 of 200)", "valley on the same curve is 7.6e-03, 4.7 "
                                                                      "decades away"]),
    (1.1e-7, 5, None, ["at the start of its sweep (point 6 of 200)"]),
    (8.0, 197, 5e-3, ["at the end of its sweep (point 198 of 200)", "3.2 decades away"]),
    (2e-5, 100, 2e-3, ["2.0 decades from fastai's valley 2.0e-03 on the same curve (more than 1.5)"]),
])
def test_lr_pick_at_the_sweep_edge_or_far_from_the_valley_is_a_warning(lr, index, valley, needles):
    cfg = _with_finder(lr, index, valley=valley)
    lr_warnings = [w for w in cfg.warnings if w.startswith("LR finder pick")]
    assert len(lr_warnings) == 1
    for needle in needles:
        assert any(needle in w for w in lr_warnings), (needle, lr_warnings)
    assert Config.from_json(cfg.to_json()).warnings == cfg.warnings


def test_lr_pick_inside_the_sweep_near_the_valley_has_no_warning():
    cfg = _with_finder(2e-3, 120, valley=1e-3)
    assert not [w for w in cfg.warnings if "LR finder" in w]
    assert not [w for w in _with_finder(2e-3, 120, valley=None).warnings if "LR finder" in w]


def test_lr_finder_fallback_says_what_it_did():
    from finetune_advisor.measurements import Measurements
    why = "LR range test on /data/x failed: the smoothed loss never decreases"
    cfg = h.recommend_config(uniform(100, 3), measurements=Measurements(lr_finder_failed=why), similarity=0.8)
    assert cfg.lr == h.DEFAULT_LR
    assert cfg.reasons["lr"] == (f"study: Overture default 3e-03 (the LR range test failed ({why}), so it is "
                                 f"used instead) as is because similarity 0.80 >= 0.72 (near ImageNet)")
    assert any(w.startswith(why) and "the study's default 0.003, not a measured one" in w for w in cfg.warnings)
    plain = h.recommend_config(uniform(100, 3), similarity=0.8)   # not run at all: no warning
    assert "(no LR finder run)" in plain.reasons["lr"] and not plain.warnings
