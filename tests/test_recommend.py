"""End-to-end: recommend() and the CLI on generated data with tiny random-init backbones,
plus real-weights checks that skip cleanly where the weights or shared data are absent."""
import json

import pytest

from finetune_advisor import recommend
from finetune_advisor.cli import main
from finetune_advisor.config import DECISION_FIELDS, Config
from finetune_advisor.recommend import SAMPLE_DATASET, advise
from finetune_advisor.testing import make_csv_dataset, make_folder_dataset

FAST = dict(backbone="resnet18", pretrained=False, similarity=False, progress=False, lr_steps=40)
CLI_FAST = ["--backbone", "resnet18", "--random-init", "--no-similarity", "--lr-steps", "40", "-q"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp("ds"), counts={"a": 10, "b": 10, "c": 10}, size=(24, 24))


def test_recommend_returns_a_config_with_a_reason_per_field(folder):
    cfg = recommend(folder, **FAST)
    assert isinstance(cfg, Config)
    assert set(cfg.reasons) == set(DECISION_FIELDS) and all(cfg.reasons.values())
    assert Config.from_json(cfg.to_json()) == cfg
    lr = cfg.measurements.lr_finder
    assert 1e-7 < lr.lr < 10 and cfg.lr == pytest.approx(lr.lr, rel=0.05)  # no similarity: no / 10
    assert cfg.backbone == "resnet18" and cfg.reasons["backbone"] == "set by user"


def test_same_seed_same_recommendation(folder):
    a, b = (recommend(folder, seed=3, **FAST) for _ in range(2))
    assert a.lr == pytest.approx(b.lr, rel=0.01)
    assert {f: getattr(a, f) for f in DECISION_FIELDS if f != "lr"} == \
           {f: getattr(b, f) for f in DECISION_FIELDS if f != "lr"}


def test_multi_label_csv(tmp_path):
    root = make_csv_dataset(tmp_path)
    cfg = recommend(root, lr_finder=False, **{k: v for k, v in FAST.items()})
    assert cfg.multi_label is True
    assert cfg.measurements.lr_finder is None and "default" in cfg.reasons["lr"].lower()


def test_similarity_with_a_reference_built_for_the_same_backbone(tmp_path, folder):
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.similarity import build_reference
    ref_root = make_folder_dataset(tmp_path / "ref", counts={"x": 4, "y": 4, "z": 4}, size=(24, 24), seed=1)
    ref = build_reference(ref_root, create_backbone("resnet18", pretrained=False), image_size=32,
                          images_per_class=4, progress=False)
    ref.save(tmp_path / "ref.npz")
    rec = advise(folder, backbone="resnet18", pretrained=False, reference=tmp_path / "ref.npz",
                 lr_finder=False, progress=False, bootstrap=20)
    s = rec.similarity
    assert 0.0 <= s.similarity <= 1.0 and s.similarity == pytest.approx(min(1.0, 1 - (s.emd - s.emd_floor)), abs=1e-6)
    assert s.far == (s.similarity < s.threshold)
    assert rec.config.measurements.similarity.emd == pytest.approx(s.emd)


def test_cli_json_is_one_document_on_stdout(folder, capsys):
    rc = main(["recommend", str(folder), *CLI_FAST, "--json"])
    out = capsys.readouterr()
    assert rc == 0
    cfg = Config.from_json(out.out)
    assert cfg.backbone == "resnet18"


def test_cli_writes_config_and_plot(folder, tmp_path, capsys):
    rc = main(["recommend", str(folder), *CLI_FAST,
               "--out", str(tmp_path / "c.json"), "--plot", str(tmp_path / "lr.png")])
    assert rc == 0
    assert "recommended config" in capsys.readouterr().out
    assert Config.from_json((tmp_path / "c.json").read_text()).backbone == "resnet18"
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, needle", [
    (["recommend", "/no/such/dir"], "/no/such/dir"),
    (["recommend"], "no dataset given"),
    (["recommend", "--sample", "--backbone", "resnet19"], "resnet19"),
    (["train", "--sample", "--config", "/no/such/config.json"], "config.json"),
])
def test_cli_errors_are_one_line_without_traceback(args, needle, capsys):
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0]


