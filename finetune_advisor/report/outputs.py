"""The report's sections on other commands' outputs: a training run (read through
:func:`finetune_advisor.train.read_run`, which owns the run folder), a benchmark folder
(``heatmap.png`` and the regret table, read through :mod:`finetune_advisor.bench.results`) and a
tune folder (read through :func:`finetune_advisor.tune.read_tune`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..bench.results import OUTPUT_FILES, read_regret
from ..config import DECISION_FIELDS, Config
from ..train import TrainRun
from ..tune.result import TuneResult
from ._format import finite, fmt_cell, fmt_value, is_number
from .figures import draw_history
from .model import Figure, Section, Table

MAX_TABLE_ROWS = 40             # history / regret tables
# history.csv columns that are not a final metric
_NOT_METRICS = ("epoch", "phase", "phase_epoch", "lr_body", "lr_head", "seconds", "train_loss")


# --- section 5: training run ----------------------------------------------------------------

def training_section(run: TrainRun | None, config: Config) -> Section:
    if run is None:
        return Section("training", "Training run", available=False, notes=[
            "No training run given. Train with `finetune-advisor train DATASET --config config.json --out runs/x`, "
            "then add `--run runs/x` to the report command to show its curves and final metrics here."])
    notes = [f"From {run.path} ({', '.join(run.files)})."] + list(run.problems)
    facts: dict[str, str] = {}
    result = dict(run.result or {})
    history = run.history
    final = dict(result.get("final_metrics") or {})
    if not final and history is not None and len(history):
        last = history.iloc[-1]
        final = {k: float(last[k]) for k in history.columns if k not in _NOT_METRICS and is_number(last[k])}
    for k, v in final.items():
        facts[f"final {k.replace('_', ' ')}"] = f"{float(v):.4f}"
    baseline = result.get("baseline") or {}
    if baseline:
        value = float(baseline.get("value", float("nan")))
        facts["majority baseline"] = f"{baseline.get('metric', '')} {value:.4f}" + (
            f" (always '{baseline['prediction']}')" if isinstance(baseline.get("prediction"), str) else "")
    if "beats_baseline" in result:
        facts["beats baseline"] = "yes" if result["beats_baseline"] else "NO"
    for key, label in (("backbone", "backbone"), ("n_train", "training images"), ("n_valid", "validation images")):
        if key in result:
            facts[label] = str(result[key])
    if "wall_time_s" in result:
        facts["wall time"] = f"{float(result['wall_time_s']):.0f} s"
    figures = []
    if run.curves:
        figures.append(Figure("curves.png", run.curves, "image/png", caption="Loss and metric per epoch (curves.png "
                              "from the run); the dashed line marks the unfreeze.", alt="training curves"))
    elif history is not None and len(history):
        try:
            figures.append(draw_history(history, baseline or None))
        except Exception as exc:  # noqa: BLE001 -- the table below still shows the numbers
            notes.append(f"could not plot history.csv: {exc}")
    tables = []
    if history is not None and len(history):
        cols = [c for c in history.columns if c not in ("lr_body", "lr_head")]
        rows = [[fmt_cell(row[c]) for c in cols] for _, row in history.head(MAX_TABLE_ROWS).iterrows()]
        tables.append(Table(cols, rows, caption="history.csv" + (
            f" (first {MAX_TABLE_ROWS} of {len(history)} epochs)" if len(history) > MAX_TABLE_ROWS else ""),
            css_class="history"))
    if run.config is not None:
        diff = [f for f in DECISION_FIELDS if getattr(run.config, f) != getattr(config, f)]
        if diff:
            notes.append("The run's config differs from the recommendation above in: " + ", ".join(
                f"{f} ({fmt_value(getattr(run.config, f))})" for f in diff) + ".")
        else:
            notes.append("The run used exactly the recommended configuration.")
    for n in result.get("notes", []) or []:
        notes.append(f"run note: {n}")
    data = {"path": str(run.path), "files": list(run.files), "final_metrics": final, "baseline": baseline,
            "beats_baseline": result.get("beats_baseline"),
            "history": json.loads(history.to_json(orient="records")) if history is not None else []}
    return Section("training", "Training run", notes=notes, facts=facts, figures=figures, tables=tables, data=data)


# --- section 6: benchmark -------------------------------------------------------------------

def bench_section(path: Path | None) -> Section:
    title = "Benchmark"
    if path is None:
        return Section("benchmark", title, available=False, notes=[
            "No benchmark given. Pass `--bench DIR` with a benchmark output folder (heatmap.png and regret.csv) "
            "to show how the recommended config ranks against the others tried."])
    notes, figures, tables = [f"From {path}."], [], []
    data: dict[str, Any] = {"path": str(path)}
    heat = path / OUTPUT_FILES["heatmap"]
    if heat.is_file():
        figures.append(Figure("bench_heatmap.png", heat.read_bytes(), "image/png",
                              caption="Benchmark heatmap (heatmap.png).", alt="benchmark heatmap"))
    else:
        notes.append(f"No heatmap.png in {path}.")
    columns, rows, problem = _read_regret(path)
    if problem:
        notes.append(problem)
    if columns:
        data["regret"] = [dict(zip(columns, r)) for r in rows]
        columns, cells = compact_regret(columns, rows)
        tables.append(Table(columns, cells[:MAX_TABLE_ROWS],
                            caption="Regret" + (f" (first {MAX_TABLE_ROWS} of {len(rows)} rows)"
                                                if len(rows) > MAX_TABLE_ROWS else ""), css_class="regret"))
    else:
        notes.append(f"No regret.csv (or regret.json) in {path}.")
    return Section("benchmark", title, notes=notes, figures=figures, tables=tables, data=data,
                   available=bool(figures or tables))


def _read_regret(path: Path) -> tuple[list[str], list[list[Any]], str]:
    """(columns, rows, problem) of bench's ``regret.csv`` (read by bench), else of a hand-made
    ``regret.json`` (records, or {key: record}); no columns: neither is usable."""
    regret_csv, regret_json = path / OUTPUT_FILES["regret"], path / "regret.json"
    if regret_csv.is_file():
        table = read_regret(regret_csv)
        return list(table.columns), [list(r) for r in table.rows], ""
    if not regret_json.is_file():
        return [], [], ""
    try:
        obj = json.loads(regret_json.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [], [], f"regret.json unreadable: {exc}"
    if isinstance(obj, Mapping):
        obj = [{"key": k, **(v if isinstance(v, Mapping) else {"value": v})} for k, v in obj.items()]
    if isinstance(obj, list) and obj and all(isinstance(r, Mapping) for r in obj):
        columns = list(dict.fromkeys(k for r in obj for k in r))
        return columns, [[r.get(c, "") for c in columns] for r in obj], ""
    return [], [], ""


def compact_regret(columns: list[str], rows: list[list[Any]]) -> tuple[list[str], list[list[str]]]:
    """``bench.regret_summary``'s wide table as "mean ± std" cells (metric points, 3 decimals), one
    margin column per anchor; any other table is shown as it is."""
    if not {"baseline_mean", "baseline_std", "best_cell", "regret"} <= set(columns):
        return columns, [[fmt_cell(v) for v in r] for r in rows]

    def pm(mean: Any, std: Any) -> str:
        if not finite(mean):
            return "–"
        return f"{float(mean):.3f}" + (f" ± {float(std):.3f}" if finite(std) else "")

    anchors = [c[len("margin_over_"):] for c in columns if c.startswith("margin_over_")]
    head = ["dataset", "fraction", "metric", "baseline (mean ± std)", "seeds", "best cell", "regret",
            *[f"margin over {a}" for a in anchors]]
    out = []
    for r in rows:
        d = dict(zip(columns, r))
        frac = d.get("fraction")
        out.append([str(d.get("dataset", "")), fmt_cell(float(frac)) if finite(frac) else str(frac or ""),
                    str(d.get("metric_name", "")),
                    pm(d["baseline_mean"], d["baseline_std"]), str(d.get("n_seeds", "")), str(d["best_cell"]),
                    pm(d["regret"], None),
                    *[pm(d.get(f"margin_over_{a}"), d.get(f"margin_std_over_{a}")) for a in anchors]])
    return head, out


# --- section 7: tune ------------------------------------------------------------------------

def tune_section(result: TuneResult | None) -> Section:
    """The best value against the recommendation's, the trials, Optuna's two figures."""
    title = "Tuning"
    if result is None:
        return Section("tune", title, available=False, notes=[
            "No tune folder given. Search around the recommendation with `finetune-advisor tune DATASET --budget 5x "
            "--out tune/x`, then add `--tune tune/x` to the report command to show what it found here."])
    folder = Path(result.files.get("result", ".")).parent
    notes = [f"From {folder}: {result.n_trials} trial(s) of a budget of {result.budget}, trial 0 being the "
             f"recommendation itself."] + list(result.notes)
    facts = {"metric": result.metric}
    if result.best_value is not None:
        facts["best"] = f"{result.best_value:.4f} (trial {result.best_trial})"
    if result.recommendation_value is not None:
        facts["the recommendation"] = f"{result.recommendation_value:.4f} (trial {result.recommendation_trial})"
    if result.improvement is not None:
        facts["gain over the recommendation"] = f"{result.improvement:+.4f}"
    facts["trials"] = f"{result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed"
    facts["time"] = f"{result.spent_s:.0f} s spent" + ("" if result.budget_s is None else
                                                        f" of {result.budget_s:.0f} s ({result.budget})")
    if result.best_config is not None and result.recommendation is not None:
        diff = [f for f in DECISION_FIELDS if getattr(result.best_config, f) != getattr(result.recommendation, f)]
        notes.append("The best config differs from the recommendation in: " + ", ".join(
            f"{f} ({fmt_value(getattr(result.best_config, f))})" for f in diff) + "." if diff else
            "The recommendation was the best config tried.")
        if "best_config" in result.files:
            notes.append(f"Train it with `finetune-advisor train DATASET --config {result.files['best_config']}`.")
    figures = [Figure(f"tune_{Path(result.files[kind]).name}", Path(result.files[kind]).read_bytes(), "image/png",
                      caption=caption, alt=caption)
               for kind, caption in (("history_plot", "Optimisation history (Optuna)."),
                                     ("importance_plot", "Parameter importances (Optuna, fANOVA)."))
               if kind in result.files and Path(result.files[kind]).is_file()]
    columns = ["trial", "state", "value", "lr", "fine_tune", "lr_ratio", "dropout_p1", "head_epochs",
               "unfrozen_epochs", "epochs run", "seconds"]
    keys = ["number", "state", "value", "lr", "fine_tune", "lr_ratio", "dropout_p1", "head_epochs",
            "unfrozen_epochs", "epochs_run", "wall_time_s"]
    rows = [[fmt_cell(r.get(k)) if r.get(k) is not None else "–" for k in keys] for r in result.trials]
    highlight = [i for i, r in enumerate(result.trials[:MAX_TABLE_ROWS]) if r.get("number") == result.best_trial]
    table = Table(columns, rows[:MAX_TABLE_ROWS], caption="Trials" + (
        f" (first {MAX_TABLE_ROWS} of {len(rows)})" if len(rows) > MAX_TABLE_ROWS else ""),
        highlight=highlight, css_class="history")
    data = {k: v for k, v in result.to_dict().items() if k not in ("recommendation",)}
    return Section("tune", title, notes=notes, facts=facts, figures=figures, tables=[table], data=data)
