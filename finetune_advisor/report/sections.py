"""The report's sections that read the recommendation itself: the configuration, the similarity
to ImageNet, the LR range test, warnings and next steps, and the summary cards. Each reads the
typed measurements (:class:`~finetune_advisor.measurements.Measurements`) and builds one
:class:`~finetune_advisor.report.model.Section`."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..backbones import Backbone
from ..config import DECISION_FIELDS, Config
from ..data import DatasetProfile
from ..heuristics import resolve_far
from ..measurements import LRFinderResult, Measurements, SimilarityResult
from ..study import SIMILARITY_THRESHOLD, TABLE2_SIMILARITY
from ._format import fmt_num, fmt_value
from .figures import (FEW_PER_CLASS, draw_lr_finder, draw_regret_curves, draw_similarity_strip, regret_curves_info,
                      similarity_strip_info)
from .model import Section, Table

MAX_MATCH_ROWS = 60             # nearest-reference-class table


# --- what was measured --------------------------------------------------------------------

def similarity_score(sim: SimilarityResult | None, m: Measurements) -> float | None:
    return float(sim.similarity) if sim is not None else m.score


def similarity_threshold(sim: SimilarityResult | None, m: Measurements) -> float:
    """The threshold the measurement used, else the one the rules used, else the study's."""
    if sim is not None and sim.threshold is not None:
        return float(sim.threshold)
    return float(m.similarity_threshold) if m.similarity_threshold is not None else SIMILARITY_THRESHOLD


def far_of(sim: SimilarityResult | None, m: Measurements) -> bool | None:
    """Far from ImageNet? The recorded verdict, else the score against the threshold; None: not measured."""
    far = sim.far if sim is not None and sim.far is not None else m.far
    return resolve_far(similarity_score(sim, m), far, similarity_threshold(sim, m))


def lr_pick(lr: LRFinderResult | None, m: Measurements) -> float | None:
    """The rate the range test picked (or the one the rules started from); None: not run."""
    if lr is not None and lr.lr is not None:
        return float(lr.lr)
    return None if m.lr_find is None else float(m.lr_find)


# --- section 1: config --------------------------------------------------------------------

def config_section(config: Config) -> Section:
    defaults = Config.study_defaults()
    rows, highlight = [], []
    for i, name in enumerate(DECISION_FIELDS):
        value, default = getattr(config, name), getattr(defaults, name)
        if dataclasses.is_dataclass(value):
            dv, vv = dataclasses.asdict(default), dataclasses.asdict(value)
            differs = dv != vv
            default_text = ", ".join(f"{k}={fmt_value(dv[k])}" for k in dv if dv[k] != vv[k]) if differs else ""
        else:
            differs = value != default
            default_text = fmt_value(default) if differs else ""
        if differs:
            highlight.append(i)
        rows.append([name, fmt_value(value), config.reasons.get(name, ""), default_text])
    table = Table(["field", "value", "reason", "study default (where different)"], rows,
                  caption=f"{len(DECISION_FIELDS)} decisions; {len(highlight)} differ from the study's defaults "
                          f"(Table 1: ResNet-34, 224 px, bs 64, wd 0.1, beta2 0.99, 5 + 15 epochs)",
                  highlight=highlight, css_class="config")
    notes = ["Each decision with the rule that made it. Highlighted rows differ from the study's "
             "defaults; the default is shown beside them (for augmentation: only the settings that differ)."]
    tables = [table]
    m = config.measurements
    if m.policy:
        notes.append(f"Policy: {m.policy}" + (f" ({m.calibration.get('backbone')} at profile "
                                              f"{m.calibration.get('profile')}, rule family "
                                              f"{m.calibration.get('family')})" if m.calibration else "") + ".")
    study = (m.alternatives or {}).get("study")
    if study:
        tables.append(Table(["field", "calibrated policy", "study policy"],
                            [[k, fmt_value(getattr(config, k)), fmt_value(v)] for k, v in study.items()],
                            caption="The learning rates and depth: the calibrated policy's choice beside the "
                                    "study's published rules on the same measurements", css_class="policies"))
    return Section("config", "Recommended configuration", notes=notes, tables=tables,
                   data={"config": config.to_dict(), "study_defaults_differ": [DECISION_FIELDS[i] for i in highlight]})


