"""Bench grid: schedules, the Table 1 and calibration grids, anchors, the trial list."""
from __future__ import annotations

import pytest

from finetune_advisor import bench
from finetune_advisor.bench import expand_grid
from finetune_advisor.bench.grid import parse_label
from finetune_advisor.config import Config
from finetune_advisor.exceptions import ConfigError


# --- grid ---------------------------------------------------------------------------------------

def test_grid_expands_to_exact_trial_list():
    near = Config(profile="cpu", lr=1e-3, lr_finetune=1e-4,
                  measurements={"far": False, "lr_finder": {"fastai_valley": 5e-4}})
    far = Config(profile="cpu", lr=1e-3, lr_finetune=1e-4, measurements={"far": True})
    specs = expand_grid({("near", 0.2): near, ("far", 1.0): far}, seeds=[0, 1])
    labels = ["baseline", "lr x10^-1", "lr x10^-0.5", "lr x10^0", "lr x10^+0.5", "lr x10^+1",
              "lr_divisor=10", "lr_divisor=5", "lr_divisor=3", "weight_decay=0.01", "weight_decay=0.1",
              "weight_decay=0", "beta2=0.9", "beta2=0.95", "beta2=0.99", "dropout_p1=0.75",
              "dropout_p1=0.5", "dropout_p1=0.25", "anchor:fastai_fine_tune"]
    expected = [f"near|0.2|{lab}|{s}" for s in (0, 1) for lab in labels + ["anchor:lr_find_valley",
                                                                          "anchor:no_similarity_rule"]]
    expected += [f"far|1|{lab}|{s}" for s in (0, 1) for lab in labels + ["anchor:no_similarity_rule"]]
    assert [s.key for s in specs] == expected
    alias = {s.key: s.same_as for s in specs if s.same_as}
    # fastai's lr_find anchor holds fine_tune's config until its rate is measured: never an alias of it
    measured = expand_grid({("near", 0.2): near}, seeds=[0], grid={},
                           anchors=bench.select_anchors(["fastai_fine_tune", "fastai_lr_find"]))
    assert [(s.label, s.same_as) for s in measured][-2:] == [("anchor:fastai_fine_tune", None),
                                                             ("anchor:fastai_lr_find", None)]
    # near: lr x10^0, divisor 10, wd 0.1, beta2 0.99, p1 0.5 and the no-/10 anchor are the baseline
    assert {k for k in alias if k.startswith("near|0.2|") and k.endswith("|0")} == {
        f"near|0.2|{lab}|0" for lab in ("lr x10^0", "lr_divisor=10", "weight_decay=0.1", "beta2=0.99",
                                        "dropout_p1=0.5", "anchor:no_similarity_rule")}
    # far: the baseline is lr_find/10, so lr x10^-1 is the baseline and the no-/10 anchor is lr x10^0
    assert alias["far|1|lr x10^-1|0"] == "far|1|baseline|0"
    assert alias["far|1|anchor:no_similarity_rule|0"] == "far|1|lr x10^0|0"
    assert "far|1|lr x10^0|0" not in alias
    by = {s.key: s for s in specs}
    assert by["near|0.2|lr x10^+1|0"].config.lr == pytest.approx(1e-2)
    assert by["near|0.2|lr x10^+1|0"].config.lr_finetune == pytest.approx(1e-3)
    assert by["far|1|lr x10^0|0"].config.lr == pytest.approx(1e-2)
    assert by["near|0.2|dropout_p1=0.25|0"].config.dropout == (0.25, 0.25)
    assert by["near|0.2|anchor:lr_find_valley|0"].config.lr == pytest.approx(5e-4)
    ft = by["near|0.2|anchor:fastai_fine_tune|1"].config
    assert (ft.lr, ft.lr_finetune, ft.lr_divisor, ft.weight_decay) == (2e-3, 1e-3, 100.0, 0.01)
    assert sum(s.same_as is None for s in specs) == 2 * 15 + 2 * 14   # near: 1 + 4 lr + 8 + 2 anchors; far: no valley


