"""The HTML page: self-contained (no external URL, data: images only), every section, and a real
headless-browser render."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from finetune_advisor.config import DECISION_FIELDS
from finetune_advisor.report import THUMBS_PER_CLASS


def test_html_is_self_contained_with_every_section(page, assert_self_contained):
    p = assert_self_contained(page)
    assert [r[0] for r in p.config_rows] == list(DECISION_FIELDS)
    assert all(len(r) == 4 and r[2] for r in p.config_rows)  # value, reason, default column
    # sample grid: 3 classes x 4 thumbnails + 4 plots (classes, resolution, similarity, LR finder)
    assert sum(s.startswith("data:image/jpeg") for s in p.img_src) == 3 * THUMBS_PER_CLASS
    assert sum(s.startswith("data:image/png") for s in p.img_src) == 4


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


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (apt-get install -y chromium) -- "
                                                "the headless-browser render test is skipped")
def test_the_calibrations_regret_plot_decodes_in_headless_chromium(made, tmp_path):
    """Issue 27: the regret plot (each calibration dataset's regret against log10 lr, with the
    advice, its band, the finder's pick and fastai's 2e-3) in a real browser, like the other figures."""
    import dataclasses
    import json
    import re

    from finetune_advisor.heuristics import recommend_config
    from finetune_advisor.heuristics.policies import CalibratedRule
    from finetune_advisor.measurements import RateBand
    from finetune_advisor.report import build_report, render_html

    ds, rec = made
    curves = {d: {"arm": "all_half", "log10_lr": [-3.5, -3.0, -2.5, -2.0, -1.5], "regret": r}
              for d, r in {"a": [0.2, 0.05, 0.0, 0.02, 0.3], "b": [0.3, 0.1, 0.01, 0.0, 0.1]}.items()}
    band = RateBand(lr_low=1e-3, lr_high=1e-2, n_within=2, n_datasets=2, cost_x3_mean=0.01, cost_x3_worst=0.02,
                    cost_x10_mean=0.05, cost_x10_worst=0.1, finder_lr=rec.config.measurements.lr_find)
    m = rec.config.measurements.replace(rate_band=band, calibration={"regret_curves": curves})
    cfg = recommend_config(rec.profile, lr_find=m.lr_find, policy="calibrated", rule=CalibratedRule("all_half", -2.5),
                           evidence="e", backbone="resnet18", backbone_reason="set by user", measurements=m)
    html = render_html(build_report(dataclasses.replace(rec, config=cfg)))
    assert 'alt="calibration regret against learning rate"' in html
    probe = ("<script>addEventListener('load', () => document.body.setAttribute('data-images', JSON.stringify("
             "[...document.images].map(i => [i.alt, i.naturalWidth, i.naturalHeight]))))</script>")
    page_path = tmp_path / "calibrated.html"
    page_path.write_text(html.replace("</body>", probe + "</body>"))
    proc = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'profile-dom'}",
                           "--virtual-time-budget=5000", "--dump-dom", page_path.resolve().as_uri()],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r'data-images="([^"]*)"', proc.stdout)
    assert found, proc.stdout[-500:] + proc.stderr[-500:]
    images = json.loads(found.group(1).replace("&quot;", '"'))
    regret = [img for img in images if img[0] == "calibration regret against learning rate"]
    assert len(regret) == 1 and regret[0][1] > 200 and regret[0][2] > 100      # decoded, not a broken image
    assert all(w > 0 for _, w, _ in images)                                      # and every other figure too
    shot, page_lines = _render_in_chromium(page_path, tmp_path, "calibrated")
    assert shot.is_file() and shot.stat().st_size > 50_000 and page_lines == [], page_lines
