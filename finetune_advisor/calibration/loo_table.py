"""The leave-one-dataset-out table: per validated dataset, each role's score as mean ± std over
seeds (accuracy for single-label datasets, macro ROC AUC for multi-label ones, as the calibration
is fitted), and issue 14's three goals judged on it, each *met* or *missed*:

(a) the calibrated policy's mean over the single-label datasets is at least fastai
    ``fine_tune``'s (the means of the per-dataset means);
(b) it is within :data:`ORACLE_GAP` (2 points) of the oracle on average: the mean over every
    dataset of ``oracle − calibrated`` (each dataset on its own score);
(c) on no dataset is it worse than ``fine_tune`` by more than the *seed spread*, defined as the
    pooled standard deviation over seeds of the two, ``sqrt((s_cal² + s_ft²) / 2)`` (sample
    std; a role with fewer than two seeds counts 0, so a single seed judges strictly).

:func:`validation_table` reads a LOO study (:mod:`.validate` writes it); :func:`write_table`
writes ``loo.md``, ``loo.csv`` and ``loo.json``; :func:`read_table` reads ``loo.json`` back.

>>> import pandas as pd
>>> scores = pd.DataFrame({"dataset": "a", "role": ["calibrated"] * 2 + ["fastai_fine_tune"] * 2,
...                        "seed": [100, 101] * 2, "score": [0.80, 0.82, 0.78, 0.80]})
>>> row = summarise(scores, {"a": False})[0]
>>> round(row["calibrated_mean"], 3), round(row["calibrated_minus_fine_tune"], 3), row["worse_than_spread"]
(0.81, 0.02, False)
>>> judge_goals([row])["a"]["verdict"]
'met'
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .._io import to_jsonable, write_text_atomic
from ..bench.records import baseline_attr, read_datasets
from ..config import Config
from ..exceptions import ConfigError
from .model import Calibration
from .loo_spec import LOO_PREFIX, ROLES, VALIDATION_ATTR, calibrated_config

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ORACLE_GAP", "TABLE_FILES", "summarise", "role_scores", "seed_spread", "judge_goals", "ValidationTable",
           "validation_table", "write_table", "read_table"]

ORACLE_GAP = 0.02
TABLE_FILES = {"loo_markdown": "loo.md", "loo_csv": "loo.csv", "loo_json": "loo.json", "loo_plot": "loo.png"}
TITLES = {"calibrated": "calibrated", "fastai_fine_tune": "fastai fine_tune",
          "fastai_lr_find": "fastai lr_find valley", "lr_find_valley": "cached-test valley",
          "study": "study policy", "oracle": "oracle"}
GOALS = {"a": "calibrated mean over the single-label datasets ≥ fastai fine_tune's",
         "b": f"calibrated within {100 * ORACLE_GAP:g} points of the oracle on average",
         "c": "on no dataset worse than fastai fine_tune by more than the seed spread"}
SPREAD = ("seed spread: the pooled standard deviation over seeds of the calibrated and fine_tune scores on the "
          "dataset, sqrt((s_cal² + s_ft²) / 2), sample std; a role with fewer than two seeds counts 0")


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def seed_spread(cal_std: float, cal_n: int, ft_std: float, ft_n: int) -> float:
    """Goal (c)'s spread: ``sqrt((s_cal² + s_ft²) / 2)``, a std with fewer than 2 seeds counting 0.

    >>> round(seed_spread(0.03, 3, 0.04, 3), 4), seed_spread(float("nan"), 1, 0.02, 1)
    (0.0354, 0.0)
    """
    sc = cal_std if cal_n >= 2 and not _nan(cal_std) else 0.0
    sf = ft_std if ft_n >= 2 and not _nan(ft_std) else 0.0
    return math.sqrt((sc * sc + sf * sf) / 2)


def summarise(scores: "pd.DataFrame", multi_label: Mapping[str, bool],
              info: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per dataset of ``multi_label`` (in its order): per role of :data:`ROLES`, the mean,
    std (ddof 1) and count over seeds of ``scores`` (columns dataset, role, seed, score; NaN
    scores dropped), the calibrated policy's margins and goal (c)'s verdict; ``info[dataset]``
    is merged in (the rule, the oracle cell).

    Only *paired* seeds count: a dataset's seed enters when every role scored on that dataset has
    a score at it, so a validation cut short mid-seed compares the roles on the same seeds.

    >>> import pandas as pd
    >>> scores = pd.DataFrame({"dataset": "a", "role": ["calibrated", "calibrated", "fastai_fine_tune"],
    ...                        "seed": [100, 101, 100], "score": [0.8, 0.5, 0.7]})
    >>> row = summarise(scores, {"a": False})[0]
    >>> row["calibrated_mean"], row["calibrated_n"], row["unpaired_scores"]
    (0.8, 1, 1)
    """
    rows = []
    scored = scores.dropna(subset=["score"])
    valid = _paired(scored)
    dropped_by = scored["dataset"].value_counts().sub(valid["dataset"].value_counts(), fill_value=0)
    for ds, ml in multi_label.items():
        row: dict[str, Any] = {"dataset": ds, "multi_label": bool(ml),
                               "score": "macro ROC AUC" if ml else "accuracy"}
        for role in ROLES:
            s = valid[(valid["dataset"] == ds) & (valid["role"] == role)]["score"].astype(float)
            row[f"{role}_mean"] = float(s.mean()) if len(s) else math.nan
            row[f"{role}_std"] = float(s.std(ddof=1)) if len(s) > 1 else math.nan
            row[f"{role}_n"] = int(len(s))
        row["calibrated_minus_fine_tune"] = row["calibrated_mean"] - row["fastai_fine_tune_mean"]
        row["oracle_minus_calibrated"] = row["oracle_mean"] - row["calibrated_mean"]
        row["seed_spread"] = seed_spread(row["calibrated_std"], row["calibrated_n"], row["fastai_fine_tune_std"],
                                         row["fastai_fine_tune_n"]) \
            if row["calibrated_n"] and row["fastai_fine_tune_n"] else math.nan
        gap = row["calibrated_minus_fine_tune"]
        row["worse_than_spread"] = None if _nan(gap) else bool(-gap > row["seed_spread"] + 1e-12)
        row["unpaired_scores"] = int(dropped_by.get(ds, 0))
        row.update((info or {}).get(ds, {}))
        rows.append(row)
    return rows