def test_cli_profile_json(folder, capsys):
    assert main(["profile", str(folder), "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["n_images"] == 30 and prof["n_classes"] == 3


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["recommend", "--help"])
    assert exit_.value.code == 0
    assert "examples:" in capsys.readouterr().out


@pytest.mark.real_weights
def test_sample_with_the_shipped_offline_backbone(monkeypatch):
    """The README's main job: the embedded sample with real (shipped) ImageNet features."""
    monkeypatch.setenv("FINETUNE_ADVISOR_OFFLINE", "1")
    rec = advise(SAMPLE_DATASET, backbone="efficientnet_lite0", lr_finder=False, progress=False, bootstrap=50)
    # Quick Draw doodles are far from ImageNet (the study: Draw 0.581 < 0.72)
    assert rec.similarity.far and rec.similarity.similarity < 0.72
    assert rec.config.fine_tune == "all"


def test_cached_range_test_runs_the_body_once_per_image(folder, monkeypatch):
    import importlib
    rec_mod = importlib.import_module("finetune_advisor.recommend")   # the package binds the function's name

    seen = []
    real = rec_mod.create_backbone

    def counting(*args, **kwargs):
        bb = real(*args, **kwargs)
        bb.body.register_forward_hook(lambda module, inp, out: seen.append(int(inp[0].shape[0])))
        return bb
    monkeypatch.setattr(rec_mod, "create_backbone", counting)
    rec = advise(folder, **FAST)
    lr = rec.config.measurements.lr_finder
    assert lr.method == "cached" and lr.n_sweeps * lr.n_steps == 3 * 40     # 120 head steps
    assert sum(seen) == 30          # 30 images, each through the body once, for all 120 steps
    t = rec.config.measurements.transferability
    assert set(t) >= {"logme", "probe_accuracy"} and t["n_images"] == 30


def test_full_range_test_stays_an_option(folder):
    cfg = recommend(folder, lr_finder_method="full", **FAST)
    assert cfg.measurements.lr_finder.method == "full" and cfg.measurements.transferability is None


def test_cli_text_output_names_the_reference_used(tmp_path, folder, capsys):
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.similarity import build_reference
    ref_root = make_folder_dataset(tmp_path / "ref", counts={"x": 4, "y": 4}, size=(24, 24), seed=1)
    build_reference(ref_root, create_backbone("resnet18", pretrained=False), image_size=32,
                    images_per_class=4, progress=False).save(tmp_path / "ref.npz")
    rc = main(["recommend", str(folder), "--backbone", "resnet18", "--random-init", "--no-lr-finder", "-q",
               "--reference", str(tmp_path / "ref.npz")])
    out = capsys.readouterr().out
    assert rc == 0
    line = next(l for l in out.splitlines() if l.startswith("similarity reference:"))
    assert str(tmp_path / "ref.npz") in line and f"built from {ref_root.resolve()}" in line


def test_same_seed_same_lr_with_one_thread_and_two(tmp_path):
    """The advice does not depend on torch's thread count (the machine's load)."""
    import os
    import subprocess
    import sys
    small = make_folder_dataset(tmp_path / "d", counts={"a": 8, "b": 8, "c": 8}, size=(16, 16))
    code = ("import json, sys; from finetune_advisor.recommend import advise; "
            "import torch; "
            "rec = advise(sys.argv[1], backbone='resnet18', pretrained=False, similarity=False, progress=False, "
            "seed=3); print(json.dumps({'lr': rec.config.lr, 'threads': torch.get_num_threads()}))")
    got = {}
    for n in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, str(small)], capture_output=True, text=True, timeout=600,
                             env=dict(os.environ, OMP_NUM_THREADS=n), check=True)
        got[n] = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["1"]["threads"] == 1 and got["2"]["threads"] == 2
    assert got["1"]["lr"] == pytest.approx(got["2"]["lr"], rel=0.01)


def test_cli_picks_the_thread_count_and_says_so_in_debug(folder, caplog, monkeypatch):
    import torch

    from finetune_advisor import _threads
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    try:
        assert _threads.pick_torch_threads() == torch.get_num_threads() == _threads.default_thread_count()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        with caplog.at_level("DEBUG", logger="finetune_advisor._threads"):
            assert main(["profile", str(folder), "--debug"]) == 0      # no torch: no pick
            assert "torch threads" not in caplog.text
            assert main(["recommend", str(folder), *CLI_FAST, "--no-lr-finder", "--debug"]) == 0
        assert "torch threads: 1 (OMP_NUM_THREADS=1 is set)" in caplog.text
    finally:
        torch.set_num_threads(1)