def test_far_divisor_in_sync_with_heuristics():
    from finetune_advisor import heuristics
    assert bench.grid.LR_FAR_DIVISOR == heuristics.LR_FAR_DIVISOR      # one copy: finetune_advisor.study


def test_custom_profile_overrides_the_schedule_and_names_it():
    prof = bench.custom_profile("cpu", head_epochs=5, unfrozen_epochs=15, image_size=None)
    assert (prof.head_epochs, prof.unfrozen_epochs, prof.image_size) == (5, 15, 64)
    assert prof.name == "cpu+head_epochs=5,unfrozen_epochs=15" and prof.config_profile == "cpu"
    assert bench.custom_profile("paper") is bench.BENCH_PROFILES["paper"]
    with pytest.raises(ConfigError):
        bench.custom_profile("cpu", image_size=0)


def test_calibration_grid_uses_absolute_rates_and_equal_epochs():
    base = Config(profile="cpu", lr=2e-3, lr_finetune=2e-4, head_epochs=2, unfrozen_epochs=2,
                  measurements={"far": True})
    specs = bench.expand_grid({("pets", 1.0): base}, seeds=[0], grid=bench.select_grid(grid="calibration"),
                              anchors=())
    cells = [s for s in specs if s.parameter != "baseline"]
    assert len(cells) == 3 * len(bench.CALIBRATION_LOG10_LRS) and all(s.same_as is None for s in cells)
    # the finder (and the /10 far rule) play no part: the rate is the cell's, whatever the baseline
    rates = sorted({s.config.lr for s in cells})
    assert rates[0] == pytest.approx(1e-4) and rates[-1] == pytest.approx(1e-1) and len(rates) == 7
    for s in cells:
        total = s.config.head_epochs + (s.config.unfrozen_epochs if s.config.fine_tune != "none" else 0)
        assert total == 4
        if s.parameter == "lr_all_tenth":
            assert s.config.lr_finetune == pytest.approx(s.config.lr / 10)
    assert parse_label(cells[0].label) == (cells[0].parameter, cells[0].value)


def test_bench_profiles_are_the_schedule_table_with_the_benchs_cap():
    from finetune_advisor.config import PROFILES
    for name, prof in bench.BENCH_PROFILES.items():
        assert (prof.image_size, prof.head_epochs, prof.unfrozen_epochs) == tuple(
            PROFILES[name][k] for k in ("image_size", "head_epochs", "unfrozen_epochs"))
    # what every committed study stored in its settings (a resumed study must match them)
    assert bench.BENCH_PROFILES["cpu"].to_dict() == {
        "name": "cpu", "config_profile": "cpu", "image_size": 64, "head_epochs": 2, "unfrozen_epochs": 2,
        "batch_size": None, "max_images_per_class": 100}
    assert bench.BENCH_PROFILES["paper"].to_dict() == {
        "name": "paper", "config_profile": "paper", "image_size": 224, "head_epochs": 5, "unfrozen_epochs": 15,
        "batch_size": 64, "max_images_per_class": None}


# --- the schedule grid: fixed epochs and step budgets -------------------------------------------

