r"""``IKSampler``: a learned distribution of IK solutions ``p(q | pose)``, refined by :func:`.ik.solve_ik`.

>>> ik = IKSampler("panda")
>>> ik.fit(max_minutes=10, seed=0)                       # FK samples of uniform joints, drawn fresh each step
>>> out = ik.sample(targets, 50, seed=0, refine=True)   # targets (T, 7) x, y, z, qx, qy, qz, qw
>>> out["joints"], out["success"]                       # (T, 50, dof) inside the limits, (T, 50) bool
>>> ik.save("ik_panda.pt"); ik = IKSampler.load("ik_panda.pt")

The model is a conditional :class:`~posegen.PoseFlow` on the robot's joint manifold (``Interval`` factors, so
every sample is inside the limits by construction) trained with Riemannian Flow Matching. With
``full_turns=True``, joints whose limits span a full turn or more (the UR5e's ``[-2 pi, 2 pi]``) are angles in
the model and each sample is lifted to a copy inside the limits (:mod:`.turns`): the pose fixes the angle, not
the copy. The condition is
:func:`pose_features`: the position and the 9 entries of the rotation matrix. A quaternion would not do: ``q``
and ``-q`` are one pose, and a network fed quaternions sees two far-apart inputs for it (and a jump where the
sign convention flips); the rotation matrix is a continuous, sign-free function of the pose. The flow
standardises the features with their training mean and std.

Training data are forward kinematics of joints drawn uniformly inside the limits. By default they are drawn
fresh every step (``n_samples=None``): FK costs ~4 ms per 1000 rows on one CPU core, far less than the step,
and the model never sees a sample twice, so there is no overfitting to a finite set.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from .ik import parse_targets, pose_errors, solve_ik
from .loader import as_robot
from .turns import FullTurns

__all__ = ["IKSampler", "pose_features", "POSE_FEATURES", "DEFAULT_SAMPLE_SOLVER", "REFINE_SAMPLE_SOLVER",
           "REFINE_TEMPERATURE", "RANKINGS"]

#: width of :func:`pose_features`: position (3) and rotation matrix (9)
POSE_FEATURES = 12
#: default sampling integrator: measured on Panda (benchmarks/ik.py) against rk4 x 32, rk4 x 8 loses little
#: accuracy at a quarter of the cost
DEFAULT_SAMPLE_SOLVER = {"method": "rk4", "steps": 8}
#: sampling integrator when the samples are refined anyway: DLS needs a start in the right basin, not a precise
#: one. With the sufficient-decrease DLS, on 100 held-out targets x 50 (thread CPU time per 1000 exact solutions,
#: success): Panda rk4 x 4 / rk4 x 2 / midpoint x 2 / euler x 2: 0.35 / 0.27 / 0.26 / 0.22 s, all >= 99.94 %, but
#: mean pairwise distance 4.55 / 4.53 / 4.47 / 3.95 rad (few Euler steps average the branches together); midpoint
#: x 2 (4 network evaluations) keeps the spread at a third of rk4 x 4's cost
REFINE_SAMPLE_SOLVER = {"method": "midpoint", "steps": 2}
#: base temperature of refined draws. Measured on 200 held-out targets x 50 (benchmarks/ik.py's protocol, 20-min
#: Panda and 10-min iiwa14 models): mean pairwise distance of the exact solutions 3.99 / 4.34 / 4.46 rad at
#: temperature 1 / 1.4 / 1.6 on the Panda (DLS from random starts: 4.34), 5.27 / 5.53 / 5.70 at 1 / 1.3 / 1.6
#: on the iiwa14 (5.49), success 99.9 % or more throughout; at 2 the iiwa14's fell to 99.91 %. DLS from random
#: starts spreads its solutions partly by leaving 15 % of them on a joint limit; a wider draw does the same.
REFINE_TEMPERATURE = 1.6
#: what ``IKSampler.sample(rank=...)`` orders the rows of a target by, after validity
RANKINGS = ("clearance", "density", "near")


def pose_features(pos: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Condition vector of poses: ``pos (..., 3)``, ``R (..., 3, 3)`` -> ``(..., 12)`` (position, row-major
    rotation matrix). Invariant to the quaternion's sign by construction."""
    return torch.cat([pos, R.reshape(*R.shape[:-2], 9)], -1)


