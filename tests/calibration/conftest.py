"""A synthetic calibration sweep shared by the calibration tests: stub advice and training whose
best rate follows a known rule of the dataset's similarity, on a real (SQLite) bench study."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Mapping, Sequence

import pytest

from finetune_advisor import bench
from finetune_advisor.config import Config


class SyntheticSweep:
    """Datasets named by ``similarity``; a trial's accuracy peaks at :meth:`best_log_lr` (the less
    similar, the larger the best rate) and whole-network training adds 0.03."""

    def __init__(self, similarity: Mapping[str, float]):
        self.similarity = dict(similarity)

    @staticmethod
    def best_log_lr(similarity: float) -> float:
        return -2.0 - 5.0 * (similarity - 0.75)

    def measurements(self, name: str, finder: bool = False) -> dict:
        sim = self.similarity[name]
        m = {"far": sim < 0.72, "n_images": 100, "images_per_class": {"median": 50.0, "min": 50, "max": 50},
             "similarity": {"similarity": sim, "emd": 1 - sim, "backbone_key": "toynet", "threshold": 0.72}}
        if finder:
            m["lr_finder"] = {"lr": 1e-3, "fastai_valley": 4e-3}
        return m

    def advise(self, dataset, fraction, profile, options=None, cache=None) -> Config:
        """A sweep baseline: the profile's schedule, no LR finder (as the real sweep ran)."""
        return profile.apply(Config(profile="cpu", lr=1e-3, lr_finetune=1e-4, backbone="toynet_spec",
                                    measurements=self.measurements(dataset.name)))

    def train(self, config, dataset, *, fraction, seed, profile, cache=None, anchor=None) -> dict:
        if anchor == "fastai_lr_find":     # the rate is measured when it trains: a valley below the best
            config = dataclasses.replace(config, lr=10 ** -3.5)
        bonus = 0.03 if config.fine_tune == "all" else 0.0
        metric = 0.9 + bonus - 0.1 * (math.log10(config.lr) - self.best_log_lr(self.similarity[dataset.name])) ** 2 \
            + 0.001 * (seed % 7)
        return {"metric": metric, "metric_name": "accuracy", "valid_loss": 1 - metric, "epochs_to_best": 2,
                "wall_time_s": 0.01}

    def run(self, url: str, folder: Path, grid: Mapping[str, Sequence[float]], *, name: str = "cal",
            anchors: Sequence[str] = ("fastai_fine_tune",), advise_fn=None, train_fn=None) -> str:
        """Prepare and run the sweep ``name`` at ``url`` (seed 0); returns ``url``."""
        study = bench.open_study(name, url)
        datasets = [bench.BenchDataset(n, Path(folder), False, "custom") for n in self.similarity]
        bench.prepare_study(study, datasets, fractions=[1.0], seeds=[0], grid=grid, anchors=anchors,
                            advise_fn=advise_fn or self.advise)
        bench.run_worker(study, run_trial_fn=train_fn or self.train, datasets=datasets, progress=False)
        return url


@pytest.fixture(scope="session")
def synthetic_sweep():
    """The :class:`SyntheticSweep` class (tests make one per set of datasets)."""
    return SyntheticSweep
