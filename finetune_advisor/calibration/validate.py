"""Leave-one-dataset-out validation of the calibrated policy (issue 14, item 5).

For each dataset D of a calibration sweep (the datasets :func:`~.sweep.calibrate` fits on; never
a smoke test), the calibrated policy is fitted on the *other* datasets (``calibrate(...,
exclude=[D, ...])``: the same families, chosen by their own leave-one-out), and the Config that
fit predicts for D is trained on D at fresh seeds beside four others, in the sweep's protocol
(its bench profile: image size, epochs, image cap per class; fraction 1.0):

========================  ===============================================================
role (trial label)        config
========================  ===============================================================
``calibrated``            the calibrated policy with the rule fitted without D, on D's
(``anchor:calibrated``)   measurements (:func:`calibrated_config`)
``fastai_fine_tune``      bench's anchor: fastai's stock ``fine_tune``
``fastai_lr_find``        bench's anchor: what a fastai user does: ``learn.lr_find()`` on the
                          frozen learner, then ``fine_tune`` at its valley (new studies)
``lr_find_valley``        bench's anchor: the baseline at the cached-feature test's valley
``study`` (``baseline``)  bench's baseline: the study policy, advised *with* the LR finder
``oracle``                the sweep's best (arm, lr) cell for D, mean over its seeds
(``anchor:oracle``)       (:func:`~finetune_advisor.bench.grid.calibration_config`)
========================  ===============================================================

The trials live in a new bench study (the *LOO study*: SQLite or PostgreSQL, resumable, joined
by ``finetune-advisor bench run --worker``), under bench's keys (``D|1|anchor:calibrated|100``),
so preparing it again enqueues nothing new. Besides bench's user attrs the LOO study stores
(this module writes them; :mod:`.loo_table` reads them back):

- ``validation``: the plan: ``kind``, ``calibration_studies``, ``datasets`` validated, ``seeds``,
  ``sweep_seeds``, ``oracles`` (D -> best cell, score, seeds), ``not_validated`` (D -> why),
  ``full_calibration`` (the rule fitted on every dataset, for reference), ``created``;
- ``loo:<D>``: ``{"calibration": <the calibration fitted without D, Calibration.to_dict()>}``.

Once a LOO study is planned its datasets and fits are fixed: a sweep that has since finished
more datasets needs a new LOO study to validate them.
"""
from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..bench import REFERENCE_DATASETS, BenchDataset, open_study, resolve_datasets
from ..bench.grid import CALIBRATION_PREFIX, BenchProfile, TrialSpec, calibration_config
from ..bench.records import read_baselines, read_datasets
from ..bench.storage import BenchStudy, normalise_storage_url
from ..bench.worker import check_seeds, prepare_study
from ..config import Config
from ..exceptions import CalibrationError, ConfigError
from .loo_spec import BENCH_ANCHORS, KIND, LOO_PREFIX, ROLES, VALIDATION_ATTR, calibrated_config  # noqa: F401
from .model import Calibration
from .sweep import calibrate

__all__ = ["ROLES", "BENCH_ANCHORS", "VALIDATION_ATTR", "LOO_PREFIX", "calibrated_config", "oracle_config",
           "prepare_validation", "run_validation"]

log = logging.getLogger(__name__)

DEFAULT_SEEDS = 3
DEFAULT_SEED_OFFSET = 100       # the sweep's seeds start at 0: the validation's never coincide with them


def oracle_config(baseline: Config, oracle: Mapping[str, Any]) -> Config:
    """The sweep's best cell ``{"arm", "log10_lr"}`` for the dataset, on its baseline.

    >>> base = Config(lr=1e-3, lr_finetune=1e-4, head_epochs=2, unfrozen_epochs=2)
    >>> c = oracle_config(base, {"arm": "all_tenth", "log10_lr": -2.0})
    >>> c.lr, c.lr_finetune, c.fine_tune
    (0.01, 0.001, 'all')
    """
    return calibration_config(baseline, CALIBRATION_PREFIX + str(oracle["arm"]), float(oracle["log10_lr"]))


