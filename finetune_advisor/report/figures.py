"""The report's figures. As in Optuna's ``visualization``, what a plot shows is computed first
(``*_info``: plain numbers, testable without matplotlib) and drawn apart (``draw_*``), each drawn
with :func:`finetune_advisor._plotting.new_figure` and encoded with ``png_bytes``."""
from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, NamedTuple, Sequence

from .._plotting import new_figure, png_bytes
from ..lr_finder import plot_lr_finder
from ..measurements import LRFinderResult
from ..study import TABLE2_SIMILARITY
from ..train import plot_history
from ._format import finite
from .model import Figure

FEW_PER_CLASS = 35      # Overture: 20 train + 15 valid images per label
MANY_BARS = 40          # more classes than this: sorted, unlabelled bars
LABEL_GAP = 0.062       # the similarity strip: least distance between reference labels (axis units)
_FEW_COLOR, _BAR_COLOR = "#e8853d", "#4c72b0"


def _encode(fig: Any, name: str, caption: str, alt: str = "") -> Figure:
    return Figure(name, png_bytes(fig), "image/png", caption=caption, alt=alt or caption)


# --- images per class ---------------------------------------------------------------------

class ClassCountInfo(NamedTuple):
    names: list[str]
    values: list[int]
    sorted_bars: bool        # many classes: largest to smallest, no names
    mean: float
    sd: float
    few: list[bool]          # below Overture's minimum per class


def class_count_info(counts: Mapping[str, int], sd: float) -> ClassCountInfo:
    """
    >>> class_count_info({"a": 40, "b": 10}, 15.0).few
    [False, True]
    """
    names = list(counts)
    values = [int(counts[c]) for c in names]
    many = len(names) > MANY_BARS
    if many:  # sorted, unlabelled bars read better than 200 unreadable names
        pairs = sorted(zip(values, names), reverse=True)
        values, names = [v for v, _ in pairs], [n for _, n in pairs]
    return ClassCountInfo(names, values, many, sum(values) / len(values), float(sd),
                          [v < FEW_PER_CLASS for v in values])


def draw_class_counts(info: ClassCountInfo) -> Figure:
    from matplotlib.patches import Patch

    values, names, sd, mean = info.values, info.names, info.sd, info.mean
    fig, ax = new_figure(6, 4)
    colors = [_FEW_COLOR if few else _BAR_COLOR for few in info.few]
    bars = ax.bar(range(len(values)), values, color=colors, width=1.0 if info.sorted_bars else 0.7)
    if len(values) <= 20:
        ax.bar_label(bars, [f"{v:,}" for v in values], fontsize=7, padding=2)
    ax.set_ylim(0, max(values) * 1.3 if max(values) else 1)
    ax.axhline(mean, color="0.25", lw=1, ls="--", label=f"mean {mean:.0f}")
    ax.axhspan(max(mean - sd, 0), mean + sd, color="0.5", alpha=0.12, label=f"±1 SD ({sd:.1f})")
    if info.sorted_bars:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(values)} classes, largest to smallest")
    else:
        ax.set_xticks(range(len(names)))
        tilt = len(names) > 6 or max(map(len, names)) > 8
        ax.set_xticklabels(names, rotation=45 if tilt else 0, ha="right" if tilt else "center",
                           rotation_mode="anchor", fontsize=8)
    ax.set_ylabel("images")
    ax.set_title(f"Images per class — imbalance SD {sd:.1f}", fontsize=10)
    if any(info.few):
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Patch(color=_FEW_COLOR))
        labels.append(f"< {FEW_PER_CLASS} images (Overture's minimum)")
        ax.legend(handles, labels, fontsize=7, loc="upper right")
    else:
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.spines[["top", "right"]].set_visible(False)
    return _encode(fig, "images_per_class.png", f"Images per class; imbalance SD {sd:.1f}.",
                   alt="bar chart of images per class")


# --- image resolution ---------------------------------------------------------------------

class ResolutionInfo(NamedTuple):
    tally: Counter               # (width, height) -> images
    train_size: int
    lo: float                    # axis limits (both axes: a square plot with the diagonal)
    hi: float
    sample: str                  # "N of M headers" / "all M headers"


def resolution_info(sizes: Sequence[tuple[int, int]], train_size: int, n_total: int) -> ResolutionInfo:
    """
    >>> resolution_info([(100, 80), (100, 80)], 64, 10).sample
    '2 of 10 headers'
    """
    tally = Counter(tuple(s) for s in sizes)
    ws = [w for w, _ in tally]
    hs = [h for _, h in tally]
    lo = min(min(ws), min(hs), train_size)
    hi = max(max(ws), max(hs), train_size)
    pad = 0.08 * (hi - lo) if hi > lo else max(hi * 0.2, 4)
    sample = f"{len(sizes):,} of {n_total:,} headers" if len(sizes) < n_total else f"all {n_total:,} headers"
    return ResolutionInfo(tally, int(train_size), lo - pad, hi + pad, sample)