# --- section 3: similarity -----------------------------------------------------------------

def similarity_section(sim: SimilarityResult | None, m: Measurements, name: str = "this dataset") -> Section:
    """``sim`` None with ``m.score`` set: only the score was recorded (no interval, no matches)."""
    refs_text = ", ".join(f"{k} {v:.3f}" for k, v in sorted(TABLE2_SIMILARITY.items(), key=lambda kv: kv[1]))
    score = similarity_score(sim, m)
    if score is None:
        return Section("similarity", "Similarity to ImageNet", available=False, notes=[
            "Similarity was not measured for this recommendation, so the rules used the study's defaults "
            "for a near dataset. Measure it by running `finetune-advisor report` (or `recommend`) without "
            "--no-similarity; a reference for the backbone is built with `finetune-advisor reference build`.",
            f"The study's datasets for comparison: {refs_text} (threshold {SIMILARITY_THRESHOLD})."],
            data={"reference_datasets": dict(TABLE2_SIMILARITY)})
    threshold = similarity_threshold(sim, m)
    far = far_of(sim, m)
    facts = {"similarity": f"{score:.3f}",
             "verdict": ("FAR from ImageNet" if far else "near ImageNet") + f" (threshold {threshold:.2f})"}
    ci = None
    notes, tables = [], []
    if sim is not None:
        ci = (float(sim.ci_low), float(sim.ci_high)) if sim.ci_low is not None and sim.ci_high is not None else None
        facts.update(_similarity_facts(sim, ci))
    if ci is not None and ci[0] < threshold <= ci[1]:
        notes.append(f"The interval {ci[0]:.3f}–{ci[1]:.3f} contains the threshold {threshold:.2f}: the near/far "
                     "verdict is uncertain; consider trying both plans.")
    notes.append("Reference values are the study's (ResNet-34 features, full Tiny-ImageNet reference); scores from "
                 "another backbone, image size or images-per-class are only roughly comparable with them.")
    if sim is not None:
        short = dict(sim.short_classes or {})
        if short:
            notes.append(f"{len(short)} class(es) had fewer images than the reference's {sim.images_per_class} per "
                         f"class and were averaged over fewer: "
                         + ", ".join(f"{c} ({n})" for c, n in list(short.items())[:8])
                         + (" ..." if len(short) > 8 else ""))
        if sim.matches:
            tables.append(_matches_table(dict(sim.matches)))
    data = {"similarity": sim.to_dict() if sim is not None else {"similarity": score, "threshold": threshold,
                                                                  "far": far},
            "reference_datasets": dict(TABLE2_SIMILARITY)}
    fig = draw_similarity_strip(similarity_strip_info(score, threshold, ci, name))
    return Section("similarity", "Similarity to ImageNet", notes=notes, facts=facts, figures=[fig], tables=tables,
                   data=data)


def _similarity_facts(sim: SimilarityResult, ci: tuple[float, float] | None) -> dict[str, str]:
    facts = {}
    if ci is not None:
        facts["95% interval"] = f"{ci[0]:.3f} – {ci[1]:.3f}" + (
            f" (bootstrap SD {float(sim.std):.3f}, {int(sim.bootstrap_rounds)} rounds)"
            if sim.std is not None and sim.bootstrap_rounds else "")
    if sim.emd is not None:
        facts["raw EMD"] = f"{float(sim.emd):.4f}"
    if sim.emd_floor:
        facts["class-count floor"] = (f"{float(sim.emd_floor):.4f} (the EMD ImageNet's own classes pay with "
                                      f"{int(sim.n_classes_used or 0)} classes; similarity = 1 − (EMD − floor))")
    if sim.backbone_key:
        facts["features"] = (f"{sim.backbone_key} at {sim.image_size} px, {sim.images_per_class} images per class "
                             f"averaged")
    if sim.n_images_embedded is not None:
        facts["images embedded"] = (f"{int(sim.n_images_embedded):,} from {int(sim.n_classes_used or 0):,} classes"
                                    + (" (a random subset of the classes)" if sim.class_subsampled else "")
                                    + (f"; {int(sim.n_failed)} failed to decode" if sim.n_failed else ""))
    if sim.reference:
        facts["reference"] = str(sim.reference)
    elif sim.reference_source:
        facts["reference"] = str(sim.reference_source)
    return facts


