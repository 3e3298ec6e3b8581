"""Train one model and measure it: test NLL with a solver check, the normalisation spot check, timings.

Used by ``earth_nll.py`` and ``robot_nll.py``; one call of :func:`fit_and_evaluate` is one table cell of one
seed. Everything runs in posegen's public API (``PoseFlow``, ``train``, ``log_prob``).
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, Optional

import torch

from posegen import PoseFlow
from posegen.paths.proposal import near_data_points
from posegen.training import train

import budget_clock
from common import Timer


def nll_stats(lp: torch.Tensor) -> Dict[str, float]:
    """Mean NLL of log-densities ``lp (N,)`` with its standard error and the number of points."""
    nll = -lp.double()
    n = nll.numel()
    return {"nll": float(nll.mean()), "nll_sem": float(nll.std() / math.sqrt(n)) if n > 1 else None, "n": n}


def solver_check(flow: PoseFlow, points: torch.Tensor, solver: Dict[str, Any], n: int = 64,
                 reference: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """How far ``solver`` is from a tighter reference (dopri5 at 1e-6 for fixed steps) on the first ``n`` points:
    max and mean absolute difference of ``log_prob`` (:func:`budget_clock.solver_check` with the solver itself as
    the only rung). Moser flows have a closed-form density (no ODE), so their check is skipped."""
    if flow.parametrization == "moser":
        return {"skipped": "moser density is closed form (no ODE)"}
    if n < 1:
        return {"skipped": "no points requested (n = 0)"}
    return budget_clock.solver_check(flow.log_prob, points, solver, n, reference=reference, rungs=(1,))


def mc_normalisation(flow: PoseFlow, n: int, train_points: torch.Tensor, solver: Dict[str, Any], seed: int = 0,
                     kde_sigma=(0.1, 0.03, 0.01), kde_points: int = 2048) -> Dict[str, Any]:
    r"""Monte Carlo estimates of ``\int exp(log_prob) dvol`` (should be 1 within its standard error).

    Two independent estimators, each ``mean(p(x) / q(x))`` over ``x ~ q`` with ``q`` known and normalised:

    * ``base``: ``q`` = the flow's base distribution mapped to user coordinates (uniform on compact
      manifolds, so on S2 this is ``4 pi * mean p(x)`` over uniform ``x``); unbiased, but with a large
      variance when the model is concentrated;
    * ``defensive``: ``q = base / 2 + mean_k KDE_k / 2``, each KDE being posegen's path kernels at ``t = 1``
      around up to ``kde_points`` training points with ``sigma_min`` one of ``kde_sigma`` (standardised units;
      angular width on compact factors): :func:`posegen.paths.proposal.near_data_points` with ``near = 0.5``
      (draws in exact shares, weighed by the whole mixture). Covers the data's modes at several widths, so its
      standard error is smaller when the model is concentrated near the data.

    ``n`` points per estimator. Returns estimates, standard errors and effective sample sizes.
    """
    M = flow.manifold
    g = torch.Generator().manual_seed(10_000 + int(seed))
    dtype = flow.dtype
    out: Dict[str, Any] = {"n": int(n)}
    z_base = M.sample_base(n, generator=g, dtype=dtype)
    centres = flow.to_internal(train_points.to(dtype))
    if centres.shape[0] > kde_points:
        centres = centres[torch.randperm(centres.shape[0], generator=g)[:kde_points]]
    sigmas = [float(kde_sigma)] if isinstance(kde_sigma, (int, float)) else [float(x) for x in kde_sigma]
    z_def, w_def = near_data_points(M, centres, n, 0.5, sigmas, generator=g)
    log_abs_det = float(flow.log_abs_det)

    def estimate(z, log_q_internal):
        x = M.projx(flow.from_internal(z))
        lp = flow.log_prob(x, **solver).double()
        log_w = lp - (log_q_internal.double() - log_abs_det)
        w = log_w.exp()
        mean = float(w.mean())
        sem = float(w.std() / math.sqrt(w.numel()))
        ess = float(w.sum() ** 2 / (w * w).sum()) if float(w.sum()) > 0 else 0.0
        return {"estimate": mean, "sem": sem, "ess": ess, "z_score": (mean - 1) / sem if sem > 0 else None}

    with Timer() as t:
        out["base"] = estimate(z_base, M.base_log_prob(z_base))
        out["defensive"] = estimate(z_def, -w_def.log())
    out["seconds"] = t.s
    out["kde_sigma"] = sigmas
    return out


def training_curve(history) -> list:
    """``[(step, train_seconds, val_nll)]`` from the trainer's metrics history: cumulative training time
    (validation excluded) from the per-window ``it_per_s``, at every validation."""
    curve, t, last = [], 0.0, 0
    for rec in history:
        if "it_per_s" in rec and rec["it_per_s"]:
            t += (rec["step"] - last) / rec["it_per_s"]
            last = rec["step"]
        if rec.get("val_nll") is not None:
            curve.append([rec["step"], t, rec["val_nll"]])
    return curve


def fit_and_evaluate(manifold: str, train_data, val_data, test_points: torch.Tensor, objective: str, *,
                     seed: int, steps: int, batch_size: int, hidden: int, depth: int, lr: float,
                     val_every: int, patience: int, val_solver: Dict[str, Any], test_solver: Dict[str, Any],
                     objective_options: Optional[Dict[str, Any]] = None, check_points: int = 64,
                     mc_points: int = 2048, mc_solver: Optional[Dict[str, Any]] = None,
                     kde_sigma=(0.1, 0.03, 0.01), train_options: Optional[Dict[str, Any]] = None):
    """Train a PoseFlow on ``manifold`` with ``objective`` (seeded), keep the best validated EMA model, and
    evaluate it on ``test_points``. ``train_options`` go to ``posegen.train`` as they are (e.g.
    ``weight_decay``, ``ema_decay``) and are recorded in the row. Returns ``(row, flow)``: one JSON-ready row (settings, NLL, checks,
    timings, training curve) and the trained flow."""
    torch.manual_seed(seed)
    param = "moser" if objective == "moser" else "cnf"
    flow = PoseFlow(manifold, hidden=hidden, depth=depth, parametrization=param)
    t0 = time.perf_counter()
    res = train(flow, train_data, objective, val_data=val_data, steps=steps, batch_size=batch_size, lr=lr,
                seed=seed, val_every=val_every, log_every=min(50, val_every), patience=patience,
                val_points=100_000, val_solver=val_solver, checkpoint_every=10 ** 9, progress=False,
                objective_options=dict(objective_options or {}), device="cpu", **dict(train_options or {}))
    train_s = time.perf_counter() - t0
    flow = res.flow.eval()
    curve = training_curve(res.history)
    train_only_s = curve[-1][1] if curve else train_s
    row: Dict[str, Any] = {
        "manifold": manifold, "objective": objective, "objective_options": dict(objective_options or {}),
        "seed": seed, "steps": steps, "steps_done": res.steps_done, "best_step": res.best_step,
        "best_val_nll": res.best_val_nll, "stopped_early": res.stopped_early, "hidden": hidden, "depth": depth,
        "batch_size": batch_size, "lr": lr, "train_options": dict(train_options or {}), "n_train": int(len(train_data.points)),
        "n_val": int(len(val_data.points)), "n_test": int(test_points.shape[0]),
        "train_seconds": train_s, "train_seconds_excl_val": train_only_s,
        "steps_per_s": res.steps_done / train_only_s if train_only_s > 0 else None, "curve": curve,
    }
    with Timer() as t:
        lp = flow.log_prob(test_points, **test_solver)
    row["test"] = {**nll_stats(lp), "solver": test_solver, "seconds": t.s, "finite": bool(torch.isfinite(lp).all())}
    row["solver_check"] = solver_check(flow, test_points, test_solver, n=check_points)
    if mc_points:
        row["normalisation"] = mc_normalisation(flow, mc_points, train_data.points, mc_solver or test_solver,
                                                seed=seed, kde_sigma=kde_sigma)
        row["normalisation"]["solver"] = mc_solver or test_solver
    row["total_seconds"] = time.perf_counter() - t0
    return row, flow