def draw_resolution(info: ResolutionInfo) -> Figure:
    tally, train_size, lo, hi = info.tally, info.train_size, info.lo, info.hi
    ws = [w for w, _ in tally]
    hs = [h for _, h in tally]
    n = [tally[k] for k in tally]
    fig, ax = new_figure(5.2, 4)
    biggest = max(n)
    ax.scatter(ws, hs, s=[20 + 280 * (k / biggest) ** 0.5 for k in n], alpha=0.5, color=_BAR_COLOR,
               edgecolor="white", linewidth=0.5, label="image size (area ∝ count)")
    ax.scatter([train_size], [train_size], marker="s", s=60, facecolor="none", edgecolor="#c44e52", linewidth=1.5,
               label=f"training size {train_size} px")
    ax.plot([lo, hi], [lo, hi], color="0.7", lw=0.8, ls=":", zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    if len(tally) <= 3:
        mid = (lo + hi) / 2
        for (w, h), k in tally.most_common(3):
            right = w > mid  # write the label towards the middle so it stays inside the axes
            ax.annotate(f"{w}×{h}: {k}", (w, h), textcoords="offset points", xytext=(-12 if right else 12, -14),
                        ha="right" if right else "left", fontsize=8)
    ax.set_title(f"Image resolution ({info.sample})", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", markerscale=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return _encode(fig, "resolution.png", f"Width × height of {info.sample}, with the recommended training size.",
                   alt="scatter plot of image widths and heights")


# --- similarity strip ---------------------------------------------------------------------

def spread_labels(xs: list[float], gap: float, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """Label positions near ``xs`` (sorted ascending) at least ``gap`` apart, inside [lo, hi].

    >>> [round(x, 2) for x in spread_labels([0.5, 0.5], gap=0.1)]
    [0.45, 0.55]
    """
    out: list[float] = []
    for x in xs:
        out.append(max(x, out[-1] + gap) if out else x)
    # pull clusters back so they centre on their points, then re-enforce the gap
    groups, start = [], 0
    for i in range(1, len(out) + 1):
        if i == len(out) or out[i] - out[i - 1] > gap + 1e-9:
            groups.append((start, i))
            start = i
    for a, b in groups:
        shift = (sum(out[a:b]) - sum(xs[a:b])) / (b - a)
        for i in range(a, b):
            out[i] -= shift
    for i in range(len(out)):
        out[i] = max(out[i], lo, out[i - 1] + gap if i else lo)
    for i in range(len(out) - 1, -1, -1):
        out[i] = min(out[i], hi if i == len(out) - 1 else out[i + 1] - gap)
    return out


class SimilarityStripInfo(NamedTuple):
    score: float
    threshold: float
    ci: tuple[float, float] | None
    name: str
    references: list[tuple[str, float, float]]   # (dataset, published similarity, label position)


def similarity_strip_info(score: float, threshold: float, ci: tuple[float, float] | None,
                          name: str) -> SimilarityStripInfo:
    """The study's Table 2 datasets placed on the strip beside this dataset's ``score``."""
    refs = sorted(TABLE2_SIMILARITY.items(), key=lambda kv: kv[1])
    label_x = spread_labels([v for _, v in refs], gap=LABEL_GAP, lo=0.03, hi=0.97)
    if ci is not None and not all(finite(c) for c in ci):
        ci = None
    return SimilarityStripInfo(float(score), float(threshold), ci, name,
                               [(ref, v, lx) for (ref, v), lx in zip(refs, label_x)])


def draw_similarity_strip(info: SimilarityStripInfo) -> Figure:
    score, threshold, ci = info.score, info.threshold, info.ci
    fig, ax = new_figure(9, 2.5)
    ax.axvspan(0, threshold, ymin=0.42, ymax=0.58, color="#f2c4c4")
    ax.axvspan(threshold, 1, ymin=0.42, ymax=0.58, color="#c9e6c9")
    ax.axvline(threshold, ymin=0.3, ymax=0.7, color="0.2", lw=1.5)
    ax.text(threshold, 0.74, f"threshold {threshold:.2f}", ha="center", va="bottom", fontsize=8, color="0.2")
    ax.text(0.01, 0.5, "far from ImageNet", ha="left", va="center", fontsize=8, color="#8b2e2e")
    ax.text(0.99, 0.5, "near", ha="right", va="center", fontsize=8, color="#2e6b2e")
    for ref, v, lx in info.references:
        ax.plot([v, v], [0.42, 0.58], color="0.35", lw=1)
        ax.plot([v, lx], [0.42, 0.28], color="0.55", lw=0.7)
        ax.text(lx, 0.26, f"{ref}\n{v:.3f}", ha="center", va="top", fontsize=7, color="0.25")
    if ci is not None:
        ax.errorbar([score], [0.5], xerr=[[max(score - ci[0], 0)], [max(ci[1] - score, 0)]], fmt="none",
                    ecolor="#1f3d7a", elinewidth=2, capsize=5, zorder=4)
    ax.plot([score], [0.5], marker="D", markersize=9, color="#1f3d7a", zorder=5)
    ax.annotate(f"{info.name}: {score:.3f}", (score, 0.58), xytext=(0, 26), textcoords="offset points",
                ha="center", fontsize=9, fontweight="bold", color="#1f3d7a",
                arrowprops={"arrowstyle": "-", "color": "#1f3d7a", "lw": 0.8})
    ax.set_xlim(0, 1)
    ax.set_ylim(0.02, 0.95)
    ax.set_yticks([])
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.set_xlabel("similarity to ImageNet (1 − (EMD − class-count floor), Tiny-ImageNet class means)", fontsize=8)
    return _encode(fig, "similarity.png",
                   "Similarity on a 0–1 strip: the threshold, the study's seven datasets at their published values "
                   "and this dataset (diamond) with its 95% bootstrap interval.",
                   alt=f"similarity strip: {score:.3f} against threshold {threshold:.2f}")


# --- drawn by their owners: the LR range test and a training history ----------------------

def draw_lr_finder(result: LRFinderResult, divided_lr: float | None) -> Figure:
    """``lr_finder.plot_lr_finder`` on a report-sized figure; ``divided_lr``: the ÷10 rate, when used."""
    fig, ax = new_figure(7, 4)
    plot_lr_finder(result, ax=ax, divided_lr=divided_lr)
    ax.set_title("LR range test (frozen body)", fontsize=10)
    caption = ("Loss against learning rate: raw and smoothed, the steepest-descent pick, fastai's valley/steep "
               "suggestions" + (" and the recommended LR (÷10, far dataset)." if divided_lr else "."))
    return _encode(fig, "lr_finder.png", caption, alt="learning-rate range test curve")


def draw_history(history: Any, baseline: Mapping[str, Any] | None) -> Figure:
    """``train.plot_history`` re-plotted from a run's ``history.csv``."""
    fig = plot_history(history, baseline=dict(baseline) if baseline else None)
    return _encode(fig, "curves.png", "Loss and metric per epoch, re-plotted from history.csv.",
                   alt="training curves")


# --- the calibration's regret curves --------------------------------------------------------

FASTAI_DEFAULT_LR = 2e-3     # fastai's fine_tune(base_lr=2e-3)


class RegretCurvesInfo(NamedTuple):
    curves: dict[str, tuple[list[float], list[float]]]   # dataset -> (log10 lr, regret in points)
    advice: float                                        # log10 of the advised head rate
    band: tuple[float, float] | None                     # log10 band (within a point), when known
    finder: float | None                                 # log10 of the user's finder pick, when measured
    fastai: float                                        # log10 of fastai's default rate
    arms: dict[str, str] = {}                            # dataset -> the sweep arm its curve is in


def regret_curves_info(calibration: Mapping[str, Any] | None, config: Any) -> RegretCurvesInfo | None:
    """What the regret plot shows, from ``measurements.calibration["regret_curves"]`` (None: the
    calibration stores none, e.g. a file written before them)."""
    import math

    curves = (calibration or {}).get("regret_curves") or {}
    if not curves:
        return None
    m = config.measurements
    band = m.rate_band
    finder = band.finder_lr if band is not None and band.finder_lr else (m.lr_finder.lr if m.lr_finder else None)
    return RegretCurvesInfo(
        {d: ([float(x) for x in c["log10_lr"]], [100.0 * float(r) for r in c["regret"]]) for d, c in curves.items()},
        math.log10(config.lr), None if band is None else (math.log10(band.lr_low), math.log10(band.lr_high)),
        None if not finder else math.log10(finder), math.log10(FASTAI_DEFAULT_LR),
        {d: str(c.get("arm", "")) for d, c in curves.items()})


def draw_regret_curves(info: RegretCurvesInfo) -> Figure:
    """One line per calibration dataset: its regret (points below its best cell) against log10 lr,
    with the advice, its band, this dataset's finder pick and fastai's default marked."""
    fig, ax = new_figure(7, 4)
    for name, (x, y) in sorted(info.curves.items()):
        ax.plot(x, y, color="#8c8c8c", alpha=0.55, lw=1, marker="o", ms=2.5)
    if info.band is not None:
        ax.axvspan(*info.band, color="#4c72b0", alpha=0.12, label="within 1 point (leave-one-out band)")
    ax.axvline(info.advice, color="#4c72b0", lw=2, label=f"advice 1e{info.advice:+.2f}")
    ax.axvline(info.fastai, color="#e8853d", lw=1.5, ls="--", label="fastai fine_tune default 2e-3")
    if info.finder is not None:
        ax.axvline(info.finder, color="#55a868", lw=1.5, ls=":", label=f"your LR finder 1e{info.finder:+.2f}")
    ax.set_xlabel("log10 head learning rate")
    ax.set_ylabel("regret (points below the dataset's best)")
    ax.set_title(f"The calibration's sweep: {len(info.curves)} datasets", fontsize=10)
    ax.legend(fontsize=7, loc="upper center")
    arms = sorted({arm for arm in info.arms.values()})
    caption = (f"Regret against the head learning rate on every calibration dataset (grey), in the sweep's arm "
               f"{', '.join(arms)} (':stepsN': N optimiser steps a phase; else the profile's fixed epochs); the advice, "
               f"its band, your finder's pick and fastai's default rate marked.")
    return _encode(fig, "regret_curves.png", caption, alt="calibration regret against learning rate")