def _matches_table(matches: dict[str, Any]) -> Table:
    rows = []
    for cls, ms in list(matches.items())[:MAX_MATCH_ROWS]:
        cells = [f"{(rname or rid)} ({rid}) {float(cos):.3f}" if rname else f"{rid} {float(cos):.3f}"
                 for rid, rname, cos in ms]
        rows.append([cls] + cells + [""] * (3 - len(cells)))
    caption = "Nearest Tiny-ImageNet classes per dataset class (the classes it sends transport mass to; cosine)"
    if len(matches) > MAX_MATCH_ROWS:
        caption += f"; first {MAX_MATCH_ROWS} of {len(matches)} classes"
    return Table(["dataset class", "1st", "2nd", "3rd"], rows, caption=caption, css_class="matches")


# --- section 4: LR finder ------------------------------------------------------------------

def lr_section(lr: LRFinderResult | None, config: Config, far: bool | None) -> Section:
    """``lr`` with its curve (a live run) is plotted; a saved Config keeps only its numbers."""
    m = config.measurements
    pick = lr_pick(lr, m)
    if lr is None and pick is None:
        return Section("lr-finder", "Learning-rate range test", available=False, notes=[
            "The LR range test was not run, so the head learning rate is Overture's default "
            f"{fmt_value(config.lr)}. Run without --no-lr-finder to measure it."])
    facts = {}
    if pick is not None:
        facts["steepest descent (smoothed)"] = f"{pick:.2e}"
    for key, label in (("fastai_valley", "fastai valley"), ("fastai_steep", "fastai steep"),
                       ("lightning_steepest", "Lightning steepest gradient")):
        v = getattr(lr, key) if lr is not None else None
        facts[label] = "n/a" if v is None else f"{float(v):.2e}"
    divided = far and pick and not math.isclose(config.lr, pick, rel_tol=0.05)
    facts["recommended head LR"] = f"{config.lr:.2e}" + (" (÷10: far from ImageNet, the study's rule)"
                                                         if divided else "")
    facts["fine-tune LR"] = f"{config.lr_finetune:.2e} (body {config.lr_finetune / config.lr_divisor:.2e})"
    if lr is not None and lr.loss_kind:
        how = ("the head on cached features, " + f"{lr.n_sweeps} sweeps averaged" if lr.method == "cached"
               else "the frozen network end to end")
        facts["loss recorded"] = f"{lr.loss_kind} loss, {lr.n_steps} steps ({how})" + (
            ", stopped early (diverged)" if lr.diverged else "")
    for key, value in (m.transferability or {}).items():
        if key in ("logme", "probe_accuracy") and value is not None:
            label = "LogME" if key == "logme" else f"linear probe ({m.transferability.get('probe_metric', '')})"
            facts[label] = f"{float(value):.3f}"
    figures, notes = [], []
    if lr is not None and lr.has_curve:
        figures.append(draw_lr_finder(lr, config.lr if divided else None))
    else:
        notes.append("The loss curve is not stored in a saved config; run the report without --config to plot it.")
    regret = regret_curves_info(m.calibration, config) if m.policy == "calibrated" else None
    if regret is not None:
        figures.append(draw_regret_curves(regret))
    data = lr.to_dict() if lr is not None else {"lr": pick}
    return Section("lr-finder", "Learning-rate range test", notes=notes, facts=facts, figures=figures,
                   data={"lr_finder": data})


