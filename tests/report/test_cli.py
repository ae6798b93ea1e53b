"""The ``report`` CLI command and :func:`load_recommendation` (a saved Config plus the dataset)."""
from __future__ import annotations

import json

import pytest

from finetune_advisor.cli import main
from finetune_advisor.exceptions import ConfigError
from finetune_advisor.report import SECTION_IDS, load_recommendation


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_cli_report_from_a_saved_config(made, saved_config, tmp_path, capsys, fmt, assert_self_contained):
    ds = made[0]
    out = tmp_path / f"report.{fmt}"
    assert main(["report", str(ds), "--config", str(saved_config), "--out", str(out), "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = out.read_text()
    if fmt == "html":
        assert_self_contained(text)
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


def test_cli_report_recommends_when_no_config_is_given(made, tmp_path, assert_self_contained):
    out = tmp_path / "r.html"
    assert main(["report", str(made[0]), "--backbone", "efficientnet_lite0", "--no-similarity", "--no-lr-finder",
                 "--out", str(out), "-q"]) == 0
    assert_self_contained(out.read_text())


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
