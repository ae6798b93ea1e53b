"""The calibration file: round trip, checks on load, and the policy it drives."""
import json

import pytest

from finetune_advisor.calibration import Calibration, CalibrationError, find_calibration
from finetune_advisor.heuristics.policies import CalibratedRule


@pytest.fixture
def cal():
    return Calibration(CalibratedRule("all_half", -2.3, predictor="similarity", slope=-3.0, center=0.7),
                       backbone="resnet18", profile="cpu", schedule={"image_size": 64},
                       family="linear:similarity", provenance={"datasets": ["a", "b", "c"], "n_trials": 42})


def test_round_trip(tmp_path, cal):
    path = cal.save(tmp_path / "c.json")
    again = Calibration.load(path)
    assert again == cal
    assert "calibrated on 3 datasets, backbone resnet18, profile cpu, 42 trials" == again.evidence()


def test_refused_when_it_does_not_fit(tmp_path, cal):
    path = cal.save(tmp_path / "c.json")
    with pytest.raises(CalibrationError, match="profile 'cpu', not 'paper'"):
        find_calibration("resnet18", "paper", path)
    with pytest.raises(CalibrationError, match="backbone 'resnet18', not 'resnet50'"):
        find_calibration("resnet50", "cpu", path)
    assert find_calibration("resnet18", "cpu", path)[0] == cal


def test_unknown_version_and_foreign_files_are_clear_errors(tmp_path, cal):
    data = cal.to_dict()
    data["version"] = 99
    (tmp_path / "v.json").write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="version 99"):
        Calibration.load(tmp_path / "v.json")
    (tmp_path / "x.json").write_text('{"lr": 1}')
    with pytest.raises(CalibrationError, match="not a finetune-advisor calibration"):
        Calibration.load(tmp_path / "x.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        Calibration.load(tmp_path / "bad.json")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(tmp_path / "missing.json")


def test_no_shipped_calibration_says_why_and_how(monkeypatch, tmp_path):
    from finetune_advisor.calibration import model
    monkeypatch.setattr(model, "SHIPPED_DIR", tmp_path)
    cal, why = find_calibration("mynet", "paper")
    assert cal is None and "no calibration for backbone 'mynet' at profile 'paper'" in why
    assert "finetune-advisor calibrate" in why


def test_every_shipped_calibration_loads_and_is_found_for_what_it_holds():
    from finetune_advisor.calibration import shipped_calibrations

    for cal in shipped_calibrations():
        assert find_calibration(cal.backbone, cal.profile) == (cal, None)
        p = cal.provenance
        assert len(p["datasets"]) >= 3 and p["n_trials"] > 0 and p["loo_mean_regret"]
        assert "amazon" not in p["datasets"]                 # a smoke test is never fitted on
        assert cal.family in p["loo_mean_regret"]


def test_the_nearest_shipped_calibration_is_transferred_and_says_so(monkeypatch, tmp_path):
    from finetune_advisor.calibration import model, nearest_calibration

    monkeypatch.setattr(model, "SHIPPED_DIR", tmp_path)
    assert nearest_calibration("resnet50", "paper") is None           # nothing ships: nothing to transfer
    for backbone, profile, lr in [("resnet50_keras_v1", "cpu", -2.5), ("efficientnet_lite0", "cpu", -2.0),
                                  ("efficientnet_lite0", "paper", -2.25)]:
        Calibration(CalibratedRule("all_half", lr), backbone=backbone, profile=profile,
                    provenance={"datasets": ["a", "b", "c"]}).save(tmp_path / f"{backbone}-{profile}.json")
    picks = {(b, p): (c.backbone, c.profile) for b, p in [("resnet50", "paper"), ("resnet18", "cpu"),
                                                          ("efficientnet_b3", "cpu"), ("efficientnet_lite0", "gpu"),
                                                          ("vit_b_16", "paper")]
             for c in [nearest_calibration(b, p)]}
    assert picks == {("resnet50", "paper"): ("resnet50_keras_v1", "cpu"),        # the longest shared key prefix
                     ("resnet18", "cpu"): ("resnet50_keras_v1", "cpu"),
                     ("efficientnet_b3", "cpu"): ("efficientnet_lite0", "cpu"),   # then the same profile
                     ("efficientnet_lite0", "gpu"): ("efficientnet_lite0", "cpu"),  # same backbone first
                     ("vit_b_16", "paper"): ("efficientnet_lite0", "paper")}     # nothing shared: the profile
    moved = nearest_calibration("resnet50", "paper")
    assert moved.rule == CalibratedRule("all_half", -2.5)                       # the rule itself unchanged
    assert moved.evidence() == ("calibrated on 3 datasets, backbone resnet50_keras_v1, profile cpu; "
                                "transferred to resnet50 at paper, which have none (transferred from the cpu "
                                "calibration, not validated at paper)")


def test_a_fidelity_check_survives_the_file_and_a_transferred_calibration_cites_it(tmp_path):
    check = {"study": "ladder", "image_size": 128, "head_epochs": 3, "unfrozen_epochs": 9, "n_datasets": 6,
             "mean_advice_gap": 0.018, "holds": False, "best_mean_cell": "advice /3",
             "gap_to_best_mean_cell": 0.011, "mean_lr_move_decades": -0.31}
    cal = Calibration(CalibratedRule("all_half", -2.5), backbone="r50", profile="cpu",
                      provenance={"datasets": ["a", "b"]})
    cal = cal.with_fidelity({**check, "mean_advice_gap": 0.5}).with_fidelity(check)   # the same study: replaced
    cal = cal.with_fidelity({"study": "hand-edited", "image_size": 224})             # malformed: not cited
    cal.save(tmp_path / "c.json")
    back = Calibration.load(tmp_path / "c.json")
    assert [c["study"] for c in back.provenance["fidelity"]] == ["ladder", "hand-edited"]
    assert "not validated" not in back.evidence()            # at its own profile nothing is transferred
    said = back.transferred("r50", "paper").evidence()
    assert said.count("at 128 px") == 1 and "0.018 below each dataset's best cell on the mean: not within 1 point" in said
    assert "its best cell on the mean was advice /3 (+0.011)" in said and "0.31 decades lower" in said
    assert "224" not in said


def test_resolve_policy_transfers_to_pretrained_backbones_only(monkeypatch, tmp_path):
    from finetune_advisor.calibration import model
    from finetune_advisor.recommend import AdviseOptions, resolve_policy

    monkeypatch.setattr(model, "SHIPPED_DIR", tmp_path)
    Calibration(CalibratedRule("all_half", -2.5), backbone="resnet50_keras_v1", profile="cpu",
                provenance={"datasets": ["a", "b", "c"]}).save(tmp_path / "r50.json")
    policy, cal, note = resolve_policy(AdviseOptions(profile="paper"), "resnet50")
    assert policy == "calibrated" and cal.backbone == "resnet50_keras_v1"
    assert note.startswith("no calibration for backbone 'resnet50' at profile 'paper': using the one fitted "
                           "for resnet50_keras_v1 at cpu") and "--policy study" in note
    policy, cal, note = resolve_policy(AdviseOptions(profile="paper"), "resnet50-random", pretrained=False)
    assert (policy, cal) == ("study", None) and "using the study policy" in note
    assert resolve_policy(AdviseOptions(policy="study"), "resnet50") == ("study", None, None)
    assert resolve_policy(AdviseOptions(), "resnet50_keras_v1") == ("calibrated", model.Calibration.load(
        tmp_path / "r50.json"), None)
