"""From bench studies to a :class:`Calibration`: read a calibration sweep (``bench run --grid
calibration``), fit every candidate rule family, choose one by leave-one-dataset-out regret, and
record the evidence (datasets, trials, residuals, the leave-one-out table, Kendall's tau).

The score a rule is judged on is accuracy for single-label datasets and macro ROC AUC for
multi-label ones (``accuracy_multi`` rewards predicting no label at all). Smoke-test datasets
(the 30-chip Planet sample) are never fitted on.
"""
from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..bench import REFERENCE_DATASETS, open_study, results_table
from ..bench.datasets import base_name, split_size
from ..bench.grid import CALIBRATION_PREFIX
from ..bench.records import read_baselines, read_datasets
from ..exceptions import ConfigError
from ..heuristics.policies import ARMS, predictor_value
from ..heuristics.schedule import split_schedule
from .expectation import expectation_fit
from .fit import FAMILY_PREDICTORS, Curves, families, fit_family, kendall_taus, leave_one_out
from .measure import measure_predictors, read_measured, with_measured
from .model import Calibration
from ..storage_url import relative_storage
from .portfolio import greedy_portfolio, leave_one_out_portfolios, rule_cell
from .sensitivity import sensitivity

if TYPE_CHECKING:
    import pandas as pd



def sweep_evidence(studies: Sequence[Any]) -> tuple["pd.DataFrame", dict[str, dict[str, float | None]], dict]:
    """Evidence rows (dataset, arm, log10_lr, seed, score), the predictors per dataset, and a
    description (backbones, profiles, trial counts) from one or more bench studies."""
    import pandas as pd

    frames, features, info = [], {}, {"studies": [], "backbones": set(), "profiles": set(), "n_trials": 0,
                                      "excluded": {}}
    for study in studies:
        settings = study.user_attrs.get("settings") or {}
        info["studies"].append(study.study_name)
        info["profiles"].add(str((settings.get("profile") or {}).get("name", "?")))
        info["schedule"] = {k: v for k, v in (settings.get("profile") or {}).items() if k not in ("name",)}
        baselines = read_baselines(study)
        measured = read_measured(study)
        table = results_table(study)
        res = table[(table["fraction"] == 1.0) & table["parameter"].str.startswith(CALIBRATION_PREFIX)]
        anchor = table[(table["fraction"] == 1.0) & (table["parameter"] == "anchor")
                       & (table["value"].astype(str) == "fastai_fine_tune")]
        for ds, cfg in baselines.items():
            if _is_smoke_test(ds):
                info["excluded"][ds] = "smoke test: too small to fit on"
                continue
            m = with_measured(cfg.measurements, measured.get(ds))
            if m.similarity is not None and m.similarity.backbone_key:
                info["backbones"].add(m.similarity.backbone_key)
            features[ds] = {p: predictor_value(p, m) for p in FAMILY_PREDICTORS}
            features[ds]["multi_label"] = bool(cfg.multi_label)
            rows = res[res["dataset"] == ds].copy()
            if rows.empty:
                continue
            score = rows["roc_auc_macro"] if cfg.multi_label else rows["metric"]
            fastai = anchor[anchor["dataset"] == ds]
            if not fastai.empty:       # fastai's fine_tune, scored the same way: what its defaults lose
                fastai_score = (fastai["roc_auc_macro"] if cfg.multi_label else fastai["metric"]).astype(float)
                info.setdefault("fastai_fine_tune", {})[ds] = float(fastai_score.mean())
                info.setdefault("fastai_fine_tune_seeds", {})[ds] = {
                    int(seed): float(v) for seed, v in zip(fastai["seed"], fastai_score) if math.isfinite(v)}
            frames.append(pd.DataFrame({"dataset": ds, "arm": rows["parameter"].str[len(CALIBRATION_PREFIX):],
                                        "log10_lr": rows["value"].astype(float), "seed": rows["seed"],
                                        "score": score.astype(float)}))
            info["n_trials"] += int(rows["same_as"].isna().sum())
    evidence = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["dataset", "arm", "log10_lr", "seed", "score"])
    evidence = evidence[evidence["arm"].map(lambda a: split_schedule(a)[0] in ARMS)]   # schedule arms kept
    features = {d: f for d, f in features.items() if d in set(evidence["dataset"])}
    return evidence, features, info


