"""Markdown and JSON renderings, and writing a report to disk."""
from __future__ import annotations

import json
import re

import pytest

from finetune_advisor.config import DECISION_FIELDS, Config
from finetune_advisor.report import SECTION_IDS, ReportInputError, render_markdown, write_report


def test_markdown_has_the_same_sections(report, tmp_path, external_url):
    text = render_markdown(report)
    for s in report.sections:
        assert f'<a id="{s.id}"></a>' in text and f"## {s.title}" in text
    assert text.index('id="config"') < text.index('id="warnings"')
    assert not external_url.search(text)
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


def test_markdown_escapes_dataset_names_so_they_cannot_inject_html_or_break_a_table():
    from finetune_advisor.report import Report, Section, Table
    from finetune_advisor.report.model import Figure, Gallery

    evil = "<script>alert(1)</script>|x`y`"
    thumb = Figure("t.jpg", b"\xff\xd8", "image/jpeg", alt=f"{evil}: 1.jpg")
    report = Report(title=f"Fine-tuning report: {evil}", dataset=f"/data/{evil}", created="now", version="0",
                    summary={"dataset": "3 images, 2 classes"}, sections=[Section(
                        "profile", "Dataset profile", notes=[f"Run `finetune-advisor train` on {evil}."],
                        facts={"folder": f"/data/{evil}"}, galleries=[Gallery(f"{evil} (3)", [thumb])],
                        tables=[Table(["class", "images"], [[evil, 3], ["b", 1]], caption=evil)],
                        lists={"Warnings": [f"class {evil} has 1 image"]})])
    md = render_markdown(report)
    assert "<script" not in md and "</script" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|x\\`y\\`" in md
    assert "`finetune-advisor train`" in md            # the report's own code spans stay code
    cell_borders = re.compile(r"(?<!\\)\|")
    for line in md.splitlines():                       # every table row keeps its columns
        if line.startswith("| class |") or line.startswith(("| &lt;", "| b |")):
            assert len(cell_borders.findall(line)) == 3, line
