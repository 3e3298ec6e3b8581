"""Settings and results of the one training loop (plain data, stored in checkpoints)."""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..solvers.defaults import preview_solver
from .schedule import LR_SCHEDULES

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "DEFAULT_OBJECTIVE", "make_config"]

# The default objective is the one benchmarks/RESULTS.md favours on posegen's main use, robot manifolds:
# at equal steps (1500, width 64, 2-core CPU) RFM reached test NLL 0.78 on Panda joints (T7), -4.6 on the
# end-effector pose (R3 x SO3) and -4.0 on the full configuration (R3 x T7 x S3), where CNFM reached 5.1,
# -0.4 and 17.7, and RFM steps are 4-20x cheaper. CNFM leads on the earth sets (S2) at equal steps (e.g.
# fire 0.74 vs 1.06), so the earth configs use it.
DEFAULT_OBJECTIVE = "rfm"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


#: what ``max_minutes`` counts: elapsed time, or this process's CPU time
CLOCKS = ("wall", "cpu")


@dataclass
class TrainConfig:
    """Settings of :class:`~posegen.training.Trainer` (all plain data, stored in checkpoints).

    The budget is ``steps`` (optimiser steps), ``max_minutes`` (minutes of training), or both: training stops
    at whichever runs out first, and the cosine schedule follows the larger of the two fractions spent, so a
    time-limited run still ends at the low learning rate. ``clock`` says which minutes: ``"wall"`` (elapsed
    time) or ``"cpu"`` (this process's CPU time, all its threads: on a shared machine the compute the run got,
    not the neighbours' load). Validation is off the clock in both. ``val_every=0`` switches
    validation off; ``checkpoint_every=0`` writes the training state only at the end.
    """

    objective: str = DEFAULT_OBJECTIVE
    objective_options: Dict[str, Any] = field(default_factory=dict)
    steps: Optional[int] = 2000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    warmup: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 50
    val_every: int = 500
    val_points: int = 2048
    val_solver: Dict[str, Any] = field(default_factory=preview_solver)
    patience: int = 0
    checkpoint_every: int = 500
    augment_so3: bool = True
    bf16: bool = False
    fit_standardization: bool = True
    device: Optional[str] = None
    progress: bool = True
    max_minutes: Optional[float] = None
    clock: str = "wall"
    compile: bool = False

    def __post_init__(self):
        if self.steps is None and self.max_minutes is None:
            raise ValueError("give a budget: steps (optimiser steps) or max_minutes (or both)")
        positive = ["batch_size", "log_every", "val_points"] + (["steps"] if self.steps is not None else [])
        for name in positive:
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("val_every", "checkpoint_every", "patience", "warmup"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{name} must be an integer >= 0 (0 switches it off), got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f'Invalid lr_schedule "{self.lr_schedule}". Must be one of {sorted(LR_SCHEDULES)}')
        if self.clock not in CLOCKS:
            raise ValueError(f'Invalid clock "{self.clock}". Must be one of {sorted(CLOCKS)}')
        if self.max_minutes is not None and not (float(self.max_minutes) > 0 and math.isfinite(self.max_minutes)):
            raise ValueError(f"max_minutes must be a positive number or None, got {self.max_minutes!r}")


def make_config(config: Optional[TrainConfig] = None, **options) -> TrainConfig:
    """``config`` (or the defaults) with keyword ``options`` overriding its fields; an unknown option is a
    TypeError that suggests the closest field name."""
    base = asdict(config) if config is not None else {}
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - known
    if unknown:
        hints = []
        for u in sorted(unknown):
            close = difflib.get_close_matches(u, known, 1)
            hints.append(f"{u!r} (did you mean {close[0]!r}?)" if close else repr(u))
        raise TypeError(f"unknown training option(s) {', '.join(hints)}; valid: {sorted(known)}")
    return TrainConfig(**{**base, **options})


@dataclass
class TrainResult:
    """What :meth:`~posegen.training.Trainer.fit` returns: the trained flow (EMA weights, the best validated
    ones when there was validation), the logged records and how the run ended."""

    flow: Any
    history: List[Dict[str, Any]]
    best_val_nll: Optional[float]
    best_step: Optional[int]
    steps_done: int
    stopped_early: bool
    out_dir: Optional[Path]
    seconds: float = 0.0               # training time on the budget's clock (``TrainConfig.clock``)
    validation_seconds: float = 0.0    # this session's validations on that clock (off the budget)
