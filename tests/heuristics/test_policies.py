"""The two policies on constructed profiles."""
import pytest

from finetune_advisor import heuristics as h
from finetune_advisor.exceptions import ConfigError
from finetune_advisor.heuristics.policies import CalibratedRule, calibrated_plan, predictor_value
from finetune_advisor.measurements import LRFinderResult, Measurements

PROFILE = h.make_profile({"a": 100, "b": 100}, mean_size=(300, 300))


def test_study_policy_is_the_published_rules():
    cfg = h.recommend_config(PROFILE, similarity=0.6, lr_find=3e-3, policy="study")
    assert cfg.lr == pytest.approx(3e-4) and cfg.lr_finetune == pytest.approx(3e-5)   # ÷10 far, then ÷10 again
    assert cfg.measurements.policy == "study" and not cfg.measurements.alternatives
    assert h.recommend_config(PROFILE, similarity=0.6, lr_find=3e-3) == cfg            # the pure default


def test_calibrated_policy_decides_rates_and_depth_together_and_keeps_the_study_choice():
    rule = CalibratedRule("all_half", intercept=-2.5)
    cfg = h.recommend_config(PROFILE, similarity=0.8, lr_find=3e-3, policy="calibrated", rule=rule,
                             evidence="calibrated on 9 datasets")
    # near and small: the study would train the head only at the finder's rate
    assert cfg.fine_tune == "all" and cfg.lr == pytest.approx(3.2e-3) and cfg.lr_finetune == pytest.approx(1.6e-3)
    assert cfg.unfrozen_epochs == 2 and cfg.head_epochs == 2
    assert all("calibrated on 9 datasets" in cfg.reasons[f] for f in ("lr", "lr_finetune", "fine_tune"))
    study = cfg.measurements.alternatives["study"]
    assert study["fine_tune"] == "none" and study["lr"] == pytest.approx(3e-3)
    assert cfg.measurements.policy == "calibrated"


def test_the_far_warning_gives_the_advice_of_the_policy_in_force():
    study = h.recommend_config(PROFILE, similarity=0.6, lr_find=3e-3, policy="study")
    calibrated = h.recommend_config(PROFILE, similarity=0.6, lr_find=3e-3, policy="calibrated",
                                    rule=CalibratedRule("all_half", -2.5), evidence="e")
    far = [[w for w in cfg.warnings if "far from ImageNet" in w] for cfg in (study, calibrated)]
    assert "use the lower learning rate (study: lr_find / 10)" in far[0][0]
    assert "(lr_find / 10) is not applied" in far[1][0] and "use the lower learning rate" not in far[1][0]
    assert not [w for w in h.recommend_config(PROFILE, similarity=0.9, policy="calibrated",
                                              rule=CalibratedRule("all_half", -2.5), evidence="e").warnings
                if "far from ImageNet" in w]


def test_calibrated_head_only_spends_the_whole_budget_on_the_head():
    plan = calibrated_plan(Measurements(), CalibratedRule("head_only", -2.0), profile_name="paper", evidence="e")
    assert plan["fine_tune"].value == "none" and plan["head_epochs"].value == 20 and plan["unfrozen_epochs"].value == 0


def test_rule_follows_its_predictor_and_clips_to_the_sweep():
    rule = CalibratedRule("all_tenth", -2.0, predictor="log10_finder_lr", slope=1.0, center=-3.0)
    near = Measurements(lr_finder=LRFinderResult(lr=1e-3))
    assert rule.log10_lr(predictor_value(rule.predictor, near)) == pytest.approx(-2.0)
    huge = Measurements(lr_finder=LRFinderResult(lr=10.0))
    plan = calibrated_plan(huge, rule, profile_name="cpu", evidence="e")
    assert plan["lr"].value == pytest.approx(0.1) and "clipped" in plan["lr"].reason
    unmeasured = calibrated_plan(Measurements(), rule, profile_name="cpu", evidence="e")
    assert unmeasured["lr"].value == pytest.approx(1e-2) and "not measured" in unmeasured["lr"].reason


