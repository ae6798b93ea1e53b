"""The sections built from a recommendation: measurements, config table, unmeasured inputs."""
from __future__ import annotations

import io

import pytest

from finetune_advisor.config import Config
from finetune_advisor.report import (MAX_GALLERY_CLASSES, THUMBS_PER_CLASS, build_report, render_html)
from finetune_advisor.testing import make_folder_dataset


def _jpeg_size(data: bytes) -> tuple[int, int]:
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def test_sections_hold_the_measurements(made, report):
    _, rec = made
    sim = report.section("similarity")
    assert sim.available and sim.figures and sim.tables
    assert sim.facts["similarity"] == f"{rec.similarity.similarity:.3f}"
    assert "raw EMD" in sim.facts and "95% interval" in sim.facts
    assert [row[0] for row in sim.tables[0].rows] == list(rec.similarity.matches)
    lr = report.section("lr-finder")
    assert lr.available and lr.figures and lr.data["lr_finder"]["lr"] == rec.lr_finder.lr
    if rec.similarity.far:  # the ÷10 rule shows in the facts
        assert "÷10" in lr.facts["recommended head LR"]
    prof = report.section("profile")
    assert [g.label for g in prof.galleries] == ["cat (8)", "dog (8)", "fish (8)"]
    assert all(len(g.images) == THUMBS_PER_CLASS for g in prof.galleries)
    assert all(max(_jpeg_size(im.data)) <= 64 for g in prof.galleries for im in g.images)
    assert "imbalance SD" in prof.facts
    assert not report.section("training").available and not report.section("benchmark").available
    lists = report.section("warnings").lists
    assert list(lists) == ["Warnings", "Next steps"]
    assert list(lists["Warnings"]) == list(made[1].config.warnings)
    assert any("Few images per class" in b for b in lists["Next steps"])
    assert any("random weights" in b for b in lists["Next steps"])


def test_config_table_shows_study_defaults_only_where_different(report):
    table = report.section("config").tables[0]
    defaults = Config.study_defaults()
    rows = {r[0]: r for r in table.rows}
    assert rows["weight_decay"][3] == ""            # same as the study
    assert rows["batch_size"][3] == str(defaults.batch_size)
    assert {table.rows[i][0] for i in table.highlight} == {r[0] for r in table.rows if r[3]}


def test_unmeasured_many_class_recommendation(tmp_path, assert_self_contained):
    """No similarity, no LR finder, 15 classes: sections still present, the gallery capped."""
    from finetune_advisor import data, heuristics
    from finetune_advisor.recommend import Recommendation

    root = make_folder_dataset(tmp_path / "many", counts={f"c{i:02d}": 2 + i % 4 for i in range(15)}, size=16)
    (root / "c00" / "broken.png").write_bytes(b"not a png")
    ds = data.read_dataset(root)
    prof = data.profile_dataset(ds)
    rec = Recommendation(config=heuristics.recommend_config(prof), profile=prof, dataset=ds)
    rep = build_report(rec)
    assert not rep.section("similarity").available and not rep.section("lr-finder").available
    gal = rep.section("profile").galleries
    assert len(gal) == MAX_GALLERY_CLASSES and all(len(g.images) <= THUMBS_PER_CLASS for g in gal)
    skipped = rep.section("profile").tables[0]
    assert skipped.rows[0][:2] == ["unreadable image", 1] and "broken.png" in skipped.rows[0][2]
    assert_self_contained(render_html(rep))


def test_lr_pick_at_the_sweep_edge_is_in_the_report_warnings():
    from finetune_advisor.heuristics import make_profile, recommend_config
    from finetune_advisor.measurements import LRFinderResult, Measurements
    from finetune_advisor.report.sections import warnings_section
    prof = make_profile({"a": 40, "b": 5})
    finder = LRFinderResult(lr=1.4e-7, index=0, n_steps=200, fastai_valley=7.6e-3, method="cached")
    cfg = recommend_config(prof, lr_find=finder.lr, similarity=0.5, measurements=Measurements(lr_finder=finder))
    section = warnings_section(prof, cfg, None, finder, None, run_given=False, run_beats_baseline=None)
    assert any("at the start of its sweep" in w for w in section.lists["Warnings"])
    assert cfg.lr == pytest.approx(1.4e-8)


def test_a_calibrated_config_gets_the_calibrations_regret_plot():
    import math

    from finetune_advisor.heuristics import make_profile, recommend_config
    from finetune_advisor.measurements import LRFinderResult, Measurements, RateBand
    from finetune_advisor.report.figures import regret_curves_info
    from finetune_advisor.report.sections import lr_section
    from finetune_advisor.heuristics.policies import CalibratedRule

    curves = {"a": {"arm": "all_half", "log10_lr": [-3.0, -2.5, -2.0], "regret": [0.05, 0.0, 0.02]},
              "b": {"arm": "all_half", "log10_lr": [-3.0, -2.5, -2.0], "regret": [0.1, 0.01, 0.0]}}
    band = RateBand(lr_low=1e-3, lr_high=1e-2, n_within=2, n_datasets=2, cost_x3_mean=0.01, cost_x3_worst=0.02,
                    cost_x10_mean=0.05, cost_x10_worst=0.1, finder_lr=4e-4)
    finder = LRFinderResult(lr=4e-4, index=50, n_steps=100, fastai_valley=1e-4, method="cached")
    cfg = recommend_config(make_profile({"a": 40, "b": 40}), lr_find=finder.lr, policy="calibrated",
                           rule=CalibratedRule("all_half", -2.5), evidence="e",
                           measurements=Measurements(lr_finder=finder, rate_band=band,
                                                     calibration={"regret_curves": curves}))
    info = regret_curves_info(cfg.measurements.calibration, cfg)
    assert info.curves["b"] == ([-3.0, -2.5, -2.0], [10.0, 1.0, 0.0])         # points
    assert info.advice == pytest.approx(math.log10(cfg.lr)) and info.band == pytest.approx((-3.0, -2.0))
    assert info.finder == pytest.approx(math.log10(4e-4)) and info.fastai == pytest.approx(math.log10(2e-3))
    section = lr_section(finder, cfg, False)
    assert [f.name for f in section.figures] == ["regret_curves.png"]       # no curve stored: no LR plot
    assert section.figures[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    # a calibration file written before the curves: no plot, nothing invented
    old = recommend_config(make_profile({"a": 40, "b": 40}), policy="calibrated", rule=CalibratedRule("all_half", -2.5),
                           evidence="e", measurements=Measurements(calibration={"backbone": "x"}))
    assert regret_curves_info(old.measurements.calibration, old) is None