def _take_rows(out: Dict[str, torch.Tensor], idx: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The rows ``idx (T, k)`` of every ``(T, m)`` or ``(T, m, dof)`` entry of ``out``."""
    return {k: v.gather(1, idx if v.dim() == 2 else idx[..., None].expand(-1, -1, v.shape[-1])) for k, v in out.items()}


def _valid(out: Dict[str, torch.Tensor]) -> torch.Tensor:
    """``(T, m)``: refined rows that succeeded, and are collision-free when a checker scored them."""
    return out["success"] & out["collision_free"] if "collision_free" in out else out["success"]


def _order(out: Dict[str, torch.Tensor], score: torch.Tensor) -> torch.Tensor:
    """``(T, m)`` row order: successes (when refined) before failures, then collision-free rows (with a checker)
    before colliding ones, and within each of those tiers ascending ``score (T, m)``; ties keep the draw order.
    Two stable sorts rather than one key of big offsets: a score (a log-density, say) may have any scale."""
    tier = torch.zeros(score.shape, dtype=torch.int8, device=score.device)
    if "success" in out:
        tier += 2 * (~out["success"]).to(torch.int8)
    if "collision_free" in out:
        tier += (~out["collision_free"]).to(torch.int8)
    by_score = torch.sort(score, dim=1, stable=True).indices
    return by_score.gather(1, torch.sort(tier.gather(1, by_score), dim=1, stable=True).indices)


def _robot_ref(robot) -> Dict[str, Any]:
    """How to load ``robot`` again: a built-in name, or the description file and the ee link."""
    from .descriptions import BUILTIN_ROBOTS

    src = robot.description.source
    if robot.name in BUILTIN_ROBOTS and src.startswith("<built-in"):
        return {"name": robot.name, "ee_link": robot.ee_link}
    return {"path": str(src), "ee_link": robot.ee_link}


class IKSampler:
    """Samples joint configurations that reach end-effector poses, ``p(q | pose)``, for one robot.

    Args:
        robot: a :class:`~posegen.robots.Robot` or anything :func:`posegen.robots.load` takes (``"panda"``).
        hidden, depth, conditioning, activation, time_freqs: settings of the velocity network
            (:class:`~posegen.PoseFlow`). The defaults (256 x 4, concat) and fit's (batch 512, lr 3e-3) won a
            2-minute comparison on Panda on one CPU core (benchmarks/RESULTS.md, "IK distributions"): steps
            count more than width there; 512 x 5 with batch 1024 gets a tenth of the steps and is far worse.
        solver: default sampling integrator (default :data:`DEFAULT_SAMPLE_SOLVER`).
        full_turns: model joints whose limits span a full turn as angles and lift samples to a copy inside the
            limits (:class:`~posegen.robots.turns.FullTurns`), exact for the training law; default ``False``
            (the whole interval) because it did not pay on the UR5e: after 37367 steps each, raw 131 mm / 114 deg
            as a torus against 124 mm / 97 deg on the interval, refined 99.38 vs 99.86 % exact (100 held-out
            targets x 50), though ahead at 8200 steps (142 vs 251 mm at 7600).
    """

    def __init__(self, robot, *, hidden: int = 256, depth: int = 4, conditioning: str = "concat",
                 activation: str = "silu", time_freqs: int = 4, solver: Optional[Dict[str, Any]] = None,
                 full_turns: bool = False, _flow=None):
        from ..flow import PoseFlow

        self.robot = as_robot(robot)
        if _flow is not None:  # a loaded flow says itself whether it models full turns as angles
            full_turns = _flow.manifold != self.robot.manifold
        self.turns = FullTurns(self.robot, enabled=full_turns)
        self.flow = _flow if _flow is not None else PoseFlow(
            self.turns.manifold, hidden=hidden, depth=depth, cond_dim=POSE_FEATURES, conditioning=conditioning,
            activation=activation, time_freqs=time_freqs, solver=dict(DEFAULT_SAMPLE_SOLVER, **(solver or {})))
        if self.flow.cond_dim != POSE_FEATURES or self.flow.manifold != self.turns.manifold:
            raise ValueError(f"IKSampler: the flow must be on {self.turns.manifold!r} with cond_dim "
                             f"{POSE_FEATURES}, got {self.flow.manifold!r} with cond_dim {self.flow.cond_dim}")
        self.training: Dict[str, Any] = {}  # what fit() did: steps, time, samples seen, settings

    def __repr__(self) -> str:
        c = self.flow.config
        return (f"IKSampler(robot={self.robot.name!r}, hidden={c['hidden']}, depth={c['depth']}, "
                f"conditioning={c['conditioning']!r}, trained_steps={self.training.get('steps', 0)})")

    # ------------------------------------------------------------------------------ data
    def draw(self, n: int, generator: torch.Generator, dtype=torch.float32, device=None):
        """``n`` training pairs: joints ``(n, dof)`` uniform inside the limits (drawn on the CPU from
        ``generator``, so a seed gives the same data on any device) and their pose features ``(n, 12)``."""
        q = self.robot.manifold.sample_base(n, generator=generator, dtype=dtype).to(device)
        with torch.no_grad():
            T = self.robot.fk(q)
        return q, pose_features(T[..., :3, 3], T[..., :3, :3])

    def conditions(self, targets, quat_order: str = "xyzw", dtype=None, device=None) -> torch.Tensor:
        """Checked targets ``(T, 7)`` -> condition rows ``(T, 12)`` (ValueError for bad rows, see
        :func:`~posegen.robots.ik.parse_targets`)."""
        pos, R = parse_targets(targets, quat_order, dtype=dtype or self.flow.dtype, device=device or self.flow.device)
        return pose_features(pos, R)

    # ------------------------------------------------------------------------------ training
    def fit(self, steps: Optional[int] = None, *, max_minutes: Optional[float] = None, batch_size: int = 512,
            lr: float = 3e-3, weight_decay: float = 0.0, warmup: int = 200, grad_clip: float = 1.0,
            ema_decay: float = 0.999, seed: int = 0, n_samples: Optional[int] = None, device=None,
            time_sampling: str = "uniform",
            log_every: int = 100, callback: Optional[Callable[[Dict[str, Any]], None]] = None,
            verbose: bool = False) -> "IKSampler":
        """Train ``p(q | pose)`` with Riemannian Flow Matching on FK samples of uniform joints.

        Args:
            steps: optimiser steps (at most). At least one of ``steps`` and ``max_minutes`` is required.
            max_minutes: wall-clock budget; training stops when it is spent. The learning-rate schedule
                (linear warm-up, cosine to 5 % of ``lr``) follows the larger of the step and time fractions,
                so a time-limited run still anneals.
            batch_size, lr, weight_decay, warmup, grad_clip, ema_decay: AdamW and EMA settings; the shipped
                weights are the EMA ones.
            seed: seeds the data and the objective's draws (the network keeps the initialisation it was built
                with, from torch's global generator).
            n_samples: ``None`` (default) draws fresh FK samples every step; a number draws that many once and
                trains on batches of them (IKFlow's fixed-set protocol).
            device: where to train (default: cuda when available, else cpu).
            time_sampling: RFM's draw of ``t``: ``"uniform"`` or ``"late"`` (``t = 1 - (1 - u)^2``, more steps
                near the data, where IK's nearly singular conditionals need the most resolution).
            log_every: steps between ``callback`` calls and history rows.
            callback: called with ``{"step", "elapsed_s", "loss", "lr", "snapshot"}``; ``snapshot()``
                returns a copy of this sampler with the current EMA weights (for curves against time).
            verbose: print the history rows.

        Returns:
            self, with :attr:`training` describing the run.
        """
        from ..objectives import make_objective
        from ..training.ema import EMA

        if steps is None and max_minutes is None:
            raise ValueError("IKSampler.fit: give steps= or max_minutes= (or both)")
        if steps is not None and (int(steps) != steps or steps < 1):
            raise ValueError(f"IKSampler.fit: steps must be a positive integer, got {steps!r}")
        if max_minutes is not None and not max_minutes > 0:
            raise ValueError(f"IKSampler.fit: max_minutes must be > 0, got {max_minutes!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"IKSampler.fit: batch_size must be a positive integer, got {batch_size!r}")
        if not lr > 0:
            raise ValueError(f"IKSampler.fit: lr must be > 0, got {lr!r}")
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        flow = self.flow.to(dev)
        gen = torch.Generator().manual_seed(int(seed))
        t0 = time.perf_counter()

        # standardise the pose features (positions are ~0.5 m, matrix entries ~0.6): one seeded draw. A sampler
        # that was trained already keeps its standardisation: its network was fitted to it.
        q_std, c_std = self.draw(65536 if n_samples is None else int(n_samples), gen, flow.dtype, dev)
        if not self.training.get("steps"):
            flow.fit_standardization(self.turns.to_model(q_std), c_std)
        objective = make_objective("rfm", time_sampling=time_sampling)
        objective.setup(flow, flow.to_internal(self.turns.to_model(q_std)), c_std)
        cache = (q_std, c_std) if n_samples is not None else None

        opt = torch.optim.AdamW(flow.parameters(), lr=lr, weight_decay=weight_decay)
        ema = EMA(flow, ema_decay)
        budget = None if max_minutes is None else 60.0 * float(max_minutes)
        history, window, step = [], [], 0
        start = self.training.get("steps", 0)
        flow.train()
        while True:
            elapsed = time.perf_counter() - t0
            progress = max(step / steps if steps else 0.0, elapsed / budget if budget else 0.0)
            if progress >= 1.0:
                break
            scale = min(1.0, (step + 1) / warmup) if warmup else 1.0
            for g in opt.param_groups:
                g["lr"] = lr * scale * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
            if cache is None:
                q, c = self.draw(batch_size, gen, flow.dtype, dev)
            else:
                idx = torch.randint(cache[0].shape[0], (batch_size,), generator=gen).to(dev)
                q, c = cache[0][idx], cache[1][idx]
            loss = objective.loss(flow, flow.to_internal(self.turns.to_model(q)), c, generator=gen)
            if not bool(torch.isfinite(loss)):
                raise RuntimeError(f"IKSampler.fit: the loss became {float(loss):.4g} at step {step}; try a lower "
                                   f"lr (now {lr:g})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(flow.parameters(), grad_clip)
            opt.step()
            ema.update(flow)
            step += 1
            window.append(float(loss.detach()))
            if step % log_every == 0:
                row = {"step": start + step, "elapsed_s": time.perf_counter() - t0,
                       "loss": sum(window) / len(window), "lr": opt.param_groups[0]["lr"]}
                window = []
                history.append(row)
                if verbose:
                    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                          flush=True)
                if callback is not None:
                    callback({**row, "snapshot": lambda: self._with_weights(ema.shadow)})
        ema.copy_to(flow)
        flow.eval()
        self.training = {
            "steps": start + step, "seconds": self.training.get("seconds", 0.0) + time.perf_counter() - t0,
            "samples_seen": self.training.get("samples_seen", 0) + step * int(batch_size),
            "n_samples": n_samples, "batch_size": int(batch_size), "lr": float(lr), "ema_decay": float(ema_decay),
            "seed": int(seed), "device": str(dev), "max_minutes": max_minutes, "objective": "rfm",
            "time_sampling": time_sampling,
            "final_loss": history[-1]["loss"] if history else (sum(window) / len(window) if window else None),
            "history": history,
        }
        return self

    def _with_weights(self, state) -> "IKSampler":
        flow = copy.deepcopy(self.flow)
        flow.load_state_dict(state)
        flow.eval()
        twin = IKSampler(self.robot, _flow=flow)
        twin.training = {k: v for k, v in self.training.items() if k != "history"}
        return twin

    # ------------------------------------------------------------------------------ sampling and scoring
    def _draw(self, cond: torch.Tensor, seed: Optional[int], method, steps, temperature: float) -> torch.Tensor:
        """One joint vector per condition row ``(N, 12) -> (N, dof)``: the flow's sample, full-turn joints
        lifted to a copy inside the limits (the copies drawn from their own stream of ``seed``)."""
        theta = self.flow.sample(cond.shape[0], condition=cond, seed=seed, method=method, steps=steps,
                                 temperature=temperature)
        gen = None
        if self.turns.active and seed is not None:
            gen = torch.Generator().manual_seed(int(seed) + 7919)  # not the base noise's stream
        return self.turns.lift(theta, gen)

    @torch.no_grad()
    def sample(self, targets, n_per_target: int = 1, *, seed: Optional[int] = None, refine: bool = False,
               quat_order: str = "xyzw", method: Optional[str] = None, steps: Optional[int] = None,
               device=None, refine_dtype: torch.dtype = torch.float64, pos_tol: float = 1e-3,
               rot_tol: float = 1e-2, max_iters: int = 10, near=None, oversample: int = 4,
               spare: float = 0.25, retries: int = 3, retry_draws: int = 4,
               temperature: Optional[float] = None, checker=None, rank: Optional[str] = None
               ) -> Dict[str, torch.Tensor]:
        """Joint configurations that put the end effector at ``targets``.

        Args:
            targets: ``(T, 7)`` (or one ``(7,)``): position and unit quaternion (``quat_order``) of the end-effector
                link in the base frame.
            n_per_target: solutions per target.
            seed: makes the draw reproducible (base noise is drawn on the CPU).
            refine: polish every sample with :func:`~posegen.robots.ik.solve_ik` (``pos_tol``, ``rot_tol``,
                ``max_iters``) in ``refine_dtype``.
            method, steps: sampling integrator (default: the sampler's, :data:`DEFAULT_SAMPLE_SOLVER`; with
                ``refine`` and neither given, :data:`REFINE_SAMPLE_SOLVER`).
            spare, retries, retry_draws: with ``refine``, ``ceil(n (1 + spare))`` draws per target are refined
                and the ``n`` returned are successes first; rows still failing (a local minimum, most often with a
                joint on its limit) get ``retry_draws`` fresh draws for their target, refined, in up to
                ``retries`` rounds. Spares and retries beat long refinements: a few stuck rows keep a whole batch
                iterating, and an iteration of a few rows costs nearly as much as one of a thousand (the chain's
                per-call overhead). Thread CPU time per 1000 exact solutions, 200 held-out targets in batches of
                20 x 50, two runs each: Panda 0.37-0.39 / 0.26-0.29 / 0.18-0.25 s at 20 / 10 / 8 iterations
                (99.99-100 % exact), iiwa14 0.28-0.31 / 0.25-0.27 / 0.25 s (99.99-100 %); the UR5e, whose raw
                samples are poorer, needs longer rows: 99.68 / 99.27 / 99.04 % exact. ``spare=0, retries=0`` refines
                each draw once.
            temperature: widens the base draws of joints with limits (their Gaussian chart scaled by it,
                :meth:`~posegen.PoseFlow.sample`), putting more samples towards the limits: solutions spread
                further along each IK branch. Default 1 (the model's density) for raw samples and
                :data:`REFINE_TEMPERATURE` with ``refine``, where DLS restores the accuracy a wider draw loses.
            near: a seed configuration ``(dof,)`` or one per target ``(T, dof)``: draw ``oversample * n`` solutions
                and keep the ``n`` closest to it (L2 in joint space; successful ones first when refined). This is
                selection among samples, not a model conditioned on the seed.
            checker: a :class:`~posegen.robots.CollisionChecker` of this robot and a scene: solutions that collide
                (with an obstacle or themselves) rank after the collision-free ones, and ``"collision_free"``
                ``(T, n)`` is returned; with ``refine`` a returned row is ``success & collision_free`` first.
                Spare draws (``spare``, ``oversample`` with ``near``) are what it chooses from.
            rank: how the rows of a target are ordered (and which of the ``ceil(n (1 + spare))`` draws, or
                ``oversample * n`` with ``near``, are kept) after validity
                (success, then collision-free): ``"near"`` (closest to ``near`` first; the default when ``near``
                is given), ``"density"`` (most probable under the model first, :meth:`log_prob` of the returned
                joints: an extra likelihood pass), ``"clearance"`` (farthest from the checker's obstacles first;
                needs ``checker``). Default: refined rows by position error, raw rows in draw order.

        Returns:
            ``{"joints": (T, n, dof)}`` inside the limits by construction (the flow's dtype, or ``refine_dtype``
            when refined); with ``refine`` also ``"position_error"`` (m), ``"rotation_error"`` (rad) and
            ``"success"`` ``(T, n)``, and ``"raw_joints"``, the samples before refinement (a retried row's are
            those of its first draw); with ``checker`` also ``"collision_free"`` ``(T, n)``. Refined rows come
            valid first (success, and collision-free with a checker). A target that cannot be reached gets
            ``success`` False on its rows; it raises nothing.

        Raises:
            ValueError: malformed targets (width, non-unit quaternion, NaN), an unknown ``quat_order`` or
                ``rank``, or a ``rank`` without what it needs (``near``, ``checker``).
        """
        if int(n_per_target) != n_per_target or n_per_target < 1:
            raise ValueError(f"n_per_target must be a positive integer, got {n_per_target!r}")
        n = int(n_per_target)
        if device is not None:
            self.flow.to(device)
        cond = self.conditions(targets, quat_order)
        T = cond.shape[0]
        if near is not None:
            near = self.robot.check_joints(near, require_limits=False).to(self.flow.device, torch.float64)
            if near.dim() == 1:
                near = near.expand(T, -1)
            if near.shape != (T, self.robot.dof):
                raise ValueError(f"near must have shape ({self.robot.dof},) or ({T}, {self.robot.dof}), got "
                                 f"{tuple(near.shape)}")
            if int(oversample) != oversample or oversample < 1:
                raise ValueError(f"oversample must be a positive integer, got {oversample!r}")
        if checker is not None and not hasattr(checker, "collision_free"):
            raise TypeError(f"checker must be a posegen.robots.CollisionChecker, got {type(checker).__name__}")
        if checker is not None and list(checker.robot.joint_names) != list(self.robot.joint_names):
            raise ValueError(f"checker is for {checker.robot.name} (joints {list(checker.robot.joint_names)}), not "
                             f"for this sampler's {self.robot.name}")
        for name, v in (("retries", retries), ("retry_draws", retry_draws)):
            if int(v) != v or v < (0 if name == "retries" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'retries' else 'positive'} integer, "
                                 f"got {v!r}")
        if not spare >= 0:
            raise ValueError(f"spare must be >= 0, got {spare!r}")
        if rank is None and near is not None:
            rank = "near"
        if rank is not None and rank not in RANKINGS:
            raise ValueError(f"rank must be one of {list(RANKINGS)} or None, got {rank!r}")
        if rank == "near" and near is None:
            raise ValueError('rank="near" needs a seed configuration: near=')
        if rank == "clearance" and checker is None:
            raise ValueError('rank="clearance" needs a checker= (a CollisionChecker with the obstacles)')
        # draws per target: oversampled for near=, and with refine, a checker or a ranking a share of spares, so
        # that the n rows returned can be (collision-free) successes, or the best ranked, without a second round
        m = n * int(oversample) if near is not None else (
            int(math.ceil(n * (1 + spare))) if refine or checker is not None or rank is not None else n)
        if refine and method is None and steps is None:
            method, steps = REFINE_SAMPLE_SOLVER["method"], REFINE_SAMPLE_SOLVER["steps"]
        if temperature is None:
            temperature = REFINE_TEMPERATURE if refine else 1.0
        q = self._draw(cond.repeat_interleave(m, 0), seed, method, steps, temperature).reshape(T, m, self.robot.dof)
        out = {"joints": q}
        if refine:
            tgt = torch.as_tensor(targets).to(q.device, refine_dtype).reshape(T, 7)
            res = solve_ik(self.robot, tgt, q.to(refine_dtype), quat_order=quat_order, pos_tol=pos_tol,
                           rot_tol=rot_tol, max_iters=max_iters)
            out = {"joints": res.joints, "position_error": res.position_error,
                   "rotation_error": res.rotation_error, "success": res.success, "raw_joints": q}
        if checker is not None:
            out["collision_free"] = self._collision_free(checker, out["joints"])

        def score(out):  # lower first, within a validity tier
            if rank == "near":
                return (out["joints"].double() - near[:, None]).norm(dim=-1)
            if rank == "density":
                return -self.log_prob(out["joints"].to(self.flow.dtype), targets, quat_order=quat_order).double()
            if rank == "clearance":
                j = out["joints"]
                return -checker.clearance(j.reshape(-1, j.shape[-1]).to(checker.device, checker.dtype)).reshape(
                    j.shape[:-1]).to(j.device, torch.float64)
            # successes first, then the closest failures; draws in their order otherwise (stable)
            j = out["joints"]
            return out["position_error"].double() if refine else j.new_zeros(j.shape[:2], dtype=torch.float64)

        if m > n or rank is not None:
            out = _take_rows(out, _order(out, score(out))[:, :n])
        if refine:
            out = {k: v.clone() for k, v in out.items()}
            retried = False
            for r in range(int(retries)):
                ti, si = (~_valid(out)).nonzero(as_tuple=True)
                if ti.numel() == 0:
                    break
                retried = True
                # rows still failing (a local minimum, most often with a joint on its limit; or in collision):
                # retry_draws fresh draws for their own target, refined; the best of them replaces the row if
                # it is better (valid where the row is not, else closer)
                k = int(retry_draws)
                q2 = self._draw(cond[ti].repeat_interleave(k, 0), None if seed is None else seed + 1 + r, method,
                                steps, temperature)
                res2 = solve_ik(self.robot, tgt[ti].repeat_interleave(k, 0), q2.to(refine_dtype),
                                quat_order=quat_order, pos_tol=pos_tol, rot_tol=rot_tol, max_iters=max_iters)
                new = {"joints": res2.joints, "position_error": res2.position_error,
                       "rotation_error": res2.rotation_error, "success": res2.success}
                if checker is not None:
                    new["collision_free"] = self._collision_free(checker, res2.joints)
                ok2 = _valid(new)
                err = (res2.position_error + torch.where(ok2, 0.0, 1e6)).view(-1, k)
                best = torch.arange(ti.numel(), device=err.device) * k + err.argmin(1)
                better = ok2[best] | (res2.position_error[best] < out["position_error"][ti, si])
                for key_, v in new.items():
                    old = out[key_][ti, si]
                    mask = better if v.dim() == 1 else better[:, None]
                    out[key_][ti, si] = torch.where(mask, v[best].to(old.dtype), old)
            if retried:  # rows fixed by a retry move up: valid rows first, each tier in the ranking's order
                # (without a ranking, in their order: the selection above already put the closest first)
                v = out["success"]
                out = _take_rows(out, _order(out, score(out) if rank else v.new_zeros(v.shape, dtype=torch.float64)))
        return out

    @staticmethod
    def _collision_free(checker, joints: torch.Tensor) -> torch.Tensor:
        """``(T, m)`` bool on the joints' device: :meth:`CollisionChecker.collision_free` of ``joints (T, m, dof)``,
        computed where the checker lives."""
        ok = checker.collision_free(joints.to(checker.device, checker.dtype))
        return ok.to(joints.device)

    def errors(self, joints: torch.Tensor, targets, quat_order: str = "xyzw"):
        """``(position_error (T, n) m, rotation_error (T, n) rad)`` of ``joints (T, n, dof)`` against
        ``targets (T, 7)``."""
        pos, R = parse_targets(targets, quat_order, dtype=joints.dtype, device=joints.device)
        _, pe, re = pose_errors(self.robot.fk(joints), pos[:, None], R[:, None])
        return pe, re

    @torch.no_grad()
    def log_prob(self, q, pose, *, quat_order: str = "xyzw", method: Optional[str] = None,
                 steps: Optional[int] = None) -> torch.Tensor:
        """Log-density (w.r.t. Lebesgue measure on the joint box, radians; continuous joints on their circle) of
        solutions given the pose.

        ``q (T, dof)`` with ``pose (T, 7)`` -> ``(T,)``; ``q (T, n, dof)`` with ``pose (T, 7)`` -> ``(T, n)``.
        The integrator defaults to the flow's likelihood setting (rk4, 8 steps unless set otherwise).
        """
        q = self.robot.check_joints(q).to(self.flow.device, self.flow.dtype)
        cond = self.conditions(pose, quat_order)
        if q.dim() not in (2, 3) or q.shape[0] != cond.shape[0]:
            raise ValueError(f"log_prob: q must have shape (T, {self.robot.dof}) or (T, n, {self.robot.dof}) "
                             f"with T = {cond.shape[0]} poses, got {tuple(q.shape)}")
        n = 1 if q.dim() == 2 else q.shape[1]
        theta = self.turns.to_model(q.reshape(-1, self.robot.dof))
        lp = self.flow.log_prob(theta, condition=cond.repeat_interleave(n, 0), method=method, steps=steps)
        # a full-turn joint's density is shared by its copies inside the limits
        return (lp - self.turns.log_copies(theta)).reshape(q.shape[:-1])

    # ------------------------------------------------------------------------------ files
    def save(self, path) -> Path:
        """Write an atomic, plain-data checkpoint (robot reference, flow, training record)."""
        return save_checkpoint({"robot": _robot_ref(self.robot), "joint_names": list(self.robot.joint_names),
                                "flow": self.flow.state(), "training": self.training}, path, kind="ik_sampler")

    @classmethod
    def load(cls, path, map_location=None) -> "IKSampler":
        """Load a sampler written by :meth:`save`; ValueError if the file is another kind of checkpoint or the
        robot's joints changed since."""
        from ..flow import PoseFlow

        ck = load_checkpoint(path, map_location="cpu", kind="ik_sampler")
        ref = ck["robot"]
        robot = as_robot(ref.get("name") or ref["path"])
        if ref.get("ee_link") and ref["ee_link"] != robot.ee_link:
            robot = robot.with_ee_link(ref["ee_link"])
        if list(robot.joint_names) != list(ck["joint_names"]):
            raise ValueError(f"{str(path)!r} was trained for joints {ck['joint_names']}, but the robot now has "
                             f"{list(robot.joint_names)}")
        flow = PoseFlow.from_state(ck["flow"], source=str(path))
        sampler = cls(robot, _flow=flow)
        sampler.training = dict(ck.get("training") or {})
        if map_location is not None:
            flow.to(map_location)
        flow.eval()
        return sampler