def test_calibrated_policy_needs_a_rule_and_a_known_name():
    with pytest.raises(ConfigError, match="needs a calibrated rule"):
        h.recommend_config(PROFILE, policy="calibrated")
    with pytest.raises(ConfigError, match="unknown policy"):
        h.recommend_config(PROFILE, policy="bold")
    with pytest.raises(ConfigError, match="unknown arm"):
        CalibratedRule("half", -2.0)


def test_a_step_rule_sizes_each_phase_from_the_training_set():
    rule = CalibratedRule("all_half", intercept=-2.5, steps=32)
    small = h.recommend_config(h.make_profile({"a": 10, "b": 10}), policy="calibrated", rule=rule, evidence="e")
    n_train = h.compose.training_images(h.make_profile({"a": 10, "b": 10}), "cpu", small.valid_pct)
    per_epoch = h.steps_per_epoch(n_train, small.batch_size)
    assert small.head_epochs == small.unfrozen_epochs == -(-32 // per_epoch) > 2
    assert "32 optimiser steps a phase" in small.reasons["head_epochs"]
    assert f"{per_epoch} steps an epoch" in small.reasons["unfrozen_epochs"]
    # a large set needs fewer than the profile's epochs for 32 steps: the profile's 2 + 2 are the floor
    large = h.recommend_config(h.make_profile({f"c{i}": 5000 for i in range(50)}), policy="calibrated", rule=rule,
                               evidence="e")
    assert (large.head_epochs, large.unfrozen_epochs) == (2, 2)
    assert "never fewer than profile 'cpu''s 2" in large.reasons["head_epochs"]
    # the head alone spends both phases' steps on the head
    head = h.recommend_config(h.make_profile({"a": 10, "b": 10}), policy="calibrated", evidence="e",
                              rule=CalibratedRule("head_only", intercept=-1.5, steps=32))
    assert head.unfrozen_epochs == 0 and head.head_epochs == -(-64 // per_epoch)


def test_the_step_rule_caps_classes_at_the_profile_and_round_trips():
    profile = h.make_profile({"a": 1000, "b": 50})
    assert h.compose.training_images(profile, "cpu", 0.2) == 200     # 200 + 50 capped, 20% held out
    assert h.compose.training_images(profile, "paper", 0.2) == 840
    rule = CalibratedRule("all_half", -2.5, steps=32)
    assert CalibratedRule.from_dict(rule.to_dict()) == rule and rule.sweep_arm == "all_half:steps32"
    assert "steps" not in CalibratedRule("all_half", -2.5).to_dict()      # older files read the same
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="steps must be a whole number"):
            CalibratedRule("all_half", -2.5, steps=bad)


def test_size_predictors_read_classes_and_images():
    m = Measurements(n_images=1000, n_classes=10)
    assert predictor_value("log10_images", m) == pytest.approx(3.0)
    assert predictor_value("log10_classes", m) == pytest.approx(1.0)
    assert predictor_value("log10_classes", Measurements()) is None


def test_small_data_warnings_agree_with_a_calibrated_depth_near_and_far():
    small = h.make_profile({"a": 20, "b": 20})
    rule = CalibratedRule("all_half", intercept=-2.5)
    why = "in the calibration's sweep at 10 images a class, the whole network scored 0.63 against 0.58"
    for similarity in (0.6, 0.9):                 # far and near get the same word on depth
        cfg = h.recommend_config(small, similarity=similarity, policy="calibrated", rule=rule, evidence="e",
                                 depth_evidence=why)
        depth = [w for w in cfg.warnings if "may overfit" in w]
        assert cfg.fine_tune == "all" and len(depth) == 1
        assert "the advice unfreezes the whole network anyway" in depth[0] and why in depth[0]
    head = h.recommend_config(small, similarity=0.6, policy="calibrated", evidence="e",
                              rule=CalibratedRule("head_only", intercept=-1.5))
    assert not any("may overfit" in w for w in head.warnings)        # the advice trains the head alone
