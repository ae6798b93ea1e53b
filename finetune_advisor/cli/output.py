"""What the commands print: readable summaries of a recommendation, a dataset profile and a
bench study, and the one-line error message."""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Mapping

from ..config import DECISION_FIELDS
from ..data import UNDECODABLE_IMAGE, DatasetProfile, format_skips
from ..heuristics import format_duration
from ..recommend import Recommendation
from ..storage_url import masked_url


def one_line(text: str) -> str:
    """
    >>> one_line("no images\\n  in data/")
    'no images in data/'
    """
    return " ".join(text.split()) if "\n" in text else text


def print_error(message: str) -> None:
    """``error: <message>`` as one line on stderr (the CLI's only way to report a failure)."""
    print(f"error: {masked_url(one_line(message))}", file=sys.stderr)     # never a storage URL's password


def format_recommendation(rec: Recommendation) -> str:
    """A readable summary: measurements, then one line per decision with its reason."""
    cfg = rec.config
    lines = [format_profile(rec.profile), ""]
    if rec.similarity is not None:
        s = rec.similarity
        verdict = "FAR from ImageNet" if s.far else "near ImageNet"
        lines.append(f"similarity to ImageNet: {s.similarity:.3f} (95% CI {s.ci_low:.3f}-{s.ci_high:.3f}, "
                     f"raw EMD {s.emd:.4f}, {s.backbone_key} @ {s.image_size}px) -> {verdict} "
                     f"(threshold {s.threshold:.2f})")
        if s.reference or s.reference_source:
            lines.append(f"similarity reference: {s.reference or 'built from ' + str(s.reference_source)}")
    if rec.lr_finder is not None:
        r = rec.lr_finder
        lines.append(f"LR finder: {r.lr:.2e} (fastai valley {r.fastai_valley:.2e}, steep {r.fastai_steep:.2e})")
        lines.append(finder_confidence(r))
    m = cfg.measurements
    if m.train_time_s is not None:
        lines.append(f"training time: about {format_duration(m.train_time_s)} on this machine "
                     f"({cfg.head_epochs} + {cfg.unfrozen_epochs} epochs at {cfg.image_size} px; measured "
                     f"{m.forward_images_per_s:.0f} images/s forward at {m.forward_image_size} px)")
    lines += format_rate_band(cfg)
    lines += ["", "recommended config:"]
    width = max(len(f) for f in DECISION_FIELDS)
    for name in DECISION_FIELDS:
        value = getattr(cfg, name)
        if name == "augmentation":
            value = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(value).items())
        elif isinstance(value, float):
            value = f"{value:.3g}"
        lines.append(f"  {name:<{width}}  {value}")
        lines.append(f"  {'':<{width}}    because {cfg.reasons.get(name, '')}")
    if cfg.warnings:
        lines += ["", "warnings:"] + [f"  - {w}" for w in cfg.warnings]
    return "\n".join(lines)


def format_profile(prof: DatasetProfile) -> str:
    res = prof.resolution
    kind = "multi-label" if prof.multi_label else "single-label"
    usable = f" ({prof.n_images - prof.n_corrupt} usable)" if prof.n_corrupt else ""  # the rest: in the skip line
    if prof.layout == "csv":
        from ..data.layouts.csv_labels import describe_label_sep
        kind += f", label separator {describe_label_sep(prof.label_sep)}"
    lines = [f"dataset: {prof.root} ({prof.layout}, {kind})",
             f"  {prof.n_images} images{usable}, {prof.n_classes} classes, "
             f"imbalance SD {prof.imbalance_sd:.1f} images/class",
             f"  resolution mean {res['mean_w']:.0f}x{res['mean_h']:.0f}, "
             f"min {res['min_w']:.0f}x{res['min_h']:.0f}, max {res['max_w']:.0f}x{res['max_h']:.0f}"]
    skipped = format_skips(prof.skipped or {})
    if skipped:
        lines.append(f"  {skipped}")
    return "\n".join(lines)


def format_bench_status(st: Mapping[str, Any]) -> str:
    """``bench.study_status``'s dict as a few lines: progress, trial states, ETA, missing datasets
    (a tune study's: its trials by state and the best value)."""
    if st.get("kind") == "tune":
        return _format_tune_status(st)
    lines = [f"study {st['study']}: {st['n_done']}/{st['n_grid']} trials done, {st['n_remaining']} to go"]
    lines.append("states: " + ", ".join(f"{k} {v}" for k, v in sorted(st["states"].items())))
    if st.get("eta_s_one_worker") is not None:
        eta = f"ETA {st['eta_s_one_worker'] / 60:.1f} min on one worker"
        workers = int(st["states"].get("RUNNING", 0))
        if workers > 1:   # one RUNNING trial per live worker
            eta += f", {st['eta_s_one_worker'] / 60 / workers:.1f} min with the {workers} running now"
        lines.append(f"mean trial {st['mean_trial_s']:.1f} s; {eta}")
    for name, note in (st.get("missing_datasets") or {}).items():
        lines.append(f"missing: {name}: {note}")
    for name, note in (st.get("failed_datasets") or {}).items():
        lines.append(f"no baseline: {name}: {note}")
    for where, changes in (st.get("trained_otherwise_than_advised") or {}).items():
        lines.append(f"trained otherwise than advised, to fit the bench profile: {where}: "
                     + ", ".join(f"{k} {a} -> {t}" for k, (a, t) in changes.items()))
    return "\n".join(lines)


