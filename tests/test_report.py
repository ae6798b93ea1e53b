"""The report: sections, self-containment (no external URL, data: images only), Markdown and
JSON renderings, the ``report`` CLI command, missing inputs, and a real headless-browser render.

One real recommendation is made per module (random-init ResNet-18, a tiny similarity
reference built from another generated folder); the LR range test is replaced by a synthetic
curve through the real ``suggest_lr`` (the real test takes minutes on 2 CPU cores).
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor.cli import main
from finetune_advisor.config import DECISION_FIELDS, Config
from finetune_advisor.exceptions import ConfigError, FinetuneAdvisorError
from finetune_advisor.report import (
    MAX_GALLERY_CLASSES, REFERENCE_DATASETS, SECTION_IDS, THUMBS_PER_CLASS, Report, ReportInputError,
    build_report, load_recommendation, render_html, render_markdown, write_report)
from finetune_advisor.testing import make_folder_dataset

URL = re.compile(r"(?i)\b(?:https?|ftp|wss?)://|//[a-z0-9-]+\.[a-z]{2,}")


# --- fixtures ----------------------------------------------------------------------------

def _synthetic_lr_result():
    """An LRFinderResult from the real pure suggestion on a noisy U-shaped curve."""
    from finetune_advisor.lr_finder import LRFinderResult, suggest_lr

    lrs = np.geomspace(1e-7, 10, 100)
    x = np.log10(lrs)
    rng = np.random.default_rng(0)
    losses = 1.1 - 0.8 / (1 + np.exp(-(x + 3) * 2.5)) + 0.9 * np.exp(3 * (x - 0.2)) + rng.normal(0, 0.04, x.size)
    s = suggest_lr(lrs, losses)
    return LRFinderResult(lr=s.lr, lrs=tuple(lrs.tolist()), losses_raw=tuple(losses.tolist()),
                          losses_smooth=tuple(float(v) for v in s.smoothed), index=s.index,
                          fastai_valley=float(s.lr) * 2, fastai_steep=float(s.lr) / 5, loss_kind="train",
                          n_steps=100, diverged=bool(s.diverged))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(dataset path, Recommendation) with a real similarity measurement."""
    from finetune_advisor import heuristics
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.recommend import advise
    from finetune_advisor.similarity import build_reference

    tmp = tmp_path_factory.mktemp("report")
    ds = make_folder_dataset(tmp / "ds", counts={"cat": 8, "dog": 8, "fish": 8}, size=32)
    ref_dir = make_folder_dataset(tmp / "refds", counts={"n001": 4, "n002": 4, "n003": 4, "n004": 4},
                                  size=32, seed=7)
    ref = build_reference(ref_dir, create_backbone("resnet18", pretrained=False), image_size=32,
                          images_per_class=4, progress=False)
    ref_path = ref.save(tmp / "ref.npz")
    rec = advise(ds, backbone="resnet18", pretrained=False, reference=ref_path, lr_finder=False,
                 bootstrap=20, progress=False)
    assert rec.similarity is not None
    lr = _synthetic_lr_result()
    sim = rec.similarity
    config = heuristics.recommend_config(
        rec.profile, similarity=sim.similarity, far=sim.far, threshold=sim.threshold, lr_find=lr.lr,
        backbone="resnet18", backbone_reason="set by user",
        measurements={**rec.config.measurements, "lr_finder": {k: v for k, v in lr.to_dict().items()
                                                               if k not in ("lrs", "losses_raw", "losses_smooth")}})
    return ds, dataclasses.replace(rec, config=config, lr_finder=lr)


@pytest.fixture(scope="module")
def report(made) -> Report:
    return build_report(made[1])


@pytest.fixture(scope="module")
def page(report) -> str:
    return render_html(report)


