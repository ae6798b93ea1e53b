"""The format of a leave-one-dataset-out validation study, shared by the code that runs one
(:mod:`.validate`) and the code that tabulates it (:mod:`.loo_table`): its trial roles and
attrs, and the calibrated config a left-out rule gives a dataset (pure)."""
from __future__ import annotations

import dataclasses

from ..config import Config
from ..exceptions import CalibrationError
from ..heuristics.policies import ARMS, calibrated_plan
from .model import Calibration

__all__ = ["ROLES", "BENCH_ANCHORS", "VALIDATION_ATTR", "LOO_PREFIX", "KIND", "calibrated_config"]

# role -> trial label in the LOO study (the table's column order)
ROLES: dict[str, str] = {"calibrated": "anchor:calibrated", "fastai_fine_tune": "anchor:fastai_fine_tune",
                         "fastai_lr_find": "anchor:fastai_lr_find", "lr_find_valley": "anchor:lr_find_valley",
                         "study": "baseline", "oracle": "anchor:oracle"}
# bench's own anchors for a new validation: fastai_lr_find is what a fastai user does (learn.lr_find()
# on the frozen learner, fine_tune at its valley); lr_find_valley, the study policy at the cached
# test's valley, stays for comparison. A study already stamped keeps the anchors it was made with.
BENCH_ANCHORS = ("fastai_fine_tune", "fastai_lr_find", "lr_find_valley")
VALIDATION_ATTR = "validation"
LOO_PREFIX = "loo:"
KIND = "leave-one-dataset-out"
_EPOCH_FIELDS = ("head_epochs", "unfrozen_epochs")



def calibrated_config(baseline: Config, calibration: Calibration) -> Config:
    """The calibrated policy's Config for the dataset ``baseline`` was advised on.

    The rates and depth come from :func:`~finetune_advisor.heuristics.policies.calibrated_plan`
    (the rule, on the baseline's measurements: similarity, LR finder, LogME, probe, images per
    class); every other field is the baseline's, which the two policies share. The epochs are the
    baseline's bench schedule, spent as the calibration sweep spent them (head only: the whole
    budget on the head), so the config is in the sweep's protocol.

    Examples
    --------
    >>> from finetune_advisor.heuristics.policies import CalibratedRule
    >>> cal = Calibration(CalibratedRule("head_only", -2.0), backbone="toynet", profile="cpu",
    ...                   provenance={"datasets": ["a", "b"]})
    >>> base = Config(lr=1e-3, lr_finetune=1e-4, fine_tune="all", head_epochs=2, unfrozen_epochs=2)
    >>> cfg = calibrated_config(base, cal)
    >>> cfg.lr, cfg.fine_tune, cfg.head_epochs, cfg.unfrozen_epochs, cfg.measurements.policy
    (0.01, 'none', 4, 0, 'calibrated')
    """
    m = baseline.measurements
    key = m.similarity.backbone_key if m.similarity is not None else None
    if key and key != calibration.backbone:
        raise CalibrationError(f"the calibration holds for backbone {calibration.backbone!r}, but the baseline "
                               f"was advised with {key!r}",
                               hint="advise the validation's baselines with the sweep's backbone")
    plan = calibrated_plan(m, calibration.rule, profile_name=baseline.profile, evidence=calibration.evidence())
    values = {k: d.value for k, d in plan.items() if k not in _EPOCH_FIELDS}
    reasons = {k: d.reason for k, d in plan.items() if k not in _EPOCH_FIELDS}
    total = baseline.head_epochs + baseline.unfrozen_epochs
    head_only = ARMS[calibration.rule.arm][0] == "none"
    values["head_epochs"], values["unfrozen_epochs"] = (total, 0) if head_only else \
        (baseline.head_epochs, baseline.unfrozen_epochs)
    sched = f"the bench schedule ({baseline.head_epochs} + {baseline.unfrozen_epochs} epochs)"
    reasons["head_epochs"] = (f"calibrated: head only, {sched} all on the head" if head_only
                              else f"calibrated: {sched}, as in the calibration sweep")
    reasons["unfrozen_epochs"] = "head only → no unfrozen epochs" if head_only else reasons["head_epochs"]
    measurements = m.replace(policy="calibrated", calibration=calibration.summary(),
                             alternatives={**m.alternatives, "study": {k: getattr(baseline, k) for k in plan}})
    all_reasons = {**baseline.reasons, **reasons} if baseline.reasons else {}
    return dataclasses.replace(baseline, **values, reasons=all_reasons, measurements=measurements)