def test_a_calibrated_step_rule_sizes_the_epochs_and_says_how_long(folder, tmp_path):
    from finetune_advisor.calibration import Calibration
    from finetune_advisor.heuristics.policies import CalibratedRule

    cal = Calibration(CalibratedRule("all_half", -2.5, steps=32), backbone="resnet18-random", profile="cpu",
                      schedule={"image_size": 64, "schedule_rule": "32 optimiser steps a phase (1 to 30 epochs)"},
                      family="constant", provenance={"datasets": ["a", "b", "c"], "n_trials": 63})
    cfg = recommend(folder, calibration=str(cal.save(tmp_path / "steps.json")), **FAST)
    per_epoch = int(cfg.reasons["head_epochs"].split(" steps an epoch")[0].rsplit(" ", 1)[1])
    assert cfg.head_epochs == cfg.unfrozen_epochs == max(2, -(-32 // per_epoch))
    for field in ("head_epochs", "unfrozen_epochs"):     # the rule, the dataset's steps, the time
        why = cfg.reasons[field]
        assert "32 optimiser steps a phase" in why and why.count("steps an epoch") == 1
        assert "training takes about" in why
    assert cfg.measurements.train_time_s > 0


def test_calibrated_policy_end_to_end_and_its_fallback(folder, tmp_path, capsys):
    from finetune_advisor.calibration import Calibration
    from finetune_advisor.heuristics.policies import CalibratedRule

    # a random-init backbone has its own key: a calibration holds for the weights it was fitted with
    cal = Calibration(CalibratedRule("all_tenth", -2.0), backbone="resnet18-random", profile="cpu",
                      schedule={"image_size": 64}, family="constant",
                      provenance={"datasets": ["a", "b", "c"], "n_trials": 63})
    path = cal.save(tmp_path / "r18.json")
    cfg = recommend(folder, calibration=str(path), **FAST)
    m = cfg.measurements
    assert m.policy == "calibrated" and cfg.lr == pytest.approx(0.01) and cfg.lr_finetune == pytest.approx(0.001)
    assert cfg.fine_tune == "all"
    assert cfg.reasons["lr"].startswith("calibrated (calibrated on 3 datasets, backbone resnet18-random, profile cpu")
    assert set(m.alternatives["study"]) >= {"lr", "lr_finetune", "fine_tune"}     # the study's choice, kept
    # the study policy, asked for, is the published rules: the finder's rate (no similarity: no / 10)
    study = recommend(folder, calibration=str(path), policy="study", **FAST)
    assert study.measurements.policy == "study" and study.lr == pytest.approx(study.measurements.lr_finder.lr,
                                                                                rel=0.05)
    # a calibration for another backbone is refused in one line
    assert main(["recommend", str(folder), *CLI_FAST, "--backbone", "resnet34", "--calibration", str(path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backbone 'resnet18-random', not 'resnet34-random'" in err[0]


# --- --profile auto: the machine decides -----------------------------------------------------------

def test_auto_profile_picks_paper_on_a_cuda_machine_and_says_which_device(folder, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    args = ["recommend", str(folder), "--backbone", "resnet18", "--random-init", "--no-similarity", "--no-lr-finder",
            "--json", "-q"]
    assert main(args) == 0                                # this machine: no accelerator (or the real one)
    here = Config.from_json(capsys.readouterr().out)
    if not torch.cuda.is_available():
        assert here.profile == "cpu" and here.reasons["profile"].startswith("auto: torch found no CUDA or MPS")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU 80GB")
    assert main(args) == 0
    gpu = Config.from_json(capsys.readouterr().out)
    assert gpu.profile == "paper" and gpu.unfrozen_epochs > here.unfrozen_epochs     # the study's 5 + 15 epochs
    assert gpu.reasons["profile"].startswith("auto: torch found a CUDA device Fake GPU 80GB, so profile 'paper'")
    assert main([*args, "--profile", "cpu"]) == 0         # forced, whatever the machine
    forced = Config.from_json(capsys.readouterr().out)
    assert forced.profile == "cpu" and "auto" not in forced.reasons["profile"]


# --- the training time: estimated from the measured throughput, and a budget ----------------------

def test_the_config_carries_a_time_estimate_and_a_budget_shortens_the_schedule(folder, monkeypatch):
    from finetune_advisor.learner.features import FeatureCache
    fast = {**FAST, "profile": "paper"}                    # 5 + 15 epochs: long enough to need cutting
    free = advise(folder, **fast).config
    m = free.measurements
    assert m.forward_images_per_s > 0 and m.forward_image_size == free.image_size
    # Each advise() times its own forward pass, and under load two runs differ by more than the
    # margin this test leaves: the runs below see the throughput this one measured.
    monkeypatch.setattr(FeatureCache, "images_per_s", property(lambda self: m.forward_images_per_s))
    assert m.train_time_s > 0
    assert "steps an epoch" in free.reasons["head_epochs"] and "training takes about" in free.reasons["unfrozen_epochs"]
    from finetune_advisor.heuristics import TimeModel
    overhead = TimeModel().overhead_s
    budget_s = overhead + (m.train_time_s - overhead) / 3    # a third of the epochs' time
    cut = advise(folder, **fast, budget=f"{budget_s:.3f}s").config
    assert cut.head_epochs + cut.unfrozen_epochs < free.head_epochs + free.unfrozen_epochs
    assert cut.measurements.train_time_s <= budget_s
    assert cut.reasons["head_epochs"].startswith("budget ")
    roomy = advise(folder, **fast, budget="10h").config      # a schedule that fits is left as it is
    assert (roomy.head_epochs, roomy.unfrozen_epochs) == (free.head_epochs, free.unfrozen_epochs)


@pytest.mark.parametrize("budget, needle", [("fast", "budget 'fast' is not a duration"),
                                            ("0.001s", "is too small for one epoch")])
def test_cli_budget_errors_are_one_line(folder, budget, needle, capsys):
    assert main(["recommend", str(folder), *CLI_FAST, "--budget", budget]) != 0
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_budget_needs_the_cached_range_test(folder, capsys):
    assert main(["recommend", str(folder), *CLI_FAST, "--no-lr-finder", "--budget", "5m"]) != 0
    assert "a training budget needs the cached LR range test" in capsys.readouterr().err
