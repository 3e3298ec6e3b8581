"""The learning-rate schedule of the one training loop: linear warm-up, then cosine to 5 % of the peak."""

from __future__ import annotations

import math

__all__ = ["LR_SCHEDULES", "lr_factor"]

LR_SCHEDULES = ("cosine", "constant")
#: the cosine ends at this fraction of the peak learning rate rather than at 0, so the last steps still move
FINAL_FRACTION = 0.05


def lr_factor(step: int, progress: float, *, warmup: int, kind: str = "cosine") -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based).

    ``progress`` in ``[0, 1]`` is the share of the budget spent (the larger of the step and time fractions);
    ``warmup`` steps ramp linearly from ``1 / warmup`` to 1. ``kind="constant"`` keeps 1 after the warm-up.
    """
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if kind == "constant":
        return warm
    progress = min(1.0, max(0.0, progress))
    return warm * (FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))
