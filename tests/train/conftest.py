"""The one end-to-end training run with exports that several train tests read."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, tiny, single_ds, backbone):
    """``(TrainResult, out_dir)`` of a 1+1-epoch single-label run on the tiny images."""
    from finetune_advisor.train import train
    out = tmp_path_factory.mktemp("run") / "out"
    cfg = tiny.config(beta2=0.95, weight_decay=0.02, dropout=(0.3, 0.1))
    return train(cfg, single_ds, out_dir=out, backbone=backbone, seed=1, progress=False), out
