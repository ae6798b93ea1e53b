"""Fixtures shared by the report tests (as fixtures: test files do not import each other).

One real recommendation is made per session (random-init ResNet-18, a tiny similarity
reference built from another generated folder); the LR range test is replaced by a synthetic
curve through the real ``suggest_lr`` (the real test takes minutes on 2 CPU cores).
"""
from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor.report import SECTION_IDS, Report, build_report, render_html
from finetune_advisor.testing import make_folder_dataset

URL = re.compile(r"(?i)\b(?:https?|ftp|wss?)://|//[a-z0-9-]+\.[a-z]{2,}")


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


@pytest.fixture(scope="session")
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
        measurements={**rec.config.measurements.to_dict(), "lr_finder": lr.summary().to_dict()})
    return ds, dataclasses.replace(rec, config=config, lr_finder=lr)


@pytest.fixture(scope="session")
def report(made) -> Report:
    return build_report(made[1])


@pytest.fixture(scope="session")
def page(report) -> str:
    return render_html(report)


@pytest.fixture(scope="session")
def saved_config(made, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(made[1].config.to_json())
    return path


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


@pytest.fixture(scope="session")
def assert_self_contained():
    """``assert_self_contained(html_text) -> parsed page``: every section, data: images only,
    no external URL, script or stylesheet link."""
    return _assert_self_contained


@pytest.fixture(scope="session")
def external_url() -> re.Pattern:
    """Matches a URL that would make a page load something from elsewhere."""
    return URL