# --- the calibration sweep, read ----------------------------------------------------------------

def _sweep(names: Sequence[str], storage: str | None) -> dict[str, Any]:
    """What the validation takes from the sweep(s): bench profile, seeds, dataset paths, the
    baselines' backbone spec(s)."""
    profiles, seeds, paths, backbones = [], set(), {}, {}
    for name in names:
        study = open_study(name, storage, create=False)
        attrs = study.user_attrs
        settings = attrs.get("settings") or {}
        if settings.get("profile"):
            profiles.append(settings["profile"])
        seeds.update(int(s) for s in settings.get("seeds", ()))
        for ds, where in read_datasets(study).items():
            paths.setdefault(ds, where)
        for ds, baseline in read_baselines(study).items():
            backbones.setdefault(ds, baseline.backbone)
    if not profiles or any(p != profiles[0] for p in profiles):
        raise ConfigError(f"the calibration studies {list(names)} do not share one bench profile",
                          hint="validate the sweeps of one protocol at a time")
    return {"profile": profiles[0], "seeds": sorted(seeds), "datasets": paths, "backbones": backbones,
            "all_datasets": sorted(paths)}


def _bench_datasets(names: Sequence[str], known: Mapping[str, BenchDataset]) -> list[BenchDataset]:
    """The validated datasets where the sweep read them (else the registry's resolution)."""
    out = []
    for name in names:
        where = known.get(name)
        if where is not None and where.path.exists():
            out.append(where)
        elif name in REFERENCE_DATASETS:
            out.extend(resolve_datasets([name]))
        else:
            out.append(BenchDataset(name, None, where and where.multi_label, "missing",
                                    f"not found at {where and where.path} (where the calibration sweep read it)"))
    return out


