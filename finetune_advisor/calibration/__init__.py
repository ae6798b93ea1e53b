"""The calibrated policy's evidence: the calibration file (:mod:`.model`) and the fit
(:mod:`.fit`). Reading bench studies (:mod:`.sweep`) is imported on demand: it needs ``bench``,
which itself runs ``recommend``."""
from __future__ import annotations

from .fit import Curves, LeaveOneOut, fit_family, kendall_taus, leave_one_out
from .model import Calibration, CalibrationError, find_calibration, nearest_calibration, shipped_calibrations

__all__ = ["Calibration", "CalibrationError", "find_calibration", "nearest_calibration", "shipped_calibrations", "Curves",
           "fit_family", "leave_one_out", "LeaveOneOut", "kendall_taus"]