def measure_study(study_name: str, storage: str | None = None, *, datasets: Sequence[str] | None = None,
                  overwrite: bool = False, progress: bool = True, advise_fn=None) -> dict[str, Any]:
    """Measure the predictors calibration sweep ``study_name`` skipped (LR range test, valley,
    LogME, linear probe) on each of its datasets, once; see :mod:`.measure`."""
    study = open_study(study_name, storage, create=False)
    study = getattr(study, "study", study)
    settings = study.user_attrs.get("settings") or {}
    profile = str((settings.get("profile") or {}).get("config_profile", "cpu"))
    paths = {name: where for name, where in read_datasets(study).items()}   # measured as advised: sized names subsampled
    baselines = {d: c for d, c in read_baselines(study).items() if d in paths and not _is_smoke_test(d)}
    return measure_predictors(study, baselines, paths, profile=profile, datasets=datasets, overwrite=overwrite,
                              progress=progress, advise_fn=advise_fn)


def _is_smoke_test(dataset: str) -> bool:
    ref = REFERENCE_DATASETS.get(dataset)
    return ref is not None and ref.smoke_test


def calibrate(study_names: Sequence[str], storage: str | None = None, *, backbone: str | None = None,
              min_datasets: int = 3, complete_only: bool = True, exclude: Sequence[str] = ()) -> Calibration:
    """Fit the calibrated policy on the calibration sweep(s) ``study_names`` in ``storage``.

    ``complete_only`` fits only on datasets whose every arm x rate cell has a result (a sweep
    still running has some datasets half done); the others are listed as excluded. ``exclude``
    names datasets held out of the fit (the leave-one-dataset-out validation,
    :mod:`.validate`); they are listed as excluded too.
    """
    studies = [open_study(name, storage, create=False) for name in study_names]
    studies = [getattr(s, "study", s) for s in studies]       # a BenchStudy wraps the Optuna study
    evidence, features, info = sweep_evidence(studies)
    held_out = set(exclude)
    for ds in sorted(held_out):
        info["excluded"][ds] = "held out (exclude=: a leave-one-dataset-out fit, or by request)"
    evidence = evidence[~evidence["dataset"].isin(held_out)]
    features = {d: f for d, f in features.items() if d not in held_out}
    if complete_only and not evidence.empty:
        cells = evidence.groupby("dataset").apply(lambda g: len(set(zip(g["arm"], g["log10_lr"]))))
        full = int(cells.max())
        for ds, n in cells.items():
            if n < full:
                info["excluded"][ds] = f"incomplete: {n} of {full} cells"
        evidence = evidence[evidence["dataset"].map(cells) == full]
        features = {d: f for d, f in features.items() if d in set(evidence["dataset"])}
    n = evidence["dataset"].nunique()
    if n < min_datasets:
        raise ConfigError(f"the calibration sweep has {n} usable dataset(s); at least {min_datasets} are needed "
                          f"to fit and validate a rule (excluded: {info['excluded'] or 'none'})",
                          hint="let 'finetune-advisor bench run --grid calibration' finish more datasets")
    if len(info["backbones"]) > 1:
        raise ConfigError(f"the studies were run with different backbones {sorted(info['backbones'])}; "
                          f"calibrate one backbone at a time")
    backbone = backbone or next(iter(info["backbones"]), None)
    if not backbone:
        raise ConfigError("cannot tell which backbone the sweep used (no similarity measured)",
                          hint="pass backbone=... (CLI --backbone)")
    curves = Curves.from_evidence(evidence)
    numeric = {d: {p: v for p, v in f.items() if p in FAMILY_PREDICTORS} for d, f in features.items()}
    candidates = families(numeric)
    # the sizes of one dataset leave together (pets@10, pets@30, pets@100), so none leaks into its own fit
    groups = {d: base_name(d) for d in curves.datasets}
    loo = leave_one_out(curves, numeric, candidates, groups=groups)
    family = loo.best_family()
    fixed_arms = [a for a in curves.arms if split_schedule(a)[1] is None]
    schedule_choice = None
    if len(fixed_arms) < len(curves.arms):
        # a step-rule schedule ships only if it beats the fixed epochs leave-one-out
        loo_fixed = leave_one_out(curves, numeric, candidates, groups=groups, arms=fixed_arms)
        fixed_family = loo_fixed.best_family()
        stepped = fit_family(curves, numeric, family).rule.steps is not None
        keep_steps = stepped and loo.mean(family) < loo_fixed.mean(fixed_family)
        schedule_choice = {"with_step_rule": {"family": family, "loo_mean_regret": round(loo.mean(family), 4),
                                              "standard_error": round(loo.standard_error(family), 4)},
                           "fixed_epochs_only": {"family": fixed_family,
                                                 "loo_mean_regret": round(loo_fixed.mean(fixed_family), 4),
                                                 "standard_error": round(loo_fixed.standard_error(fixed_family), 4)},
                           "chosen": "step rule" if keep_steps else "fixed epochs"}
        if not keep_steps:
            loo, family = loo_fixed, fixed_family
    fit = fit_family(curves, numeric, family, arms=None if schedule_choice is None
                     or schedule_choice["chosen"] == "step rule" else fixed_arms)
    portfolio = greedy_portfolio(curves, {d: rule_cell(fit.rule, numeric[d]) for d in curves.datasets})
    loo_portfolios, portfolio_loo = leave_one_out_portfolios(curves, loo.rules[family], numeric)
    per_dataset = {d: {"best_cell": dict(zip(("arm", "log10_lr"), curves.best_cell(d))),
                       "best_score": round(curves.best[d], 4), "fit_regret": round(fit.regrets[d], 4),
                       "loo_regret": round(loo.regrets[family][d], 4), "n_seeds": int(curves.n_seeds.get(d, 0)),
                       "loo_cell": list(rule_cell(loo.rules[family][d], numeric[d])), "group": groups[d],
                       "loo_portfolio": [[arm, rate] for arm, rate in loo_portfolios[d]],
                       "multi_label": bool(features[d].get("multi_label")),
                       "predictors": {p: (None if v is None or not math.isfinite(v) else round(v, 4))
                                      for p, v in numeric[d].items()}}
                   for d in curves.datasets}
    profile_name = next(iter(info["profiles"]))
    provenance = {
        # a calibration is meant to be shared: no password, no machine path (relative to the working folder)
        "studies": info["studies"], "storage": None if storage is None else relative_storage(storage, Path.cwd()),
        "datasets": curves.datasets, "n_trials": info["n_trials"],
        "excluded": info["excluded"], "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "score": "accuracy (single-label), macro ROC AUC (multi-label)",
        "fit_mean_regret": round(fit.mean_regret, 4),
        "loo_mean_regret": {f: round(loo.mean(f), 4) for f in loo.regrets},
        # k = 0 .. PORTFOLIO_SIZE: the best of the left-out rule's cell and its portfolio's first k
        "portfolio_loo_mean_regret": portfolio_loo,
        "per_dataset": per_dataset, "kendall_tau": kendall_taus(curves, numeric),
        "expected_accuracy": expectation_fit(per_dataset),
        "sensitivity": sensitivity(curves, loo.rules[family], numeric, fastai=info.get("fastai_fine_tune"),
                                   rule=fit.rule, portfolio=portfolio, portfolio_loo=portfolio_loo),
        "source": f"calibrate {' '.join(info['studies'])}",
    }
    if schedule_choice is not None:
        provenance["schedule_choice"] = schedule_choice
    # what the report plots: each dataset's regret against the rate, in the rule's arm and schedule
    provenance["regret_curves"] = {d: {"arm": fit.rule.sweep_arm,
                                       "log10_lr": [round(float(r), 4) for r in curves.rates[(d, fit.rule.sweep_arm)]],
                                       "regret": [round(curves.best[d] - float(v), 4)
                                                  for v in curves.scores[(d, fit.rule.sweep_arm)]]}
                                   for d in curves.datasets if (d, fit.rule.sweep_arm) in curves.rates}
    depth = depth_by_size(curves, fit.rule, numeric)
    if depth:
        provenance["depth_by_size"] = depth
    config_profile = str((info.get("schedule") or {}).get("config_profile", profile_name.split("+")[0]))
    schedule = dict(info.get("schedule") or {})
    if fit.rule.steps is not None:
        schedule["schedule_rule"] = fit.rule.describe_schedule()
    return Calibration(rule=fit.rule, backbone=backbone, profile=config_profile,
                       schedule=schedule, family=family, provenance=provenance,
                       portfolio=tuple(portfolio))