def _plan(study: BenchStudy, names: Sequence[str], storage: str | None, sweep: Mapping[str, Any],
          seeds: list[int], backbone: str | None, complete_only: bool) -> dict[str, Any]:
    """The stored plan, checked against this call; made (one full fit) when there is none."""
    plan = study.user_attrs.get(VALIDATION_ATTR)
    if plan is not None:
        if plan.get("kind") != KIND or list(plan.get("calibration_studies", ())) != list(names):
            raise ConfigError(f"the study {study.study_name!r} validates {plan.get('calibration_studies')}, "
                              f"not {list(names)}", hint="use another --validate study name")
        if list(plan["seeds"]) != seeds:
            raise ConfigError(f"the study {study.study_name!r} was planned with seeds {plan['seeds']}, not {seeds}",
                              hint=f"rerun with --seeds {len(plan['seeds'])} --seed-offset {plan['seeds'][0]}, "
                                   f"or use another --validate study name")
        return plan
    clash = sorted(set(seeds) & set(sweep["seeds"]))
    if clash:
        raise ConfigError(f"validation seeds {seeds} include the sweep's seed(s) {clash}: the trials would not "
                          f"be fresh", hint="raise --seed-offset (Python: seed_offset)")
    full = calibrate(names, storage, backbone=backbone, complete_only=complete_only)
    p = full.provenance
    plan = {"kind": KIND, "calibration_studies": list(names), "seeds": seeds, "sweep_seeds": sweep["seeds"],
            "datasets": list(p["datasets"]), "not_validated": dict(p.get("excluded") or {}),
            "oracles": {d: {**row["best_cell"], "score": row["best_score"], "n_seeds": row.get("n_seeds")}
                        for d, row in (p.get("per_dataset") or {}).items()},
            "full_calibration": {"family": full.family, "rule": full.rule.to_dict(), "backbone": full.backbone,
                                 "profile": full.profile, "datasets": list(p["datasets"])},
            "roles": dict(ROLES), "backbone": backbone,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    study.set_user_attr(VALIDATION_ATTR, plan)
    return plan


def _fit_without_each(study: BenchStudy, names: Sequence[str], storage: str | None, plan: Mapping[str, Any],
                      sweep: Mapping[str, Any], complete_only: bool) -> dict[str, Calibration]:
    """Per validated dataset, the calibration fitted without it (made once, then read back)."""
    attrs = study.user_attrs
    others = [d for d in sweep["all_datasets"] if d not in plan["datasets"]]   # keep the plan's datasets only
    out = {}
    for d in plan["datasets"]:
        stored = attrs.get(LOO_PREFIX + d)
        if stored is None:
            log.info("validation: fitting the calibration without %s", d)
            cal = calibrate(names, storage, backbone=plan.get("backbone"), complete_only=complete_only,
                            exclude=[d, *others], min_datasets=2)
            stored = {"calibration": cal.to_dict()}
            study.set_user_attr(LOO_PREFIX + d, stored)
        cal = Calibration.from_dict(stored["calibration"], source=f"{study.study_name} {LOO_PREFIX}{d}")
        if d in cal.provenance.get("datasets", ()):    # the one property the validation rests on
            raise CalibrationError(f"the calibration validated on {d!r} was fitted on it")
        out[d] = cal
    return out


def prepare_validation(study: BenchStudy, calibration_studies: Sequence[str], storage: str | None = None, *,
                       seeds: int = DEFAULT_SEEDS, seed_offset: int = DEFAULT_SEED_OFFSET,
                       backbone: str | None = None, complete_only: bool = True, advise_fn: Callable | None = None,
                       advise_options: Mapping[str, Any] | None = None,
                       reuse_from: BenchStudy | None = None) -> list[TrialSpec]:
    """Plan the LOO study (once), fit without each dataset (once each), advise the baselines and
    enqueue every missing trial; idempotent like :func:`~finetune_advisor.bench.prepare_study`.

    ``seeds`` trials per config at seeds ``seed_offset, seed_offset + 1, ...`` (none of the
    sweep's). The baselines are bench's (the study policy, with the LR finder, the sweep's
    backbone), unless ``advise_options`` say otherwise; ``advise_fn`` replaces the advice (tests).
    ``backbone`` and ``complete_only`` go to :func:`~.sweep.calibrate`. ``reuse_from``, an
    earlier LOO study of the same protocol (e.g. before the sweep had its second seed), lends
    its baselines and every finished trial whose key and training config are unchanged: only
    the configs the refit moved (the calibrated rule, the oracle cell) are trained again.
    Returns the trial list.

    Examples
    --------
    >>> study = open_study("loo", "sqlite:///loo.db")                       # doctest: +SKIP
    >>> specs = prepare_validation(study, ["calib"], "sqlite:///calib.db")  # doctest: +SKIP
    >>> sorted({s.label for s in specs})                                    # doctest: +SKIP
    ['anchor:calibrated', 'anchor:fastai_fine_tune', 'anchor:fastai_lr_find', 'anchor:lr_find_valley',
     'anchor:oracle', 'baseline']
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1 or \
            isinstance(seed_offset, bool) or not isinstance(seed_offset, int) or seed_offset < 0:
        raise ConfigError(f"seeds must be an integer >= 1 and seed_offset one >= 0, got {seeds!r} and "
                          f"{seed_offset!r}", hint="e.g. --seeds 3 --seed-offset 100")
    names = list(calibration_studies)
    seed_list = check_seeds(range(seed_offset, seed_offset + seeds))
    sweep = _sweep(names, storage)
    plan = _plan(study, names, storage, sweep, seed_list, backbone, complete_only)
    calibrations = _fit_without_each(study, names, storage, plan, sweep, complete_only)
    specs = [b for b in sweep["backbones"].values()]
    options = {"policy": "study", "similarity": True, "lr_finder": True}
    if len(set(specs)) == 1:
        options["backbone"] = specs[0]
    options.update(advise_options or {})

    def extra(name: str, fraction: float, baseline: Config) -> dict[str, Config | None]:
        oracle = plan["oracles"].get(name)
        return {"calibrated": calibrated_config(baseline, calibrations[name]),
                "oracle": None if oracle is None else oracle_config(baseline, oracle)}

    anchors = (study.user_attrs.get("settings") or {}).get("anchors") or BENCH_ANCHORS   # resumed: its own
    return prepare_study(study, _bench_datasets(plan["datasets"], sweep["datasets"]), fractions=[1.0],
                         seeds=seed_list, profile=BenchProfile(**sweep["profile"]), grid={}, anchors=anchors,
                         advise_fn=advise_fn, advise_options=options, extra_anchors=extra, reuse_from=reuse_from)


def run_validation(calibration_studies: Sequence[str], storage: str | None = None, loo_study: str = "loo", *,
                   loo_storage: str | None = None, seeds: int = DEFAULT_SEEDS, seed_offset: int = DEFAULT_SEED_OFFSET,
                   backbone: str | None = None, complete_only: bool = True, run_trial_fn: Callable | None = None,
                   advise_fn: Callable | None = None, advise_options: Mapping[str, Any] | None = None,
                   n_trials: int | None = None, out_dir: str | os.PathLike | None = None,
                   heartbeat_interval: int = 60, progress: bool = True, write: bool = True,
                   reuse_from: str | None = None, reuse_storage: str | None = None) -> dict[str, Any]:
    """Prepare (or resume) the LOO study ``loo_study``, work its queue (``n_trials`` at most; 0:
    only prepare), and write bench's outputs and the validation table to ``out_dir`` (default
    ``bench/<loo_study>``; the study's SQLite file too, unless ``loo_storage`` is given).
    Returns ``study``, ``ran``, ``status``, ``table`` (a :class:`~.loo_table.ValidationTable`)
    and ``files``. ``reuse_from`` names an earlier LOO study (in ``reuse_storage``, default
    ``loo_storage``) whose unchanged trials are copied, not retrained (:func:`prepare_validation`).
    Other machines join with ``finetune-advisor bench run --worker --study
    <loo_study> --storage <loo_storage>``.

    Examples
    --------
    >>> out = run_validation(["cpu-r50-calib-v1"], "sqlite:///calib.db", "cpu-r50-loo-v1")  # doctest: +SKIP
    >>> print(out["table"].markdown())                                                     # doctest: +SKIP
    """
    from ..bench import run_worker, study_status, write_outputs
    from .loo_table import validation_table, write_table

    names = list(calibration_studies)
    out = Path(out_dir) if out_dir else Path("bench") / loo_study
    if write:       # first: a --loo-storage file may live in it (benchmarks/calibration_loo.py puts it there)
        out.mkdir(parents=True, exist_ok=True)
    study = open_study(loo_study, loo_storage, out_dir=out, heartbeat_interval=heartbeat_interval)
    if loo_study in names and storage is not None and normalise_storage_url(storage) == study.url:
        raise ConfigError(f"the validation study {loo_study!r} is one of the calibration studies",
                          hint="name a new study for the validation (--validate NAME)")
    source = None
    if reuse_from is not None:
        source = open_study(reuse_from, reuse_storage or loo_storage, create=False)
        if source.url == study.url and source.study_name == study.study_name:
            raise ConfigError(f"the validation study {loo_study!r} cannot reuse its own trials",
                              hint="name the earlier validation study (--reuse-from OLD)")
    prepare_validation(study, names, storage, seeds=seeds, seed_offset=seed_offset, backbone=backbone,
                       complete_only=complete_only, advise_fn=advise_fn, advise_options=advise_options,
                       reuse_from=source)
    ran = run_worker(study, run_trial_fn=run_trial_fn, n_trials=n_trials, progress=progress) \
        if n_trials is None or n_trials > 0 else 0
    table = validation_table(study)
    files = {**write_outputs(study, out), **write_table(table, out)} if write else {}
    return {"study": study, "ran": ran, "status": study_status(study), "table": table, "files": files}
