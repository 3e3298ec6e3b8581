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


def solver_check(log_prob, points, solver, n, reference=None, rungs=None) -> Dict[str, Any]:
    """How far the test NLL's ``solver`` is from a tighter reference on the first ``n`` points, and whether it has
    converged (a sharp field near t = 1 can make either solver the less accurate one).

    A fixed-step ``solver`` (``steps``, e.g. rk4-256) is compared with dopri5 at atol = rtol = 1e-6, along with the
    same method at ``rungs`` times the steps (``rk4_ladder``; default 1x, 2x, 4x). An adaptive one (``atol`` /
    ``rtol``, e.g. dopri5 at 1e-6) is compared with itself at 1/100 of its tolerances, along with its tolerances
    divided by ``rungs`` (``tolerance_ladder``; default 1 and 10). ``reference`` replaces the default reference. Each ladder entry has
    ``mean_nll_minus_dopri5``: the entry's mean NLL minus the reference's, on the same points."""
    x = points[:n]
    if "steps" in solver:
        ref = {"method": "dopri5", "atol": 1e-6, "rtol": 1e-6}
        ladder = [{**solver, "steps": solver["steps"] * k} for k in (rungs or (1, 2, 4))]
        name = "rk4_ladder"
    elif "atol" in solver and "rtol" in solver:
        ref = {**solver, "atol": solver["atol"] / 100, "rtol": solver["rtol"] / 100}
        ladder = [{**solver, "atol": solver["atol"] / k, "rtol": solver["rtol"] / k} for k in (rungs or (1, 10))]
        name = "tolerance_ladder"
    else:
        raise ValueError(f"solver: expected fixed steps ('steps') or tolerances ('atol', 'rtol'), got {solver!r}")
    ref = dict(reference) if reference is not None else ref
    with torch.no_grad():
        t0 = time.perf_counter()
        b = log_prob(x, **ref).double()
        seconds = time.perf_counter() - t0
        lps = [log_prob(x, **rung).double() for rung in ladder]
    d = (lps[0] - b).abs()
    keys = [k for k in ("steps", "atol", "rtol") if k in solver]
    return {"reference": ref, "solver": solver, "n": int(x.shape[0]), "max_abs_diff": float(d.max()),
            "mean_abs_diff": float(d.mean()), "mean_nll_diff": float((b - lps[0]).mean()),
            "reference_seconds": seconds,
            name: [{**{k: rung[k] for k in keys}, "mean_nll_minus_dopri5": float((b - lp).mean()),
                    "max_abs_diff_dopri5": float((lp - b).abs().max()),
                    "mean_nll_minus_finest": float((lps[-1] - lp).mean())}
                   for rung, lp in zip(ladder, lps)]}
