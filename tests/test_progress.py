"""Progress (finetune_advisor._progress): bars on a terminal, a quiet line every few seconds in a
file or pipe, and the long stages of recommend and train never silent and never flooding a log."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

from finetune_advisor import _progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_ticker_off_a_terminal_prints_lines_and_no_redraws():
    out = io.StringIO()
    with _progress.Ticker(5, "steps", every_s=0.0, stream=out) as t:
        for _ in range(5):
            t.update(1, note="epoch 1/1")
        t.line("steps: epoch 1/1: loss 0.5")
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("steps: 1/5, epoch 1/1 (") and lines[4].startswith("steps: 5/5")
    assert lines[5] == "steps: epoch 1/1: loss 0.5"


def test_ticker_on_a_terminal_redraws_one_line():
    out = _Tty()
    with _progress.Ticker(3, "steps", every_s=0.0, stream=out) as t:
        t.update(1)
        t.update(2)
    text = out.getvalue()
    assert text.count("\r") >= 2 and "\n" not in text      # in place, then cleared


def test_stages_written_to_a_file_show_progress_without_a_redraw_flood(tmp_path):
    """recommend (embedding for the feature cache, the cached LR range test) and train, with
    stderr redirected to a file: progress lines every (here) 0.2 s, no carriage-return redraws."""
    script = textwrap.dedent(f"""
        import dataclasses
        from finetune_advisor import _progress
        from finetune_advisor.recommend import advise
        from finetune_advisor.testing import make_folder_dataset
        from finetune_advisor.train import train
        _progress.LINE_EVERY_S = 0.2
        root = make_folder_dataset({str(tmp_path / 'd')!r}, counts={{"a": 12, "b": 12}}, size=(24, 24))
        rec = advise(root, backbone="resnet18", pretrained=False, similarity=False, progress=True)
        cfg = dataclasses.replace(rec.config, image_size=32, batch_size=4, head_epochs=2, unfrozen_epochs=0,
                                  fine_tune="none")
        train(cfg, rec.dataset, progress=True, backbone=rec.backbone)
    """)
    log = tmp_path / "stderr.log"
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-c", script], stderr=fh, stdout=subprocess.PIPE, timeout=600,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    text = log.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert "\r" not in text, "a progress bar redrew into the file"
    lines = text.splitlines()
    assert any(l.startswith("LR range test (cached features): 1/3") for l in lines), text[-2000:]
    assert any(l.startswith("training (head): epoch 2/2:") for l in lines), text[-2000:]
    assert len(lines) < 400, len(lines)      # a line per 0.2 s at most, not one per batch redraw