def test_schedule_grid_trains_each_cell_under_fixed_epochs_and_each_step_budget():
    grid = bench.select_grid(None, "schedule")
    assert grid == {"lr_all_half": (-3.0, -2.5, -2.0), "lr_head_only": (-1.5,),
                    "lr_all_half:steps32": (-3.0, -2.5, -2.0), "lr_head_only:steps32": (-1.5,)}
    grid = {**grid, "lr_all_half:steps96": (-2.5,), "lr_head_only:steps96": (-1.5,)}    # any budget works
    # 36 training images at batch 8 (4 steps an epoch); 400 at batch 32 (12 steps an epoch)
    small = Config(profile="cpu", batch_size=8, valid_pct=0.1, head_epochs=2, unfrozen_epochs=2,
                   measurements={"n_images": 40})
    large = Config(profile="cpu", batch_size=32, valid_pct=0.2, head_epochs=2, unfrozen_epochs=2,
                   measurements={"n_images": 500})
    specs = {s.key: s for s in expand_grid({("small@10", 1.0): small, ("large", 1.0): large}, seeds=[0], grid=grid,
                                           anchors=["fastai_fine_tune"])}
    cfg = specs["small@10|1|lr_all_half:steps32=-2.5|0"].config
    assert (cfg.head_epochs, cfg.unfrozen_epochs, cfg.lr, cfg.lr_finetune) == (8, 8, pytest.approx(10 ** -2.5),
                                                                               pytest.approx(10 ** -2.5 / 2))
    assert specs["small@10|1|lr_all_half:steps96=-2.5|0"].config.head_epochs == 24
    head = specs["small@10|1|lr_head_only:steps32=-1.5|0"].config
    assert (head.fine_tune, head.head_epochs, head.unfrozen_epochs) == ("none", 16, 0)   # both phases' steps
    fixed = specs["small@10|1|lr_all_half=-2.5|0"].config
    assert (fixed.head_epochs, fixed.unfrozen_epochs) == (2, 2)
    # on the large set 32 steps take 3 epochs a phase; 96 steps, 8
    assert specs["large|1|lr_all_half:steps32=-2|0"].config.head_epochs == 3
    assert specs["large|1|lr_all_half:steps96=-2.5|0"].config.unfrozen_epochs == 8
    assert parse_label("lr_all_half:steps32=-2.5") == ("lr_all_half:steps32", -2.5)
    # where the step rule gives the profile's epochs, the cell is the fixed one, trained once
    equal = Config(profile="cpu", batch_size=16, valid_pct=0.2, head_epochs=2, unfrozen_epochs=2,
                   measurements={"n_images": 320})       # 256 to train, 16 steps an epoch: 32 steps = 2 epochs
    twins = expand_grid({("e", 1.0): equal}, seeds=[0], grid=grid, anchors=[])
    assert {s.key: s.same_as for s in twins}["e|1|lr_all_half:steps32=-2|0"] == "e|1|lr_all_half=-2|0"


def test_a_step_cell_without_the_image_count_is_refused():
    with pytest.raises(ConfigError, match="n_images"):
        bench.calibration_config(Config(batch_size=8), "lr_all_half:steps32", -2.0)


def test_a_cell_that_trains_the_network_from_a_head_only_baseline_gets_the_profiles_two_phases():
    """A head-only baseline spends the 3 + 9 epochs on the head (12 + 0); fastai's fine_tune made
    from it must unfreeze for 9, not train the head alone for 12 (seen in the 128 px ladder)."""
    import dataclasses

    from finetune_advisor.bench import custom_profile, expand_grid
    from finetune_advisor.config import Config

    prof = custom_profile("cpu", image_size=128, head_epochs=3, unfrozen_epochs=9)
    base = prof.apply(Config(profile="cpu", fine_tune="none", lr=1e-3, lr_finetune=1e-4))
    assert (base.head_epochs, base.unfrozen_epochs) == (12, 0)
    whole = dataclasses.replace(base, fine_tune="all", lr=3e-3, lr_finetune=1.5e-3)
    specs = expand_grid({("d", 1.0): base}, seeds=[0], grid={}, anchors=("fastai_fine_tune",),
                        extra_anchors=lambda *a: {"whole": whole}, profile=prof)
    epochs = {s.label: (s.config.fine_tune, s.config.head_epochs, s.config.unfrozen_epochs) for s in specs}
    assert epochs == {"baseline": ("none", 12, 0), "anchor:fastai_fine_tune": ("all", 3, 9),
                      "anchor:whole": ("all", 3, 9)}
    unfixed = expand_grid({("d", 1.0): base}, seeds=[0], grid={}, anchors=("fastai_fine_tune",))
    assert unfixed[1].config.unfrozen_epochs == 0          # without the profile: as built (the old defect)