# --- section 7: warnings and next steps -----------------------------------------------------

def warnings_section(prof: DatasetProfile, config: Config, sim: SimilarityResult | None,
                     lr: LRFinderResult | None, backbone: Backbone | None, run_given: bool,
                     run_beats_baseline: bool | None) -> Section:
    m = config.measurements
    steps: list[str] = []
    far = far_of(sim, m)
    score = similarity_score(sim, m)
    if far:
        steps.append(f"Far dataset (similarity {score:.3f}): fine-tune deeper ({config.fine_tune!r} is recommended) "
                     "with the lower learning rate; ImageNet features transfer less well." if score is not None else
                     "Far dataset: fine-tune deeper with the lower learning rate.")
    elif far is False:
        steps.append("Near ImageNet: the pretrained features fit; the head (and the last block) carry most of "
                     "the gain.")
    else:
        steps.append("Similarity not measured: the plan assumes a near dataset. Measure it to check.")
    if sim is not None and sim.ci_low is not None and sim.ci_high is not None and sim.threshold is not None \
            and sim.ci_low < sim.threshold <= sim.ci_high:
        steps.append("The similarity interval straddles the threshold: try both the near and the far plan.")
    median = prof.median_images_per_class
    if median < FEW_PER_CLASS:
        steps.append(f"Few images per class (median {fmt_num(median)}): collect more; validation accuracy on so few "
                     "images is noisy.")
    if lr is not None and lr.has_curve and not lr.diverged and lr.n_steps < 20:
        steps.append("The LR range test was short; re-run it with more data for a steadier curve.")
    if lr is None and lr_pick(lr, m) is None:
        steps.append("Run the LR range test (leave out --no-lr-finder) to replace the default learning rate.")
    if backbone is not None and backbone.pretrained is False:
        steps.append("The backbone has random weights: the similarity and LR numbers only exercise the pipeline.")
    if backbone is not None and backbone.fallback_from:
        steps.append(f"{backbone.fallback_from} weights were unavailable; {backbone.name} was used. Pass --weights or "
                     f"go online for {backbone.fallback_from}.")
    if not run_given:
        steps.append("Train it: `finetune-advisor train DATASET --config config.json --out runs/x`, then re-run the "
                     "report with `--run runs/x`.")
    elif run_beats_baseline is False:
        steps.append("The trained model does not beat the majority-class baseline: check the labels, train longer "
                     "or on more images (profile 'paper').")
    warnings = list(config.warnings) or ["None about the data."]
    return Section("warnings", "Warnings and next steps", lists={"Warnings": warnings, "Next steps": steps},
                   data={"warnings": list(config.warnings), "next_steps": steps})


def summary(config: Config, sim: SimilarityResult | None, lr: LRFinderResult | None,
            prof: DatasetProfile) -> dict[str, str]:
    """The cards at the top of the report."""
    m = config.measurements
    backbone = config.backbone.rsplit(":", 1)[-1] if ":" in config.backbone else config.backbone  # file.py:func
    out = {"dataset": f"{prof.n_images:,} images, {prof.n_classes:,} classes", "backbone": backbone}
    score = similarity_score(sim, m)
    if score is not None:
        out["similarity"] = f"{score:.3f} — " + ("far" if far_of(sim, m) else "near")
    else:
        out["similarity"] = "not measured"
    out["head LR"] = f"{config.lr:.1e}" + ("" if lr_pick(lr, m) is not None else " (default)")
    plan = {"none": "head only", "last": "head, then last block", "all": "head, then all layers"}[config.fine_tune]
    epochs = f"{config.head_epochs}" + (f" + {config.unfrozen_epochs}" if config.fine_tune != "none" else "")
    out["plan"] = f"{plan}, {epochs} epochs at {config.image_size} px"
    return out
