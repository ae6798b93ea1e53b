"""A study's outputs: the tidy results table, the improvement heatmap, the regret summary, the
files :func:`write_outputs` writes, and :func:`read_outputs` / :func:`read_regret`, which read
them back (the report reads a bench folder through these)."""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import atomic_open, write_text_atomic
from .._plotting import new_figure, save_png
from .grid import ANCHORS, is_tune_anchor, parse_label
from .records import study_status

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESULT_COLUMNS", "OUTPUT_FILES", "results_table", "improvement_table", "regret_summary", "plot_heatmap",
           "write_outputs", "CsvTable", "BenchOutputs", "read_regret", "read_results", "read_outputs"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["dataset", "fraction", "parameter", "value", "label", "seed", "metric", "metric_name",
                  "valid_loss", "roc_auc_macro", "epochs_to_best", "wall_time_s", "trial", "same_as"]
# write_outputs' keys -> file names (the folder's format; read_outputs reads the same names)
OUTPUT_FILES = {"results": "results.csv", "results_parquet": "results.parquet", "improvement": "improvement.csv",
                "heatmap": "heatmap.png", "regret": "regret.csv", "regret_roc_auc_macro": "regret_roc_auc_macro.csv",
                "status": "status.json"}


def results_table(study) -> "pd.DataFrame":
    """Tidy table, one row per grid cell x seed (COMPLETE trials; aliased cells repeat the row of
    the trial they are identical to, with ``same_as`` set)."""
    import pandas as pd

    rows = []
    by_key = {}
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state.name != "COMPLETE" or "key" not in a:
            continue
        row = {"dataset": a["dataset"], "fraction": a["fraction"], "parameter": a["parameter"],
               "value": a["value"], "label": a["label"], "seed": a["seed"], "metric": t.value,
               "metric_name": a.get("metric_name"), "valid_loss": a.get("valid_loss"),
               "roc_auc_macro": a.get("roc_auc_macro"), "epochs_to_best": a.get("epochs_to_best"),
               "wall_time_s": a.get("wall_time_s"), "trial": t.number, "same_as": None}
        by_key.setdefault(a["key"], row)
        rows.append(row)
    for alias, target in (study.user_attrs.get("aliases") or {}).items():
        if target in by_key:
            ds, frac, label, seed = alias.split("|")
            parameter, value = parse_label(label)
            rows.append({**by_key[target], "parameter": parameter, "value": value, "label": label,
                         "same_as": target})
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return df.sort_values(["dataset", "fraction", "parameter", "label", "seed"]).reset_index(drop=True)


def improvement_table(results: "pd.DataFrame", *, per_fraction: bool = True) -> "pd.DataFrame":
    """% change of the mean metric vs the baseline's, rows dataset (@ fraction), columns the
    variations sorted best to worst (mean over rows); anchors included."""
    import pandas as pd

    if results.empty:
        return pd.DataFrame()
    df = results.copy()
    df["row"] = df["dataset"] + (" @" + (df["fraction"] * 100).round().astype(int).astype(str) + "%"
                                 if per_fraction else "")
    means = df.groupby(["row", "label"])["metric"].mean().unstack("label")
    if "baseline" not in means:
        return pd.DataFrame()
    pct = means.sub(means["baseline"], axis=0).div(means["baseline"].abs().where(means["baseline"] != 0), axis=0) * 100
    order = pct.mean(axis=0).sort_values(ascending=False).index
    return pct[order]


def plot_heatmap(improvement: "pd.DataFrame", path: str | os.PathLike | None = None, *, title: str | None = None):
    """The study's heatmap: % change vs the baseline, diverging colours centred at 0. Returns the
    Figure; with ``path``, also writes it there as a PNG."""
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    data = improvement.to_numpy(dtype=float)
    finite = data[np.isfinite(data)]
    lim = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-6)
    # ~3.5 in below the rows for the rotated cell labels, so a one-row study stays readable
    fig, ax = new_figure(max(6, 0.7 * data.shape[1] + 2), 0.5 * data.shape[0] + 3.5)
    im = ax.imshow(data, cmap="RdBu", norm=TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim), aspect="auto")
    ax.set_xticks(range(data.shape[1]), [str(c) for c in improvement.columns], rotation=60, ha="right")
    ax.set_yticks(range(data.shape[0]), [str(r) for r in improvement.index])
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:+.1f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(data[i, j]) > 0.6 * lim else "black")
    fig.colorbar(im, ax=ax, label="% change vs baseline")
    ax.set_title(title or "Improvement over the recommended baseline (best to worst, left to right)")
    if path is not None:
        save_png(fig, path)
    return fig


