"""Which machine the advice is for: ``--profile auto`` picks the schedule by the accelerator torch sees.

``paper`` (the study's 224 px, 5 + 15 epochs) where torch finds a CUDA or Apple MPS device; ``cpu``
(64 px, 2 + 2 epochs) otherwise. torch is imported when asked, not at import time.
"""
from __future__ import annotations

__all__ = ["AUTO_PROFILE", "accelerator", "auto_profile"]

AUTO_PROFILE = "auto"


def accelerator() -> str | None:
    """The accelerator torch can train on, in words (``"CUDA device NVIDIA H200"``), or None."""
    import torch

    if torch.cuda.is_available():
        try:
            name = torch.cuda.get_device_name(0)
        except Exception:        # a driver that answers is_available but not the name
            name = "0"
        return f"CUDA device {name}"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS device"
    return None


def auto_profile(found: str | None = None) -> tuple[str, str]:
    """``(profile, why)`` for ``found`` (default: :func:`accelerator`).

    >>> auto_profile("CUDA device NVIDIA H200")
    ('paper', 'auto: torch found a CUDA device NVIDIA H200')
    """
    found = accelerator() if found is None else found
    if found:
        return "paper", f"auto: torch found a {found}"
    return "cpu", "auto: torch found no CUDA or MPS device"
