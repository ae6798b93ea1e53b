"""The calibration file: a fitted :class:`~finetune_advisor.heuristics.policies.CalibratedRule`,
the backbone and schedule it holds for, and where it came from. This module writes the format
and is the one that reads it back; calibrations for the shipped backbones live in
``finetune_advisor/resources/calibrations``.

>>> import tempfile, pathlib
>>> from finetune_advisor.heuristics.policies import CalibratedRule
>>> cal = Calibration(CalibratedRule("all_half", -2.5), backbone="resnet18", profile="cpu",
...                   provenance={"datasets": ["a", "b"]}, portfolio=(("head_only", -2.5), ("all_half", -1.5)))
>>> path = cal.save(pathlib.Path(tempfile.mkdtemp()) / "cal.json")
>>> Calibration.load(path) == cal
True
>>> cal.mismatch("resnet18", "paper")
"calibrated for profile 'cpu', not 'paper'"
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .._io import to_jsonable, write_text_atomic
from ..exceptions import CalibrationError
from ..heuristics.policies import CalibratedRule

if TYPE_CHECKING:
    from ..measurements import RateBand

log = logging.getLogger(__name__)

CALIBRATION_FORMAT = "finetune-advisor-calibration"
CALIBRATION_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "resources" / "calibrations"


@dataclass(frozen=True)
class Calibration:
    """A calibrated rule and what it holds for: ``backbone`` (a backbone key such as
    ``resnet50_keras_v1``) and ``profile`` (a Config profile, with its ``schedule``);
    ``portfolio``, the (arm, log10 lr) cells ``tune`` tries after the rule's
    (:mod:`.portfolio`; empty in files written before it existed)."""

    rule: CalibratedRule
    backbone: str
    profile: str
    schedule: Mapping[str, Any] = field(default_factory=dict)
    family: str = "constant"
    provenance: Mapping[str, Any] = field(default_factory=dict)
    version: int = CALIBRATION_VERSION
    portfolio: tuple[tuple[str, float], ...] = ()

    @property
    def n_datasets(self) -> int:
        return len(self.provenance.get("datasets", ()))

    def evidence(self) -> str:
        """What every calibrated reason cites."""
        to = self.provenance.get("transferred_to")
        return (f"calibrated on {self.n_datasets} datasets, backbone {self.backbone}, profile {self.profile}"
                + (f", {self.provenance['n_trials']} trials" if self.provenance.get("n_trials") else "")
                + _schedule_evidence(self.provenance.get("schedule_evidence"))
                + (f"; transferred to {to['backbone']} at {to['profile']}, which have none" if to else "")
                + (f" (transferred from the {self.profile} calibration, not validated at {to['profile']}"
                   f"{_fidelity_evidence(self.provenance.get('fidelity'))})"
                   if to and to["profile"] != self.profile else ""))

    def with_fidelity(self, check: Mapping[str, Any]) -> "Calibration":
        """This calibration with a fidelity check of its advice at another schedule (the 128 px
        ladder's summary: ``study``, ``image_size``, ``head_epochs``, ``unfrozen_epochs``,
        ``n_datasets``, ``mean_advice_gap``, ``holds``) kept in ``provenance["fidelity"]``, one per
        study; a transferred calibration's reasons cite it.

        >>> cal = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu", provenance={"datasets": ["a"]})
        >>> cal = cal.with_fidelity({"study": "ladder", "image_size": 128, "head_epochs": 3, "unfrozen_epochs": 9,
        ...                          "n_datasets": 6, "mean_advice_gap": 0.018, "holds": False,
        ...                          "best_mean_cell": "advice /3", "gap_to_best_mean_cell": 0.011,
        ...                          "mean_lr_move_decades": -0.31})
        >>> print(cal.transferred("r50", "paper").evidence())       # doctest: +NORMALIZE_WHITESPACE
        calibrated on 1 datasets, backbone r50, profile cpu; transferred to r50 at paper, which have none
        (transferred from the cpu calibration, not validated at paper; at 128 px, 3 + 9 epochs on 6 datasets
        (ladder) it was 0.018 below each dataset's best cell on the mean: not within 1 point; its best cell
        on the mean was advice /3 (+0.011); the best rate lay 0.31 decades lower on average)
        """
        kept = [c for c in self.provenance.get("fidelity") or () if c.get("study") != check.get("study")]
        return replace(self, provenance={**self.provenance, "fidelity": [*kept, dict(check)]})

    def transferred(self, backbone: str, profile: str) -> "Calibration":
        """This calibration used for a backbone and profile it was not fitted for (its rule unchanged)."""
        return replace(self, provenance={**self.provenance,
                                         "transferred_to": {"backbone": backbone, "profile": profile}})

    def portfolio_for(self, dataset: str | None = None) -> tuple[tuple[str, float], ...]:
        """The portfolio to try on ``dataset``: the one fitted without it when the calibration
        was fitted on a dataset of that name (a benchmark must not score cells chosen on the
        dataset it scores), else :attr:`portfolio`.

        >>> cal = Calibration(CalibratedRule("all_half", -2.5), "r", "cpu", portfolio=(("head_only", -2.0),),
        ...                   provenance={"per_dataset": {"a": {"loo_portfolio": [["all_half", -1.5]]}}})
        >>> cal.portfolio_for("a"), cal.portfolio_for("new")
        ((('all_half', -1.5),), (('head_only', -2.0),))
        """
        loo = ((self.provenance.get("per_dataset") or {}).get(dataset) or {}).get("loo_portfolio")
        return self.portfolio if loo is None else tuple((str(a), float(r)) for a, r in loo)

    def holds_for(self) -> dict[str, Any]:
        """What the calibration was measured on: backbone, profile, resolution, schedule rule and
        the dataset sizes (median images a class, smallest and largest of its datasets; None
        when its provenance does not say).

        >>> cal = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu",
        ...                   schedule={"image_size": 64, "head_epochs": 2, "unfrozen_epochs": 2},
        ...                   provenance={"per_dataset": {"a": {"predictors": {"log10_images_per_class": 1.0}},
        ...                                               "b": {"predictors": {"log10_images_per_class": 2.0}}}})
        >>> cal.holds_for()
        {'backbone': 'r50', 'profile': 'cpu', 'image_size': 64, 'schedule': 'fixed: 2 + 2 epochs', 'images_per_class': [10.0, 100.0]}
        """
        sched = self.schedule
        logs = [float(v) for d in (self.provenance.get("per_dataset") or {}).values()
                if (v := ((d or {}).get("predictors") or {}).get("log10_images_per_class")) is not None]
        cap = sched.get("max_images_per_class")     # the sweep trained on at most this many a class
        if cap:
            logs = [min(v, math.log10(cap)) for v in logs]
        sized = (self.provenance.get("schedule_evidence") or {}).get("images_per_class")
        if sized:                                   # the schedule sweep's sizes (with_schedule) count too
            logs += [math.log10(float(v)) for v in sized]
        rule = sched.get("schedule_rule") or (f"fixed: {sched['head_epochs']} + {sched['unfrozen_epochs']} epochs"
                                              if "head_epochs" in sched else None)
        return {"backbone": self.backbone, "profile": self.profile, "image_size": sched.get("image_size"),
                "schedule": rule,
                "images_per_class": [round(10 ** min(logs), 1), round(10 ** max(logs), 1)] if logs else None}

    def outside(self, median_images_per_class: float | None) -> str | None:
        """Why a dataset of that size lies outside what the calibration measured (None: inside, or unknown).

        >>> cal = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu", provenance={"per_dataset": {
        ...     "a": {"predictors": {"log10_images_per_class": 1.5}}, "b": {"predictors": {"log10_images_per_class": 2.0}}}})
        >>> cal.outside(2000)
        'this dataset has a median 2000 images a class; the calibration measured 31.6 to 100: its advice is extrapolated'
        >>> cal.outside(50) is None
        True
        """
        span = self.holds_for()["images_per_class"]
        if span is None or median_images_per_class is None:
            return None
        low, high = span
        if low * 0.8 <= median_images_per_class <= high * 1.25:   # a class or two either way is no extrapolation
            return None
        return (f"this dataset has a median {median_images_per_class:g} images a class; the calibration measured "
                f"{low:g} to {high:g}: its advice is extrapolated")

    def with_schedule(self, fitted: "Calibration", *, tolerance: float = 0.1) -> "Calibration":
        """This calibration with the schedule a schedule sweep chose (``fitted``, from
        ``calibrate`` on ``bench run --grid schedule --sizes``), when that sweep chose the same
        depth arm and a rate within ``tolerance`` decades: the rate keeps this calibration's
        evidence (its band, runner-up and portfolio), the schedule and the sizes it holds for
        come from ``fitted``, whose evidence is kept in ``provenance["schedule_evidence"]``.

        >>> base = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu", schedule={"head_epochs": 2})
        >>> sized = Calibration(CalibratedRule("all_half", -2.5, steps=32), "r50", "cpu", provenance={
        ...     "studies": ["sched"], "per_dataset": {"a@10": {"predictors": {"log10_images_per_class": 1.0}}}})
        >>> both = base.with_schedule(sized)
        >>> both.rule.steps, both.schedule["schedule_rule"], both.holds_for()["images_per_class"]
        (32, '32 optimiser steps a phase (1 to 30 epochs)', [10.0, 10.0])
        >>> base.with_schedule(Calibration(CalibratedRule("all_half", -2.0, steps=32), "r50", "cpu"))
        Traceback (most recent call last):
        ...
        finetune_advisor.exceptions.CalibrationError: the schedule sweep's rate (all_half at 10^-2.00) is not this calibration's (all_half at 10^-2.50): refit the rate on it instead of combining
        """
        mine, theirs = self.rule, fitted.rule
        if (mine.arm != theirs.arm or mine.predictor != theirs.predictor
                or abs(mine.intercept - theirs.intercept) > tolerance + 1e-9):
            raise CalibrationError(f"the schedule sweep's rate ({theirs.arm} at 10^{theirs.intercept:.2f}) is not "
                                   f"this calibration's ({mine.arm} at 10^{mine.intercept:.2f}): refit the rate on "
                                   f"it instead of combining")
        if fitted.backbone != self.backbone or fitted.profile != self.profile:
            raise CalibrationError(f"the schedule sweep is for {fitted.backbone} at {fitted.profile}, this "
                                   f"calibration for {self.backbone} at {self.profile}")
        p = fitted.provenance
        sizes = sorted({round(10 ** v, 1) for d in (p.get("per_dataset") or {}).values()
                        if (v := ((d or {}).get("predictors") or {}).get("log10_images_per_class")) is not None})
        evidence = {"studies": p.get("studies"), "storage": p.get("storage"), "family": fitted.family,
                    "rule": theirs.to_dict(), "datasets": p.get("datasets"), "n_trials": p.get("n_trials"),
                    "images_per_class": sizes[:1] + sizes[-1:], "schedule_choice": p.get("schedule_choice"),
                    "loo_mean_regret": p.get("loo_mean_regret"), "kendall_tau": p.get("kendall_tau"),
                    "depth_by_size": p.get("depth_by_size"),
                    "created": p.get("created")}
        schedule = {**self.schedule}
        if theirs.steps is None:
            schedule.pop("schedule_rule", None)
        else:
            schedule["schedule_rule"] = theirs.describe_schedule()
        return replace(self, rule=replace(mine, steps=theirs.steps), schedule=schedule,
                       provenance={**self.provenance, "schedule_evidence": evidence})

    def depth_note(self, median_images_per_class: float | None) -> str | None:
        """Measured numbers for the depth the rule chose, at the sweep size nearest this dataset's
        (``provenance["depth_by_size"]``, or the schedule sweep's); None without them.

        >>> cal = Calibration(CalibratedRule("all_half", -2.5, steps=32), "r50", "cpu", provenance={"depth_by_size": [
        ...     {"images_per_class": 10, "n": 13, "rule": 0.63, "head_only": 0.58, "rule_ahead": 9}]})
        >>> print(cal.depth_note(12))
        in the calibration's sweep at 10 images a class, the whole network scored 0.630 against 0.580 for the head alone (mean of 13 datasets; ahead on 9)
        """
        rows = (self.provenance.get("depth_by_size")
                or (self.provenance.get("schedule_evidence") or {}).get("depth_by_size") or [])
        if not rows or not median_images_per_class or median_images_per_class <= 0:
            return None
        near = min(rows, key=lambda r: abs(math.log10(r["images_per_class"]) - math.log10(median_images_per_class)))
        return (f"in the calibration's sweep at {near['images_per_class']:g} images a class, the whole network scored "
                f"{near['rule']:.3f} against {near['head_only']:.3f} for the head alone (mean of {near['n']} "
                f"datasets; ahead on {near['rule_ahead']})")

    def rate_band(self, finder_lr: float | None = None) -> tuple["RateBand | None", str | None]:
        """``(band, None)`` from the calibration's sensitivity table, or ``(None, why)`` when it has
        none (a file fitted before ``calibrate`` wrote one): never an invented band.

        >>> Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu").rate_band()[1]
        "the calibration for r50 at cpu has no sensitivity table (fitted before it was written): no band; refit it with 'finetune-advisor calibrate'"
        """
        from ..measurements import RateBand

        table = self.provenance.get("sensitivity")
        why = (f"the calibration for {self.backbone} at {self.profile} has no sensitivity table (fitted before "
               f"it was written): no band; refit it with 'finetune-advisor calibrate'")
        try:
            band, off = table["band"], table["off"]
            x3 = max(off["x3_up"]["mean"], off["x3_down"]["mean"]), max(off["x3_up"]["worst"], off["x3_down"]["worst"])
            x10 = (max(off["x10_up"]["mean"], off["x10_down"]["mean"]),
                   max(off["x10_up"]["worst"], off["x10_down"]["worst"]))
            runner = table.get("runner_up") or {}
            low, high = 10.0 ** band["log10_lr_low"], 10.0 ** band["log10_lr_high"]
        except (TypeError, KeyError):
            return None, why
        outside = None if not finder_lr else not (low * 0.999 <= finder_lr <= high * 1.001)
        return RateBand(lr_low=low, lr_high=high, n_within=int(band["n_within"]), n_datasets=int(table["n_datasets"]),
                        cost_x3_mean=x3[0], cost_x3_worst=x3[1], cost_x10_mean=x10[0], cost_x10_worst=x10[1],
                        fastai_loss_mean=(table.get("fastai_fine_tune") or {}).get("mean"),
                        runner_up_arm=runner.get("arm"),
                        runner_up_lr=None if runner.get("log10_lr") is None else 10.0 ** runner["log10_lr"],
                        regret_rule_alone=runner.get("loo_regret_rule_alone"),
                        regret_try_both=runner.get("loo_regret_try_both"),
                        finder_lr=finder_lr, finder_outside=outside), None

    def expected_accuracy(self, probe_accuracy: float | None) -> tuple[tuple[float, float, float] | None, str | None]:
        """``((expected, low, high), None)`` from the linear probe's accuracy on the user's data, or
        ``(None, why)``: no probe measured, no fit in the file, or a probe that predicted no better
        than the calibration datasets' mean (:mod:`.expectation`).

        >>> cal = Calibration(CalibratedRule("all_half", -2.5), "r50", "cpu", provenance={"expected_accuracy": {
        ...     "useful": True, "intercept": 0.04, "slope": 0.97, "error_q10": -0.08, "error_q90": 0.1,
        ...     "n_datasets": 13, "probe_range": [0.5, 1.0]}})
        >>> cal.expected_accuracy(0.8)[0]
        (0.816, 0.736, 0.916)
        """
        fit = self.provenance.get("expected_accuracy")
        if not isinstance(fit, Mapping):
            return None, (f"the calibration for {self.backbone} at {self.profile} has no probe fit (fitted before "
                          f"it was written)")
        if not fit.get("useful"):
            return None, str(fit.get("why") or "the probe predicts nothing useful here")
        if probe_accuracy is None:
            return None, "the linear probe was not measured (it needs the cached LR range test)"
        try:
            value = fit["intercept"] + fit["slope"] * float(probe_accuracy)
            low, high = value + fit["error_q10"], value + fit["error_q90"]
        except (KeyError, TypeError):
            return None, "the calibration's probe fit is incomplete"
        clip = lambda v: round(min(max(v, 0.0), 1.0), 3)  # noqa: E731
        return (clip(value), clip(low), clip(high)), None

    def summary(self) -> dict[str, Any]:
        """What a Config records of the calibration it used."""
        out = {"backbone": self.backbone, "profile": self.profile, "family": self.family,
               "version": self.version, "rule": self.rule.to_dict(), "holds_for": self.holds_for(),
               "studies": list(self.provenance.get("studies", ())), "source": self.provenance.get("source", "")}
        if self.provenance.get("regret_curves"):      # the report's regret plot (about 100 numbers)
            out["regret_curves"] = self.provenance["regret_curves"]
        return out

    def mismatch(self, backbone: str, profile: str) -> str | None:
        """Why this calibration does not hold for ``backbone`` at ``profile`` (None: it does)."""
        if profile != self.profile:
            return f"calibrated for profile {self.profile!r}, not {profile!r}"
        if backbone != self.backbone:
            return f"calibrated for backbone {self.backbone!r}, not {backbone!r}"
        return None

    # --- the file -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": CALIBRATION_FORMAT, "version": self.version, "backbone": self.backbone,
                "profile": self.profile, "schedule": dict(self.schedule), "holds_for": self.holds_for(),
                "family": self.family,
                "rule": self.rule.to_dict(), "portfolio": [{"arm": a, "log10_lr": r} for a, r in self.portfolio],
                "provenance": to_jsonable(self.provenance)}

    def save(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "calibration") -> "Calibration":
        if not isinstance(data, Mapping) or data.get("format") != CALIBRATION_FORMAT:
            raise CalibrationError(f"{source} is not a finetune-advisor calibration "
                                   f"(format {data.get('format') if isinstance(data, Mapping) else None!r})")
        version = data.get("version")
        if version != CALIBRATION_VERSION:
            raise CalibrationError(f"{source} has calibration version {version!r}; this finetune-advisor reads "
                                   f"version {CALIBRATION_VERSION}",
                                   hint="refit it with 'finetune-advisor calibrate', or upgrade finetune-advisor")
        try:
            return cls(rule=CalibratedRule.from_dict(data["rule"]), backbone=str(data["backbone"]),
                       profile=str(data["profile"]), schedule=dict(data.get("schedule") or {}),
                       family=str(data.get("family", "constant")), provenance=dict(data.get("provenance") or {}),
                       version=int(version), portfolio=tuple((str(c["arm"]), float(c["log10_lr"]))
                                                             for c in data.get("portfolio") or ()))
        except (KeyError, TypeError) as exc:
            raise CalibrationError(f"{source} is incomplete or malformed: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CalibrationError(f"cannot read the calibration {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"the calibration {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=str(path))


_FIDELITY_KEYS = ("study", "image_size", "head_epochs", "unfrozen_epochs", "n_datasets", "mean_advice_gap", "holds")


def _fidelity_evidence(checks: Sequence[Mapping[str, Any]] | None) -> str:
    """The fidelity checks in words (a malformed entry, from a hand-edited file, is left out)."""
    ok = [c for c in checks or () if isinstance(c, Mapping) and all(k in c for k in _FIDELITY_KEYS)
          and isinstance(c["mean_advice_gap"], (int, float))]
    return "".join(f"; at {c['image_size']} px, {c['head_epochs']} + {c['unfrozen_epochs']} epochs on "
                   f"{c['n_datasets']} datasets ({c['study']}) it was {c['mean_advice_gap']:.3f} below each "
                   f"dataset's best cell on the mean: {'within' if c['holds'] else 'not within'} 1 point"
                   + _best_cell_evidence(c) for c in ok)


def _best_cell_evidence(check: Mapping[str, Any]) -> str:
    """Which cell of a fidelity check did best on the mean, and where its best rate lay."""
    cell, gap, move = check.get("best_mean_cell"), check.get("gap_to_best_mean_cell"), check.get("mean_lr_move_decades")
    text = ""
    if isinstance(cell, str) and cell != "calibrated" and isinstance(gap, (int, float)):
        text += f"; its best cell on the mean was {cell} (+{gap:.3f})"
    if isinstance(move, (int, float)) and abs(move) >= 0.05:
        text += f"; the best rate lay {abs(move):.2f} decades {'lower' if move < 0 else 'higher'} on average"
    return text


def _schedule_evidence(evidence: Mapping[str, Any] | None) -> str:
    if not evidence:
        return ""
    span = evidence.get("images_per_class") or []
    sizes = f" at {span[0]:g} to {span[-1]:g} images a class" if span else ""
    return f"; schedule fitted on {len(evidence.get('datasets') or ())} tasks{sizes} ({', '.join(evidence.get('studies') or ())})"


def shipped_calibrations() -> list[Calibration]:
    """The calibrations that ship inside the package."""
    if not SHIPPED_DIR.is_dir():
        return []
    return [Calibration.load(p) for p in sorted(SHIPPED_DIR.glob("*.json"))]


def find_calibration(backbone: str, profile: str, path: str | os.PathLike | None = None
                     ) -> tuple[Calibration | None, str | None]:
    """The calibration for ``backbone`` at ``profile``: the file at ``path`` when given (an
    error if it does not hold for them), else a shipped one. Returns ``(calibration, why_not)``:
    ``why_not`` says why none was found."""
    if path is not None:
        cal = Calibration.load(path)
        why = cal.mismatch(backbone, profile)
        if why:
            raise CalibrationError(f"the calibration {path} is {why}",
                                   hint="fit one for this backbone and profile with 'finetune-advisor calibrate', "
                                        "or use --policy study")
        return cal, None
    shipped = shipped_calibrations()
    for cal in shipped:
        if cal.mismatch(backbone, profile) is None:
            return cal, None
    have = ", ".join(f"{c.backbone} at {c.profile}" for c in shipped) or "none"
    return None, (f"no calibration for backbone {backbone!r} at profile {profile!r} (shipped: {have}); fit one "
                  f"with 'finetune-advisor bench run --grid calibration' and 'finetune-advisor calibrate'")


def _shared_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def nearest_calibration(backbone: str, profile: str) -> Calibration | None:
    """The shipped calibration to transfer to a pretrained ``backbone`` at ``profile`` that has
    none of its own: the same backbone first, then the backbone key sharing the longest prefix
    (``resnet50`` → ``resnet50_keras_v1``, ``resnet18`` → a ResNet's before an EfficientNet's),
    then the same profile. None when nothing ships.

    Why transfer rather than fall back to the study policy: in our measurements the study's
    rules trail fastai's ``fine_tune`` on every dataset, while the fitted rules are constant
    rates close to each other across backbones, and at 128 px the ResNet-50 rule tied
    ``fine_tune`` and led the study's rules by 18 points (``docs/bench/cpu-r50-ladder-128``);
    ``--policy study`` keeps the published rules.
    """
    shipped = shipped_calibrations()
    if not shipped:
        return None
    best = max(shipped, key=lambda c: (c.backbone == backbone, _shared_prefix(c.backbone, backbone),
                                       c.profile == profile))
    return best.transferred(backbone, profile)