def role_scores(results: "pd.DataFrame", label_role: Mapping[str, str],
                multi_label: Mapping[str, bool]) -> "pd.DataFrame":
    """bench's results (rows with a label of ``label_role``) as :func:`summarise` takes them:
    dataset, role, seed, score, the score scored as the calibration is fitted (accuracy for
    single-label datasets, macro ROC AUC for multi-label ones)."""
    import pandas as pd

    res = results[results["label"].isin(list(label_role))]
    return pd.DataFrame({"dataset": res["dataset"], "role": res["label"].map(label_role), "seed": res["seed"],
                         "score": [row.roc_auc_macro if multi_label.get(row.dataset) else row.metric
                                   for row in res.itertuples()]})


def _paired(scores: "pd.DataFrame") -> "pd.DataFrame":
    """The rows of ``scores`` at (dataset, seed) pairs where every role the dataset has any score
    for has one."""
    import pandas as pd

    roles = scores.groupby("dataset")["role"].nunique()
    at_seed = scores.groupby(["dataset", "seed"])["role"].nunique()
    keep = {key for key, n in at_seed.items() if n == roles[key[0]]}
    mask = [(d, s) in keep for d, s in zip(scores["dataset"], scores["seed"])]
    return scores.loc[pd.Series(mask, index=scores.index, dtype=bool)]


def _listing(pairs: Sequence[tuple[str, float]], fmt: str = "{:+.3f}") -> str:
    return ", ".join(f"{d} {fmt.format(v)}" for d, v in pairs)


