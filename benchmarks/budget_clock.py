"""Training under a time budget, scored along the way: the clock (CPU or wall time, evaluation taken off), the
checkpoint hook that scores a model when the clock passes each mark, and the solver check of a test NLL.
Shared by ``fire_budget.py`` (posegen) and ``fire_baseline.py`` (flow_matching), which run side by side."""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List

import torch

__all__ = ["Clock", "score", "checkpoint_hook", "solver_check"]


class Clock:
    """Training time on the wall and CPU clocks, with pauses (evaluation) taken off both."""

    def __init__(self, kind: str = "cpu"):
        if kind not in ("cpu", "wall"):
            raise ValueError(f"clock must be 'cpu' or 'wall', got {kind!r}")
        self.kind = kind
        self.start()

    def start(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        self.pw = self.pc = 0.0

    def wall(self) -> float:
        return time.perf_counter() - self.w0 - self.pw

    def cpu(self) -> float:
        return time.process_time() - self.c0 - self.pc

    def __call__(self) -> float:
        return self.cpu() if self.kind == "cpu" else self.wall()

    def pause(self):
        return time.perf_counter(), time.process_time()

    def resume(self, paused):
        self.pw += time.perf_counter() - paused[0]
        self.pc += time.process_time() - paused[1]


def score(log_prob_fn, points: torch.Tensor) -> Dict[str, float]:
    with torch.no_grad():
        lp = log_prob_fn(points).double()
    nll = -lp
    return {"nll": float(nll.mean()), "sem": float(nll.std() / math.sqrt(nll.numel())),
            "finite": bool(torch.isfinite(lp).all())}


def checkpoint_hook(clock: Clock, minutes: List[float], evaluate, record: List[Dict[str, Any]]):
    """``hook(step)``: at the first step past each checkpoint, ``evaluate()`` (a dict) with the clock paused."""
    todo = sorted(minutes)

    def hook(step: int) -> None:
        while todo and clock() >= 60.0 * todo[0]:
            m = todo.pop(0)
            row = {"minutes": m, "train_cpu_s": clock.cpu(), "train_wall_s": clock.wall(), "step": int(step)}
            paused = clock.pause()
            t0 = time.perf_counter()
            row.update(evaluate())
            row["eval_s"] = time.perf_counter() - t0
            clock.resume(paused)
            record.append(row)
            print(f"  [{record[-1].get('model', '')}] {m:g} min: step {step}, test NLL {row['nll']:.3f} "
                  f"(eval {row['eval_s']:.0f} s)", flush=True)

    return hook


def solver_check(log_prob, points, solver, n) -> Dict[str, Any]:
    """rk4 against dopri5 (atol = rtol = 1e-6) on the first ``n`` points: the error of the test NLL's solver,
    and the same rk4 with 2x and 4x the steps (whether the fixed-step figure has converged, and towards what:
    a sharp field near t = 1 can make either solver the less accurate one)."""
    ref = {"method": "dopri5", "atol": 1e-6, "rtol": 1e-6}
    x = points[:n]
    with torch.no_grad():
        b = log_prob(x, **ref).double()
        ladder = {}
        for k in (1, 2, 4):
            lp = log_prob(x, **{**solver, "steps": solver["steps"] * k}).double()
            ladder[k] = lp
    a = ladder[1]
    d = (a - b).abs()
    return {"reference": ref, "solver": solver, "n": int(x.shape[0]), "max_abs_diff": float(d.max()),
            "mean_abs_diff": float(d.mean()), "mean_nll_diff": float((b - a).mean()),
            "rk4_ladder": [{"steps": solver["steps"] * k, "mean_nll_minus_dopri5": float((b - lp).mean()),
                            "max_abs_diff_dopri5": float((lp - b).abs().max()),
                            "mean_nll_minus_finest": float((ladder[4] - lp).mean())}
                           for k, lp in ladder.items()]}
