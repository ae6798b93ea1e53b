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