def judge_goals(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Goals (a), (b), (c) on summarised rows: ``{"a": {"goal", "verdict", "value", "detail"}, ...}``,
    verdict ``met``, ``missed`` or ``not measured`` (no dataset has both numbers yet).

    >>> rows = [{"dataset": "a", "multi_label": False, "calibrated_mean": 0.70, "fastai_fine_tune_mean": 0.75,
    ...          "oracle_mean": 0.71, "seed_spread": 0.01}]
    >>> g = judge_goals(rows)
    >>> g["a"]["verdict"], g["b"]["verdict"], g["c"]["verdict"], g["c"]["detail"]
    ('missed', 'met', 'missed', 'worse than fine_tune beyond the seed spread on a (-0.050, spread 0.010)')
    """
    def have(r: Mapping[str, Any], *roles: str) -> bool:
        return all(not _nan(r.get(f"{role}_mean")) for role in roles)

    goals: dict[str, dict[str, Any]] = {k: {"goal": text, "verdict": "not measured", "value": None, "detail": ""}
                                        for k, text in GOALS.items()}
    single = [r for r in rows if not r["multi_label"] and have(r, "calibrated", "fastai_fine_tune")]
    if single:
        cal = sum(r["calibrated_mean"] for r in single) / len(single)
        ft = sum(r["fastai_fine_tune_mean"] for r in single) / len(single)
        worst = sorted(((r["dataset"], r["calibrated_mean"] - r["fastai_fine_tune_mean"]) for r in single),
                       key=lambda p: p[1])
        detail = f"calibrated {cal:.3f} vs fine_tune {ft:.3f} over {len(single)} single-label datasets ({cal - ft:+.3f})"
        if cal < ft - 1e-12:
            detail += "; largest deficits: " + _listing([p for p in worst if p[1] < 0][:3])
        goals["a"].update(verdict="met" if cal >= ft - 1e-12 else "missed", value=cal - ft, detail=detail)
    both = [r for r in rows if have(r, "calibrated", "oracle")]
    if both:
        gaps = sorted(((r["dataset"], r["oracle_mean"] - r["calibrated_mean"]) for r in both), key=lambda p: -p[1])
        mean = sum(g for _, g in gaps) / len(gaps)
        detail = f"mean gap to the oracle {mean:+.3f} over {len(gaps)} datasets; largest: {_listing(gaps[:3])}"
        goals["b"].update(verdict="met" if mean <= ORACLE_GAP + 1e-12 else "missed", value=mean, detail=detail)
    paired = [r for r in rows if have(r, "calibrated", "fastai_fine_tune")]
    if paired:
        bad = [r for r in paired if r["calibrated_mean"] - r["fastai_fine_tune_mean"] < -r["seed_spread"] - 1e-12]
        detail = ("worse than fine_tune beyond the seed spread on " + ", ".join(
            f"{r['dataset']} ({r['calibrated_mean'] - r['fastai_fine_tune_mean']:+.3f}, spread {r['seed_spread']:.3f})"
            for r in bad) if bad else f"within the seed spread or better on all {len(paired)} datasets")
        goals["c"].update(verdict="missed" if bad else "met", value=len(bad), detail=detail)
    return goals


def _number(x: Any) -> str:
    return "–" if _nan(x) else f"{x:.3f}"


def _cell(row: Mapping[str, Any], role: str, n_seeds: int) -> str:
    mean, std, n = row.get(f"{role}_mean"), row.get(f"{role}_std"), int(row.get(f"{role}_n") or 0)
    if not n or _nan(mean):
        return "–"
    text = f"{mean:.3f}" + ("" if _nan(std) else f" ± {std:.3f}")
    return text + ("" if n == n_seeds else f" (n={n})")


def _unpaired_note(rows: Sequence[Mapping[str, Any]]) -> str:
    n = sum(int(r.get("unpaired_scores") or 0) for r in rows)
    return "" if not n else (f" {n} score(s) at seeds where another role of the dataset has none yet are "
                             f"left out, so every role is compared on the same seeds.")


@dataclass(frozen=True)
class ValidationTable:
    """The validation, read: ``rows`` (see :func:`summarise`), ``goals`` (:func:`judge_goals`) and
    ``info`` (the plan: calibration studies, seeds, profile, progress, datasets not validated)."""

    study: str
    rows: tuple[dict[str, Any], ...]
    goals: dict[str, dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"study": self.study, "rows": list(self.rows), "goals": self.goals, "info": self.info,
                            "definitions": {"spread": SPREAD, "oracle_gap": ORACLE_GAP, "roles": dict(ROLES)}})

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        df = pd.DataFrame(list(self.rows))
        if "fitted_on" in df:
            df["fitted_on"] = df["fitted_on"].map(lambda v: " ".join(v) if isinstance(v, (list, tuple)) else v)
        return df

    def markdown(self) -> str:
        i = self.info
        n_seeds = len(i.get("seeds") or ())
        prof = i.get("profile") or {}
        lines = [f"### Leave-one-dataset-out validation: {self.study}", "",
                 f"Calibration sweep: {', '.join(i.get('calibration_studies', []))} (seeds "
                 f"{', '.join(map(str, i.get('sweep_seeds', [])))}{_fitted_seeds(i)}); validation seeds "
                 f"{', '.join(map(str, i.get('seeds', [])))}; bench profile {prof.get('name', '?')} "
                 f"({prof.get('image_size')} px, {prof.get('head_epochs')} + {prof.get('unfrozen_epochs')} epochs, "
                 f"≤ {prof.get('max_images_per_class')} images a class), fraction 1.0. Score: accuracy "
                 f"(single-label), macro ROC AUC (multi-label), mean ± std over seeds. Trials done: "
                 f"{i.get('n_done', '?')} of {i.get('n_grid', '?')}" + _reused_note(i)
                 + ("" if i.get("complete") else " (PARTIAL)")
                 + "." + _unpaired_note(self.rows), "",
                 "| dataset | score | " + " | ".join(TITLES.values()) + " | calibrated − fine_tune | seed spread "
                 "| calibrated rule (fitted without the dataset) | oracle cell (sweep score) |",
                 "|---|---|" + "---:|" * (len(ROLES) + 2) + "---|---|"]
        for r in self.rows:
            gap = r.get("calibrated_minus_fine_tune")
            mark = " ⚠" if r.get("worse_than_spread") else ""
            rule = f"{r['calibrated_arm']}, {r.get('rule', '')}" if r.get("calibrated_arm") else "–"
            if r.get("calibrated_lr") is not None:
                rule += f" → {r['calibrated_lr']:.1e}"
            if r.get("fitted_on"):
                rule += f" (fitted on {', '.join(r['fitted_on'])})"
            oracle = (f"{r['oracle_arm']} at 1e{r['oracle_log10_lr']:+.1f} ({r.get('oracle_sweep_score', '?')})"
                      if r.get("oracle_arm") else "–")
            lines.append(f"| {r['dataset']} | {'AUROC' if r['multi_label'] else 'accuracy'} | "
                         + " | ".join(_cell(r, role, n_seeds) for role in ROLES)
                         + f" | {'–' if _nan(gap) else f'{gap:+.3f}'}{mark} | {_number(r.get('seed_spread'))} | {rule} | {oracle} |")
        lines += ["", "Goals:", ""]
        for k, g in self.goals.items():
            lines.append(f"- ({k}) {g['goal']}: **{g['verdict']}**" + (f" — {g['detail']}" if g["detail"] else ""))
        lines += ["", f"Definitions: {SPREAD}. The oracle is the sweep's best (arm, lr) cell for the dataset (mean "
                      f"over the sweep's seeds), retrained here at the validation's seeds; goal (b) averages over "
                      f"every dataset, each on its own score."]
        if i.get("not_validated"):
            lines.append("Not validated: " + "; ".join(f"{d} ({why})" for d, why in i["not_validated"].items()) + ".")
        return "\n".join(lines) + "\n"


def validation_table(study) -> ValidationTable:
    """Read a LOO study (a bench study :mod:`.validate` prepared) into a :class:`ValidationTable`."""
    from ..bench import results_table, study_status
    from ..heuristics.policies import predictor_value

    attrs = study.user_attrs
    plan = attrs.get(VALIDATION_ATTR)
    if not plan:
        raise ConfigError(f"the study {study.study_name!r} is not a leave-one-dataset-out validation",
                          hint="prepare one with 'finetune-advisor calibrate --study CALIB --validate NAME'")
    label_role = {label: role for role, label in ROLES.items()}
    stored_datasets = read_datasets(study)
    res = results_table(study)
    res = res[res["fraction"] == 1.0]
    multi_label, info = {}, {}
    for ds in plan["datasets"]:
        text = attrs.get(baseline_attr(ds, 1.0))
        baseline = Config.from_json(text) if text else None
        where = stored_datasets.get(ds)
        multi_label[ds] = bool(baseline.multi_label) if baseline else bool(where and where.multi_label)
        d: dict[str, Any] = {}
        stored = attrs.get(LOO_PREFIX + ds)
        if stored:
            cal = Calibration.from_dict(stored["calibration"])
            d.update(rule=cal.rule.describe(), family=cal.family, fitted_on=list(cal.provenance.get("datasets", ())),
                     calibrated_arm=cal.rule.arm)
            if baseline is not None:
                d["calibrated_lr"] = calibrated_config(baseline, cal).lr
                x = predictor_value(cal.rule.predictor, baseline.measurements)
                d["predictor_value"] = x
        oracle = plan.get("oracles", {}).get(ds)
        if oracle:
            d.update(oracle_arm=oracle["arm"], oracle_log10_lr=oracle["log10_lr"], oracle_sweep_score=oracle.get("score"))
        info[ds] = d
    rows = summarise(role_scores(res, label_role, multi_label), multi_label, info)
    status = study_status(study)
    settings = attrs.get("settings") or {}
    meta = {k: plan.get(k) for k in ("calibration_studies", "seeds", "sweep_seeds", "not_validated",
                                     "full_calibration", "created")}
    meta.update(profile=settings.get("profile"), n_grid=status["n_grid"], n_done=status["n_done"],
                complete=bool(status["n_grid"]) and status["n_remaining"] == 0,
                failed_datasets=attrs.get("failed_datasets") or {}, reused=_reused_counts(study),
                # the sweep's seeds the fits had (a sweep cut short has fewer than it planned)
                sweep_seeds_fitted=sorted({int(o["n_seeds"]) for o in (plan.get("oracles") or {}).values()
                                           if o.get("n_seeds") is not None}))
    return ValidationTable(study.study_name, tuple(rows), judge_goals(rows), meta)


def _reused_counts(study) -> dict[str, int]:
    """Finished trials copied from an earlier study (:mod:`~finetune_advisor.bench.reuse`), per study."""
    from optuna.trial import TrialState

    from ..bench.reuse import REUSED_ATTR

    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        source = t.user_attrs.get(REUSED_ATTR)
        if source:
            name = source.rsplit("#", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def _reused_note(info: Mapping[str, Any]) -> str:
    """' (N copied unchanged from study S)' when trials were reused, else ''."""
    reused = info.get("reused") or {}
    return "".join(f" ({n} copied unchanged from study {name}: same key, same training config)"
                   for name, n in reused.items())


def _fitted_seeds(info: Mapping[str, Any]) -> str:
    """The header's "; the fits had 1 seed(s) a dataset" when the sweep's fits had fewer seeds than it planned."""
    fitted, planned = info.get("sweep_seeds_fitted") or [], len(info.get("sweep_seeds") or ())
    if not fitted or min(fitted) >= planned:
        return ""
    counts = " to ".join(map(str, sorted({min(fitted), max(fitted)})))
    return f"; the fits had {counts} seed(s) a dataset: the sweep was cut short"


def write_table(table: ValidationTable, out_dir: str | os.PathLike) -> dict[str, str]:
    """``loo.md`` (for the README and docs/bench), ``loo.csv``, ``loo.json`` and the figure
    ``loo.png`` (:func:`~.plots.plot_validation`) in ``out_dir``."""
    from .._plotting import save_png
    from .plots import plot_validation

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = {k: out / name for k, name in TABLE_FILES.items()}
    write_text_atomic(path["loo_markdown"], table.markdown())
    write_text_atomic(path["loo_csv"], table.frame().to_csv(index=False))
    write_text_atomic(path["loo_json"], json.dumps(table.to_dict(), indent=2) + "\n")
    save_png(plot_validation(table), path["loo_plot"])
    return {k: str(p) for k, p in path.items()}


def read_table(folder: str | os.PathLike) -> ValidationTable:
    """The table :func:`write_table` wrote to ``folder`` (from its ``loo.json``)."""
    path = Path(folder) / TABLE_FILES["loo_json"]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the validation table {path}: {exc}",
                          hint="write it with 'finetune-advisor calibrate --validate NAME'") from None
    return ValidationTable(data["study"], tuple(data["rows"]), data["goals"], data.get("info") or {})