def regret_summary(results: "pd.DataFrame", metric: str = "metric", *,
                   higher_is_better: bool = True) -> "pd.DataFrame":
    """Per dataset and fraction: the baseline (mean, std over seeds), the best cell, the regret
    (best - baseline, in metric points, >= 0) and the baseline's margin over each anchor, on the
    seeds both have (``paired_seeds_over_<anchor>``); ``partial`` marks a dataset whose cells do not
    all have the same seeds yet (a study still running).

    ``metric`` is any numeric column of :func:`results_table` (``"valid_loss"`` with
    ``higher_is_better=False``; ``"roc_auc_macro"`` for multi-label). A margin is positive when
    the baseline is better; ``margin_std_over_<anchor>`` is the spread of the per-seed paired
    differences (same seed, same split), NaN with fewer than two shared seeds. A ``tune@Nx``
    anchor (a search, not a config) gets margins, but is never the best cell.

    >>> reg = regret_summary(results_table(study))                       # doctest: +SKIP
    >>> reg[["dataset", "fraction", "regret", "margin_over_fastai_fine_tune"]]   # doctest: +SKIP
    """
    import pandas as pd

    sign = 1.0 if higher_is_better else -1.0
    rows = []
    # tune@Nx anchors get margins like the others, but are no grid cell (a search, not a config)
    tuned = sorted({lab.split(":", 1)[1] for lab in results["label"].unique()
                    if str(lab).startswith("anchor:") and is_tune_anchor(lab.split(":", 1)[1])})
    for (ds, frac), g in results.dropna(subset=[metric]).groupby(["dataset", "fraction"]):
        stats_all = g.groupby("label")[metric].agg(["mean", "std", "count"])
        if "baseline" not in stats_all.index:
            continue
        stats = stats_all.drop(index=[f"anchor:{a}" for a in tuned], errors="ignore")
        base = stats.loc["baseline"]
        best_label = (sign * stats["mean"]).idxmax()
        by_seed = g.pivot_table(index="seed", columns="label", values=metric, aggfunc="first")
        row = {"dataset": ds, "fraction": frac,
               "metric_name": g["metric_name"].iloc[0] if metric == "metric" else metric,
               "baseline_mean": base["mean"], "baseline_std": base["std"], "n_seeds": int(base["count"]),
               "best_cell": best_label, "best_mean": stats.loc[best_label, "mean"],
               "regret": sign * (stats.loc[best_label, "mean"] - base["mean"]),
               "rank_of_baseline": int((sign * stats["mean"] > sign * base["mean"]).sum()) + 1,
               "n_cells": len(stats)}
        for a in (*ANCHORS, *tuned):
            lab = f"anchor:{a}"
            have = lab in stats_all.index
            row[f"{a}_mean"] = stats_all.loc[lab, "mean"] if have else float("nan")
            row[f"{a}_std"] = stats_all.loc[lab, "std"] if have else float("nan")
            paired = (sign * (by_seed["baseline"] - by_seed[lab])).dropna() if have else pd.Series(dtype=float)
            # on the seeds both have: a study still running compares no different sets of seeds
            row[f"margin_over_{a}"] = paired.mean() if len(paired) else float("nan")
            row[f"margin_std_over_{a}"] = paired.std() if len(paired) > 1 else float("nan")
            row[f"paired_seeds_over_{a}"] = len(paired)
        # a cell with fewer seeds than another: the means above compare different seeds (partial)
        row["partial"] = bool(stats_all["count"].nunique() > 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _write_csv(df: "pd.DataFrame", path: Path, **kwargs: Any) -> str:
    with atomic_open(path, "w") as fh:
        df.to_csv(fh, **kwargs)
    return str(path)


def write_outputs(study, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write ``results.csv`` (+ ``results.parquet`` when pyarrow/fastparquet is installed),
    ``improvement.csv``, ``heatmap.png``, ``regret.csv`` (``regret_roc_auc_macro.csv`` too when a
    multi-label dataset ran) and ``status.json`` (names: :data:`OUTPUT_FILES`); return their paths.
    Each file is written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = {k: out / name for k, name in OUTPUT_FILES.items()}
    files: dict[str, str] = {}
    df = results_table(study)
    files["results"] = _write_csv(df, path["results"], index=False)
    try:
        with atomic_open(path["results_parquet"], "wb") as fh:
            df.to_parquet(fh, index=False)
        files["results_parquet"] = str(path["results_parquet"])
    except ImportError:
        log.debug("bench: no parquet engine (pip install pyarrow); wrote CSV only")
    imp = improvement_table(df)
    if not imp.empty:
        files["improvement"] = _write_csv(imp, path["improvement"])
        plot_heatmap(imp, path["heatmap"])
        files["heatmap"] = str(path["heatmap"])
    reg = regret_summary(df) if not df.empty else None
    if reg is not None and not reg.empty:
        files["regret"] = _write_csv(reg, path["regret"], index=False)
    if df["roc_auc_macro"].notna().any():
        files["regret_roc_auc_macro"] = _write_csv(regret_summary(df, "roc_auc_macro"),
                                                   path["regret_roc_auc_macro"], index=False)
    write_text_atomic(path["status"], json.dumps(study_status(study), indent=2, default=str))
    files["status"] = str(path["status"])
    return files


# --- reading a bench folder back --------------------------------------------------------------

@dataclass(frozen=True)
class CsvTable:
    """A CSV as written: the header and the rows, every cell the text in the file."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


def read_regret(path: str | os.PathLike) -> CsvTable:
    """A regret table (``regret.csv``, ``regret_roc_auc_macro.csv``; any CSV, in fact) as text:
    the columns :func:`regret_summary` wrote, in order, and the cells exactly as written (empty
    for NaN), so a reader can show them unchanged or parse what it needs. Undecodable bytes are
    replaced, never fatal. An empty file gives no columns and no rows.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "regret.csv"
    >>> _ = p.write_text("dataset,regret\\npets,0.01\\n")
    >>> read_regret(p).records()
    [{'dataset': 'pets', 'regret': '0.01'}]
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        lines = list(csv.reader(fh))
    if not lines:
        return CsvTable((), ())
    return CsvTable(tuple(lines[0]), tuple(tuple(r) for r in lines[1:]))


def _cell_value(v: Any) -> Any:
    """A ``value`` cell: None (the baseline), a float (a grid value) or an anchor's name."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        return float(v)
    except ValueError:
        return str(v)


def read_results(path: str | os.PathLike) -> "pd.DataFrame":
    """``results.csv`` as :func:`results_table` made it (columns :data:`RESULT_COLUMNS`; NaN where
    a cell is empty), with ``value`` as in the study: None (the baseline), a float or an anchor name."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"value": object})
    df["value"] = df["value"].map(_cell_value).astype(object)
    return df


@dataclass(frozen=True)
class BenchOutputs:
    """What a bench output folder holds; None for a file that is not there."""

    folder: Path
    results: "pd.DataFrame | None"
    improvement: "pd.DataFrame | None"       # rows dataset @ fraction, columns cells best to worst
    regret: CsvTable | None
    regret_roc_auc_macro: CsvTable | None
    heatmap: Path | None
    status: dict[str, Any] | None


def read_outputs(folder: str | os.PathLike) -> BenchOutputs:
    """Read back the files :func:`write_outputs` wrote to ``folder`` (any of them may be missing)."""
    import pandas as pd

    folder = Path(folder)
    path = {k: folder / name for k, name in OUTPUT_FILES.items()}
    have = {k: p if p.is_file() else None for k, p in path.items()}
    return BenchOutputs(
        folder=folder,
        results=read_results(have["results"]) if have["results"] else None,
        improvement=pd.read_csv(have["improvement"], index_col=0) if have["improvement"] else None,
        regret=read_regret(have["regret"]) if have["regret"] else None,
        regret_roc_auc_macro=read_regret(have["regret_roc_auc_macro"]) if have["regret_roc_auc_macro"] else None,
        heatmap=have["heatmap"],
        status=json.loads(have["status"].read_text(encoding="utf-8")) if have["status"] else None)