def depth_by_size(curves: Curves, rule, features: dict) -> list[dict[str, Any]]:
    """Per dataset size of a sized sweep (``pets@10``): the mean score of the rule's cell beside
    the best head-only cell under the same schedule, over the tasks of that size (what a warning
    about fine-tuning small data cites). Empty without sizes or a head-only arm."""
    head_arm = "head_only" + rule.sweep_arm[len(rule.arm):]
    by_size: dict[int, list[tuple[float, float]]] = {}
    for d in curves.datasets:
        size = split_size(d)[1]
        if size is None or (d, head_arm) not in curves.scores or rule.arm == "head_only":
            continue
        whole = curves.score(d, *rule_cell(rule, features.get(d) or {}))
        by_size.setdefault(size, []).append((whole, float(curves.scores[(d, head_arm)].max())))
    return [{"images_per_class": size, "n": len(rows), "rule": round(float(np.mean([w for w, _ in rows])), 4),
             "head_only": round(float(np.mean([h for _, h in rows])), 4),
             "rule_ahead": int(sum(w > h for w, h in rows))}
            for size, rows in sorted(by_size.items())]


def format_calibration(cal: Calibration) -> str:
    """A readable summary: the rule, and per dataset its best cell and regrets."""
    p = cal.provenance
    lines = [f"calibration for {cal.backbone} at profile {cal.profile}: family {cal.family}, "
             f"{cal.rule.describe()}, depth arm {cal.rule.arm!r}",
             f"fitted on {len(p.get('datasets', []))} datasets ({p.get('n_trials', 0)} trials); mean regret "
             f"{p.get('fit_mean_regret')} in sample, leave-one-out per family: "
             + ", ".join(f"{f} {r}" for f, r in (p.get("loo_mean_regret") or {}).items())]
    if cal.portfolio:
        lines.append("tune's portfolio after the rule: " + ", ".join(f"{a} at 1e{r:+.2f}" for a, r in cal.portfolio)
                     + "; leave-one-out regret of the best of the rule and its first k, k = 0..: "
                     + ", ".join(str(r) for r in p.get("portfolio_loo_mean_regret") or ()))
    for d, row in (p.get("per_dataset") or {}).items():
        cell = row["best_cell"]
        lines.append(f"  {d:12s} best {row['best_score']:.3f} ({cell['arm']} at 1e{cell['log10_lr']:+.1f})  "
                     f"regret fit {row['fit_regret']:.3f}  leave-one-out {row['loo_regret']:.3f}")
    for d, why in (p.get("excluded") or {}).items():
        lines.append(f"  {d:12s} excluded: {why}")
    return "\n".join(lines)