def _format_tune_status(st: Mapping[str, Any]) -> str:
    budget = f", budget {st['budget']}" if st.get("budget") else ""
    lines = [f"study {st['study']}: a tune study (made by 'finetune-advisor tune'), not a bench sweep: "
             f"{st['n_trials']} trials{budget}",
             "states: " + (", ".join(f"{k} {v}" for k, v in sorted(st["states"].items())) or "none")]
    if st.get("best_value") is not None:
        lines.append(f"best value {st['best_value']:.4f} (trial {st['best_trial']})")
    lines.append(f"its results: tune.json and trials.csv in the tune's --out folder; 'finetune-advisor tune PATH "
                 f"--study {st['study']} --storage URL' resumes it")
    return "\n".join(lines)


def format_train_summary(summary: Mapping[str, Any]) -> str:
    """``train``'s result as readable lines (``--json`` prints it whole)."""
    final = summary.get("final_metrics") or {}
    base = summary.get("baseline") or {}
    lines = [f"trained {summary.get('backbone')} on {summary.get('n_train')} images, validated on "
             f"{summary.get('n_valid')} (seed {summary.get('seed')}) in {summary.get('wall_time_s', 0):.0f} s"]
    if final:
        lines.append("final: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    if base:
        shown = {k: v for k, v in base.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        lines.append("majority-class baseline: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
                     + ("; beaten" if summary.get("beats_baseline") else "; NOT beaten"))
    if summary.get("n_unreadable"):
        lines.append(format_skips({UNDECODABLE_IMAGE: summary["n_unreadable"]}))
    for kind, path in (summary.get("files") or {}).items():
        lines.append(f"{kind}: {path}")
    lines += [f"note: {n}" for n in summary.get("notes") or ()]
    return "\n".join(lines)


# the runner-up in words; its rate ({lr}) is the head's
_ARM_WORDS = {"head_only": "the head only at lr {lr}",
              "all_half": "the head at lr {lr}, then the whole network at lr/2",
              "all_tenth": "the head at lr {lr}, then the whole network at lr/10"}


def format_rate_band(cfg) -> list[str]:
    """How sure the rate is (``measurements.rate_band``) and what accuracy to expect, or one line
    each saying why there is no such number."""
    m = cfg.measurements
    if m.expected_accuracy is not None:
        head = [f"expected accuracy about {m.expected_accuracy:.2f} ({m.expected_accuracy_low:.2f}-"
                f"{m.expected_accuracy_high:.2f}: the 10-90% range of the calibration's left-out errors), from the "
                f"linear probe's {(m.transferability or {}).get('probe_accuracy', float('nan')):.2f}"]
    else:
        head = [f"no expected accuracy: {m.expected_accuracy_note}"] if m.expected_accuracy_note else []
    return head + _band_lines(cfg)


def _band_lines(cfg) -> list[str]:
    m = cfg.measurements
    b = m.rate_band
    if b is None:
        return [f"no confidence band for the rate: {m.rate_band_note}"] if m.rate_band_note else []
    pts = lambda x: f"{100 * x:.1f} pts"  # noqa: E731
    lines = [f"lr {cfg.lr:.1e}: within 1 pt of the advice on average from {b.lr_low:.1e} to {b.lr_high:.1e} "
             f"({b.n_within} of the {b.n_datasets} "
             f"calibration datasets stay within 1 pt across all of it); x3 off costs {pts(b.cost_x3_mean)} on average "
             f"(worst {pts(b.cost_x3_worst)}), x10 off {pts(b.cost_x10_mean)} (worst {pts(b.cost_x10_worst)})"]
    if b.runner_up_arm and b.runner_up_lr:
        both = (f"; trying both cuts the leave-one-out regret from {pts(b.regret_rule_alone)} to "
                f"{pts(b.regret_try_both)}" if b.regret_rule_alone is not None and b.regret_try_both is not None else "")
        words = _ARM_WORDS.get(b.runner_up_arm, b.runner_up_arm + " at lr {lr}")
        lines.append(f"runner-up: {words.format(lr=f'{b.runner_up_lr:.1e}')}{both}")
    if b.fastai_loss_mean is not None:
        lines.append(f"fastai's default fine_tune scores {pts(b.fastai_loss_mean)} below the advice on average on "
                     f"the calibration datasets")
    if b.finder_outside:
        lines.append(f"the LR finder's pick {b.finder_lr:.1e} lies outside that band; the advice follows the "
                     f"calibration (measured fine-tuning runs), not the finder")
    return lines


def finder_confidence(r) -> str:
    """How far the range test's picks agree, in decades, and whether its curve diverged.

    >>> from finetune_advisor.measurements import LRFinderResult
    >>> finder_confidence(LRFinderResult(lr=2e-3, fastai_valley=2e-4, lightning_steepest=2e-3, diverged=True, n_sweeps=3))
    "LR finder's picks: fastai's valley 1.0 decade below the steepest slope, Lightning's 0.0 from it; 3 seeded sweeps averaged; the curve diverged at high rates (normal: the test ends there)"
    """
    import math

    def decades(other, name):
        if not other or not r.lr:
            return None
        d = math.log10(other / r.lr)
        return f"{name} {abs(d):.1f} decade {'below' if d < 0 else 'above'} the steepest slope" if abs(d) >= 0.05 \
            else f"{name} 0.0 from it"
    parts = [p for p in (decades(r.fastai_valley, "fastai's valley"), decades(r.lightning_steepest, "Lightning's"))
             if p]
    sweeps = f"{r.n_sweeps} seeded sweeps averaged" if getattr(r, "n_sweeps", 1) > 1 else "one sweep"
    diverged = ("the curve diverged at high rates (normal: the test ends there)" if r.diverged
                else "the curve did not diverge within the tested range")
    return "LR finder's picks: " + ", ".join(parts or ["only the steepest slope"]) + f"; {sweeps}; {diverged}"