class _Page(HTMLParser):
    """Collects what the structural checks need."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.section_ids: list[str] = []
        self.img_src: list[str] = []
        self.attr_values: list[str] = []
        self.config_rows: list[list[str]] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.attr_values += [v or "" for _, v in attrs]
        if tag == "section":
            self.section_ids.append(a.get("id", ""))
        elif tag == "img":
            self.img_src.append(a.get("src", ""))
        elif tag == "table":
            self._table = a.get("class")
        elif tag == "tr" and self._table == "config":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.config_rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    p.close()
    return p


def _assert_self_contained(text: str) -> _Page:
    p = _parse(text)
    assert p.section_ids == list(SECTION_IDS)
    assert p.img_src and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in p.img_src)
    assert not URL.search(text), URL.search(text)
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(p.tags)
    assert "url(" not in text and "@import" not in text
    for value in p.attr_values:  # only in-page anchors and data: URIs may point anywhere
        assert not re.match(r"(?i)\s*(https?:|ftp:|file:|//|javascript:)", value), value
    return p


# --- the HTML page ------------------------------------------------------------------------

def test_html_is_self_contained_with_every_section(page):
    p = _assert_self_contained(page)
    assert [r[0] for r in p.config_rows] == list(DECISION_FIELDS)
    assert all(len(r) == 4 and r[2] for r in p.config_rows)  # value, reason, default column
    # sample grid: 3 classes x 4 thumbnails + 4 plots (classes, resolution, similarity, LR finder)
    assert sum(s.startswith("data:image/jpeg") for s in p.img_src) == 3 * THUMBS_PER_CLASS
    assert sum(s.startswith("data:image/png") for s in p.img_src) == 4


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


def _jpeg_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def test_config_table_shows_study_defaults_only_where_different(report):
    table = report.section("config").tables[0]
    defaults = Config.study_defaults()
    rows = {r[0]: r for r in table.rows}
    assert rows["weight_decay"][3] == ""            # same as the study
    assert rows["batch_size"][3] == str(defaults.batch_size)
    assert {table.rows[i][0] for i in table.highlight} == {r[0] for r in table.rows if r[3]}


def test_similarity_strip_marks_the_reference_datasets():
    assert REFERENCE_DATASETS == {"Amazon": 0.817, "Cancer": 0.604, "DOTA": 0.829, "Draw": 0.581,
                                  "Pets": 0.702, "Protein": 0.819, "X-Ray": 0.813}
    from finetune_advisor.report import _spread_labels
    xs = sorted(REFERENCE_DATASETS.values())
    pos = _spread_labels(xs, gap=0.062, lo=0.03, hi=0.97)
    assert all(b - a >= 0.062 - 1e-9 for a, b in zip(pos, pos[1:])) and 0.03 <= pos[0] and pos[-1] <= 0.97


# --- Markdown and JSON --------------------------------------------------------------------

def test_markdown_has_the_same_sections(report, tmp_path):
    text = render_markdown(report)
    for s in report.sections:
        assert f'<a id="{s.id}"></a>' in text and f"## {s.title}" in text
    assert text.index('id="config"') < text.index('id="warnings"')
    assert not URL.search(text)
    assert all(f"| {name} |" in text or f"| **{name}** |" in text for name in DECISION_FIELDS)

    out = write_report(report, tmp_path / "r.md", format="md")
    md = out.read_text()
    links = re.findall(r"\]\((r_files/[^)]+)\)", md)
    assert len(links) == len(report.figures()) and all((tmp_path / link).is_file() for link in links)
    assert "data:" not in md


def test_json_is_plain_data(report):
    data = json.loads(report.to_json())
    assert list(data["sections"]) == list(SECTION_IDS)
    config = data["sections"]["config"]["data"]["config"]
    assert Config.from_dict(config).to_dict() == config
    assert "data_uri" not in json.dumps(data)
    with_images = json.loads(report.to_json(include_images=True))
    assert with_images["sections"]["similarity"]["figures"][0]["data_uri"].startswith("data:image/png;base64,")


def test_write_report_is_atomic_and_checks_the_format(report, tmp_path):
    target = tmp_path / "r.html"
    target.write_text("old")
    write_report(report, target)
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temp file left behind
    with pytest.raises(ReportInputError, match="pdf"):
        write_report(report, tmp_path / "r.pdf", format="pdf")


# --- optional inputs: --run, --bench, missing things ---------------------------------------

def _fake_run(folder: Path, config: Config) -> Path:
    import pandas as pd
    folder.mkdir()
    pd.DataFrame({"epoch": [1, 2, 3], "phase": ["frozen", "frozen", "unfrozen"], "phase_epoch": [1, 2, 1],
                  "train_loss": [1.2, 0.9, 0.7], "valid_loss": [1.1, 0.95, 0.8], "accuracy": [0.4, 0.55, 0.62],
                  "error_rate": [0.6, 0.45, 0.38], "lr_body": [float("nan")] * 2 + [1e-4],
                  "lr_head": [1e-3, 1e-3, 1e-3], "seconds": [1.0, 1.1, 1.3]}).to_csv(folder / "history.csv",
                                                                                   index=False)
    (folder / "config.json").write_text(config.replace(head_epochs=9).to_json())
    (folder / "result.json").write_text(json.dumps({
        "final_metrics": {"valid_loss": 0.8, "accuracy": 0.62, "error_rate": 0.38},
        "baseline": {"metric": "accuracy", "value": 0.33, "prediction": "cat"}, "beats_baseline": True,
        "backbone": "resnet18", "n_train": 18, "n_valid": 6, "wall_time_s": 12.5, "notes": []}))
    return folder


def test_training_run_and_benchmark_are_embedded(made, tmp_path):
    from PIL import Image
    _, rec = made
    run = _fake_run(tmp_path / "run", rec.config)
    bench = tmp_path / "bench"
    bench.mkdir()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(bench / "heatmap.png")
    (bench / "regret.csv").write_text("dataset,config,regret\ncancer,recommended,0.01\ncancer,default,0.05\n")
    rep = build_report(rec, run_dir=run, bench=bench)
    tr = rep.section("training")
    assert tr.available and tr.figures[0].name == "curves.png"     # re-plotted from history.csv
    assert tr.facts["final accuracy"] == "0.6200" and tr.facts["beats baseline"] == "yes"
    assert any("head_epochs (9)" in n for n in tr.notes)            # the run's config differs
    assert len(tr.tables[0].rows) == 3
    b = rep.section("benchmark")
    assert b.available and b.figures[0].data == (bench / "heatmap.png").read_bytes()
    assert b.tables[0].columns == ["dataset", "config", "regret"] and len(b.tables[0].rows) == 2
    _assert_self_contained(render_html(rep))

    (run / "curves.png").write_bytes((bench / "heatmap.png").read_bytes())   # an existing curves.png wins
    (bench / "heatmap.png").unlink()
    (bench / "regret.csv").unlink()
    rep = build_report(rec, run_dir=run, bench=bench)
    assert rep.section("training").figures[0].data == (run / "curves.png").read_bytes()
    b = rep.section("benchmark")
    assert not b.available
    assert any("No heatmap.png" in n for n in b.notes) and any("No regret.csv" in n for n in b.notes)


def test_bench_regret_table_is_shown_compact_with_spreads(made, tmp_path):
    import pandas as pd
    from finetune_advisor import bench as bench_mod
    rows = [{"dataset": "cancer", "fraction": 1.0, "label": lab, "seed": seed, "metric": m + 0.01 * seed,
             "metric_name": "accuracy"}
            for seed in range(3) for lab, m in [("baseline", 0.5), ("anchor:fastai_fine_tune", 0.6)]]
    folder = tmp_path / "bench"
    folder.mkdir()
    bench_mod.regret_summary(pd.DataFrame(rows)).to_csv(folder / "regret.csv", index=False)
    b = build_report(made[1], bench=folder).section("benchmark")
    t = b.tables[0]
    assert t.columns[:7] == ["dataset", "fraction", "metric", "baseline (mean ± std)", "seeds", "best cell", "regret"]
    row = dict(zip(t.columns, t.rows[0]))
    assert row["baseline (mean ± std)"].startswith("0.51") and " ± " in row["baseline (mean ± std)"]
    assert row["best cell"] == "anchor:fastai_fine_tune" and row["seeds"] == "3"
    assert row["margin over fastai_fine_tune"].startswith("-0.1")     # paired std is 0: same offsets per seed
    assert row["margin over lr_find_valley"] == "–"
    assert b.data["regret"][0]["margin_std_over_fastai_fine_tune"] not in ("", None)   # full table kept


@pytest.mark.parametrize("kwarg", ["run_dir", "bench"])
def test_missing_run_or_bench_folder_is_a_clear_error(made, tmp_path, kwarg):
    missing = tmp_path / "nope"
    with pytest.raises(ReportInputError) as info:
        build_report(made[1], **{kwarg: missing})
    assert isinstance(info.value, FinetuneAdvisorError) and info.value.path == str(missing)
    assert str(missing) in str(info.value)


def test_run_folder_without_training_output_is_an_error(made, tmp_path):
    with pytest.raises(ReportInputError, match="no training output"):
        build_report(made[1], run_dir=tmp_path)


def test_unmeasured_many_class_recommendation(tmp_path):
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
    _assert_self_contained(render_html(rep))


# --- the CLI ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_config(made, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(made[1].config.to_json())
    return path


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_cli_report_from_a_saved_config(made, saved_config, tmp_path, capsys, fmt):
    ds = made[0]
    out = tmp_path / f"report.{fmt}"
    assert main(["report", str(ds), "--config", str(saved_config), "--out", str(out), "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = out.read_text()
    if fmt == "html":
        _assert_self_contained(text)
        assert 'section id="similarity"' in text and "raw EMD" in text   # from config.measurements
    else:
        assert all(f'<a id="{i}"></a>' in text for i in SECTION_IDS)
        assert (tmp_path / "report_files" / "similarity.png").is_file()


def test_cli_report_json(made, saved_config, capsys):
    assert main(["report", str(made[0]), "--config", str(saved_config), "--json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["sections"]) == list(SECTION_IDS)
    assert data["sections"]["similarity"]["available"] is True
    assert data["sections"]["lr-finder"]["data"]["lr_finder"]["lr"] == pytest.approx(made[1].lr_finder.lr)


def test_cli_report_recommends_when_no_config_is_given(made, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(made[0]), "--backbone", "efficientnet_lite0", "--no-similarity", "--no-lr-finder",
                 "--out", str(out), "-q"]) == 0
    _assert_self_contained(out.read_text())


@pytest.mark.parametrize("flag", ["--config", "--run", "--bench"])
def test_cli_bad_input_path_is_one_line_error(made, saved_config, tmp_path, capsys, flag):
    bad = tmp_path / "missing-input"
    args = ["report", str(made[0]), "--out", str(tmp_path / "r.html"), "-q"]
    args += [flag, str(bad)] if flag == "--config" else ["--config", str(saved_config), flag, str(bad)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_load_recommendation_rejects_a_bad_config(made, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"lr": "fast"')
    with pytest.raises(ConfigError) as info:
        load_recommendation(bad, made[0])
    assert info.value.path == str(bad)


# --- a real browser -----------------------------------------------------------------------

def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _render_in_chromium(html_path: Path, tmp: Path, name: str) -> tuple[Path, list[str]]:
    shot = tmp / f"{name}.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / ('profile-' + name)}", f"--screenshot={shot}", "--window-size=1280,2000",
           "--enable-logging=stderr", "--v=0", html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    page_lines = [line for line in (proc.stderr + proc.stdout).splitlines()
                  if ":CONSOLE" in line or html_path.name in line]
    return shot, page_lines


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (apt-get install -y chromium) -- "
                                                "the headless-browser render test is skipped")
def test_report_renders_in_headless_chromium(page, tmp_path):
    html_path = tmp_path / "report.html"
    html_path.write_text(page)
    shot, page_lines = _render_in_chromium(html_path, tmp_path, "report")
    assert shot.is_file() and shot.stat().st_size > 50_000, "screenshot missing or blank"
    assert page_lines == [], page_lines
    # the detector itself works: a page with a console error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>console.error('boom')</script>")
    _, bad_lines = _render_in_chromium(bad, tmp_path, "bad")
    assert any("boom" in line for line in bad_lines)
