"""The study's sweep over the reference datasets: resumable, distributable, summarised.

For each dataset and data fraction the baseline is the recommended :class:`Config`
(computed once and cached in the study); around it, Table 1's values are varied one at a
time, plus three anchors (fastai's stock ``fine_tune``, fastai's ``lr_find`` valley, and our
recommendation without the /10 similarity rule), each repeated over seeds.

Trials live in an Optuna study (SQLite file by default; a PostgreSQL URL lets several
machines share one study). The whole trial list is enqueued once; each worker claims the next
WAITING trial (an atomic state change in the RDB storage), trains and ``tell``s. Killed
workers' trials go stale through the heartbeat and are re-queued; finished trials are never
recomputed, and no trial key ever has two COMPLETE trials.

Modules: ``datasets`` (the registry), ``grid`` (schedules, grids, anchors, the trial list),
``storage`` (:class:`BenchStudy`: the Optuna study, heartbeats, the claim lock), ``trials``
(the fraction, the baseline, the default trainer), ``worker`` (prepare, work, run),
``results`` (tables, heatmap, regret; writing and reading an output folder).
"""
# Names imported here but left out of __all__ stay importable from ``finetune_advisor.bench`` as before.
from .datasets import (REFERENCE_DATASETS, SHARED_DATA_ENV, BenchDataset, ReferenceDataset, base_name,
                       default_reference, resolve_datasets, shared_data_dir, sized_names)
from .grid import (ANCHORS, BENCH_PROFILES, CALIBRATION_LOG10_LRS, FRACTIONS, BenchProfile, TrialSpec, anchor_config,
                   calibration_config, custom_profile, expand_grid, select_anchors, select_grid, variation_config)
from .results import (RESULT_COLUMNS, BenchOutputs, CsvTable, improvement_table, plot_heatmap, read_outputs,
                      read_regret, regret_summary, results_table, write_outputs)
from .records import study_status
from .storage import CLAIM_ATTR, BenchStudy, open_study
from .trials import advise_baseline, fraction_subset, train_trial
from .worker import prepare_study, run_bench, run_worker, spawn_workers

__all__ = [
    "BenchDataset", "REFERENCE_DATASETS", "resolve_datasets", "sized_names", "base_name",
    "BenchProfile", "BENCH_PROFILES", "custom_profile", "select_grid", "select_anchors", "ANCHORS", "FRACTIONS",
    "expand_grid", "TrialSpec",
    "BenchStudy", "open_study", "prepare_study", "run_worker", "spawn_workers", "run_bench", "study_status",
    "advise_baseline", "fraction_subset", "train_trial",
    "results_table", "improvement_table", "regret_summary", "plot_heatmap", "write_outputs",
    "read_outputs", "read_regret",
]
