r"""``IKSampler``: a learned distribution of IK solutions ``p(q | pose)``, refined by
:func:`posegen.robots.ik.solve_ik`.

>>> ik = IKSampler("panda")
>>> ik.fit(max_minutes=10, seed=0)                       # FK samples of uniform joints, drawn fresh each step
>>> out = ik.sample(targets, 50, seed=0, refine=True)   # targets (T, 7) x, y, z, qx, qy, qz, qw
>>> out["joints"], out["success"]                       # (T, 50, dof) inside the limits, (T, 50) bool
>>> ik.save("ik_panda.pt"); ik = IKSampler.load("ik_panda.pt")

The model is a conditional :class:`~posegen.PoseFlow` on the robot's joint manifold (``Interval`` factors, so
every sample is inside the limits by construction) trained with Riemannian Flow Matching. With
``full_turns=True``, joints whose limits span a full turn or more (the UR5e's ``[-2 pi, 2 pi]``) are angles in
the model and each sample is lifted to a copy inside the limits: the pose fixes the angle, not
the copy (:mod:`posegen.robots.turns`). The condition is
:func:`pose_features`: the position and the 9 entries of the rotation matrix. A quaternion would not do: ``q``
and ``-q`` are one pose, and a network fed quaternions sees two far-apart inputs for it (and a jump where the
sign convention flips); the rotation matrix is a continuous, sign-free function of the pose. The flow
standardises the features with their training mean and std.

Training data are forward kinematics of joints drawn uniformly inside the limits. By default they are drawn
fresh every step (``n_samples=None``): FK costs ~1.2 ms per 1000 rows on one CPU thread (Panda,
benchmarks/results/fk_speed.json), far less than the step, and the model never sees a sample twice, so there is
no overfitting to a finite set. Training is posegen's one loop (:class:`posegen.training.Trainer` with a
:class:`~posegen.training.StreamSource`): the same schedule, budgets, EMA, checkpoints and resume as every other
model.

Sampling is draw -> refine -> select: :meth:`IKSampler.draw_joints` (the flow, at a temperature), refinement by
damped least squares (:func:`~posegen.robots.ik.solve_ik`; its settings and their measurements in
:mod:`.ik_refine`), then the selection of :mod:`.ik_select` (validity tiers and rankings), with fresh starts for
rows that stay invalid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..flow import PoseFlow
from ..robots import BUILTIN_ROBOTS, as_robot
from ..robots.ik import parse_targets, pose_errors, solve_ik
from ..robots.turns import FullTurns
from ..training import StreamSource, Trainer, make_config
from .ik_refine import (LAST_ROUND_ITERS, PRETRAINED_REFINE_OPTIONS, REFINE_DEFAULTS, REFINE_SAMPLE_SOLVER,
                        REFINE_TEMPERATURE, RETRY_STARTS, keep_better, native_bf16)
from .ik_select import RANKINGS, collision_free, order_rows, row_scores, take_rows, valid_rows
from .shipped import shipped_weights

__all__ = ["IKSampler", "pose_features", "POSE_FEATURES", "DEFAULT_SAMPLE_SOLVER", "REFINE_SAMPLE_SOLVER",
           "REFINE_TEMPERATURE", "RANKINGS", "native_bf16", "REFINE_DEFAULTS", "PRETRAINED_REFINE_OPTIONS",
           "RETRY_STARTS"]

#: width of :func:`pose_features`: position (3) and rotation matrix (9)
POSE_FEATURES = 12
#: default sampling integrator of raw draws: within 1.3 mm of dopri5's mean position error for the shipped weights.
#: Mean raw position error on 200 held-out targets x 20 (benchmarks/ik_pretrained.py eval, raw_by_solver) with
#: rk4 x 8 / 16 / 32 / dopri5: Panda 40.0 / 31.3 / 29.8 / 29.6 mm (after its restarts, 1 600 000 steps: 36.7 / 25.1
#: / 22.8 / 22.5), UR5e 72.3 / 47.5 / 42.8 / 41.9 mm (after its restart, 800 000 steps: 70.5 / 41.1 / 35.0 / 33.7),
#: iiwa14 45.1 / 32.3 / 30.5 / 30.2 mm (after its restart, 800 000 steps: 43.5 / 28.9 / 26.7 / 26.2): rk4 x 8 (the
#: default until the weights were trained long) was a third of the error. A last stage with late time (stiffer near
#: the data) widened the gaps: Panda 37.8 / 23.8 / 19.3 / 18.4 mm (1 800 000 steps), UR5e 108.3 / 42.6 / 27.5 / 24.7
#: (1 400 000), iiwa14 54.6 / 27.2 / 20.7 / 19.8 (1 000 000).
#: Draws that are refined use the cheaper :data:`REFINE_SAMPLE_SOLVER`: refinement needs a basin, not precision.
DEFAULT_SAMPLE_SOLVER = {"method": "rk4", "steps": 32}


def pose_features(pos: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Condition vector of poses: ``pos (..., 3)``, ``R (..., 3, 3)`` -> ``(..., 12)`` (position, row-major
    rotation matrix). Invariant to the quaternion's sign by construction."""
    return torch.cat([pos, R.reshape(*R.shape[:-2], 9)], -1)


def _robot_ref(robot) -> Dict[str, Any]:
    """How to load ``robot`` again: a built-in name, or the description file and the ee link."""
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
        #: refinement settings of :meth:`sample` for arguments the caller leaves unset (``spare``, ``retry_draws``,
        #: ``retry_starts``; :data:`REFINE_DEFAULTS` otherwise): measured for these weights, saved with them
        self.refine_options: Dict[str, Any] = {}

    def __repr__(self) -> str:
        c = self.flow.config
        return (f"IKSampler(robot={self.robot.name!r}, hidden={c['hidden']}, depth={c['depth']}, "
                f"conditioning={c['conditioning']!r}, trained_steps={self.training.get('steps', 0)})")

    # ------------------------------------------------------------------------------ data
    def training_pairs(self, n: int, generator: torch.Generator, dtype=torch.float32, device=None):
        """``n`` training pairs: joints ``(n, dof)`` uniform inside the limits (drawn on the generator's device,
        so a seed gives the same data for every run on that kind of device) and their pose features
        ``(n, 12)``."""
        q = self.robot.manifold.sample_base(n, generator=generator, dtype=dtype, device=generator.device)
        with torch.no_grad():
            T = self.robot.fk(q.to(device) if device is not None else q)
        return q.to(T.device), pose_features(T[..., :3, 3], T[..., :3, :3])

    def conditions(self, targets, quat_order: str = "xyzw", dtype=None, device=None) -> torch.Tensor:
        """Checked targets ``(T, 7)`` -> condition rows ``(T, 12)`` (ValueError for bad rows, see
        :func:`~posegen.robots.ik.parse_targets`)."""
        pos, R = parse_targets(targets, quat_order, dtype=dtype or self.flow.dtype, device=device or self.flow.device)
        return pose_features(pos, R)

    # ------------------------------------------------------------------------------ training
    def _model_pairs(self, n: int, generator: torch.Generator):
        """Training pairs in the model's coordinates (full-turn joints as angles): the stream of :meth:`fit`."""
        q, c = self.training_pairs(n, generator, self.flow.dtype)
        return self.turns.to_model(q), c

    def fit(self, steps: Optional[int] = None, *, max_minutes: Optional[float] = None, batch_size: int = 512,
            lr: float = 3e-3, weight_decay: float = 0.0, warmup: int = 200, grad_clip: float = 1.0,
            ema_decay: float = 0.999, seed: int = 0, n_samples: Optional[int] = None, device=None,
            time_sampling: str = "late", log_every: int = 100, out_dir=None, resume: bool = False,
            checkpoint_every: int = 2000, callback: Optional[Callable[[Dict[str, Any]], None]] = None,
            verbose: bool = False) -> "IKSampler":
        """Train ``p(q | pose)`` with Riemannian Flow Matching on FK samples of uniform joints, by posegen's one
        training loop (:class:`posegen.training.Trainer`).

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
            time_sampling: RFM's draw of ``t``: ``"late"`` (default; ``t = 1 - (1 - u)^2``, more steps near the
                data, where IK's nearly singular conditionals need the most resolution) or ``"uniform"`` (the
                default before; the shipped weights' first stages). Raw mean error at temperature 1 on 200
                held-out targets x 20 (``benchmarks/ik_time_sampling.py``): a fresh Panda model after 20 000 steps
                63.5 mm late against 76.4 uniform (UR5e 136 against 147, median equal, both still ~120 deg off);
                the shipped Panda weights continued for 80 000 steps 20.0 against 23.6 mm.
            log_every: steps between ``callback`` calls and history rows.
            out_dir, resume, checkpoint_every: the trainer's atomic checkpoints (``out_dir/ckpt.pt``) and resume,
                for long runs (the shipped weights).
            callback: called with ``{"step", "elapsed_s", "loss", "lr", "snapshot"}``; ``snapshot()``
                returns a copy of this sampler with the current EMA weights (for curves against time).
            verbose: a progress bar and the history rows printed.

        Returns:
            self, with :attr:`training` describing the run.
        """
        if steps is None and max_minutes is None:
            raise ValueError("IKSampler.fit: give steps= or max_minutes= (or both)")
        start = self.training.get("steps", 0)
        cfg = make_config(
            objective="rfm", objective_options={"time_sampling": time_sampling}, steps=steps,
            max_minutes=max_minutes, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
            grad_clip=grad_clip, ema_decay=ema_decay, seed=seed, log_every=log_every, val_every=0,
            checkpoint_every=checkpoint_every, augment_so3=False, device=None if device is None else str(device),
            progress=verbose, fit_standardization=not start)
        if n_samples is None:
            data = StreamSource(self._model_pairs, reference_size=65536, seed=seed)
        else:  # a fixed set, drawn once (IKFlow's protocol)
            data = self._model_pairs(int(n_samples), torch.Generator().manual_seed(int(seed)))
        history = []

        def on_record(record, trainer):
            row = {"step": start + record["step"], "elapsed_s": record["elapsed_s"], "loss": record["loss"],
                   "lr": record["lr"]}
            history.append(row)
            if verbose:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)
            if callback is not None:
                callback({**row, "snapshot": lambda: self._with_flow(trainer.ema_flow())})

        self.flow.train()
        res = Trainer(self.flow, data, config=cfg, out_dir=out_dir, resume=resume, callback=on_record).fit()
        self.flow.eval()
        self.training = {
            "steps": start + res.steps_done, "seconds": self.training.get("seconds", 0.0) + res.seconds,
            "samples_seen": self.training.get("samples_seen", 0) + res.steps_done * int(batch_size),
            "n_samples": n_samples, "batch_size": int(batch_size), "lr": float(lr), "ema_decay": float(ema_decay),
            "seed": int(seed), "device": str(self.flow.device), "max_minutes": max_minutes, "objective": "rfm",
            "time_sampling": time_sampling, "final_loss": history[-1]["loss"] if history else None,
            "history": history,
        }
        return self

    def _with_flow(self, flow) -> "IKSampler":
        twin = IKSampler(self.robot, _flow=flow.eval())
        twin.training = {k: v for k, v in self.training.items() if k != "history"}
        return twin

    # ------------------------------------------------------------------------------ sampling and scoring
    def draw_joints(self, cond: torch.Tensor, seed: Optional[int] = None, method=None, steps=None,
                    temperature: float = 1.0, bf16: bool = False) -> torch.Tensor:
        """One joint vector per condition row ``(N, 12) -> (N, dof)``: the flow's sample, full-turn joints
        lifted to a copy inside the limits (the copies drawn from their own stream of ``seed``). ``bf16``: the
        network runs in bfloat16 (``torch.autocast`` on the flow's device), for draws that are refined anyway."""
        with torch.autocast(self.flow.device.type, dtype=torch.bfloat16, enabled=bool(bf16)):
            theta = self.flow.sample(cond.shape[0], condition=cond, seed=seed, method=method, steps=steps,
                                     temperature=temperature)
        gen = None
        if self.turns.active and seed is not None:
            gen = torch.Generator().manual_seed(int(seed) + 7919)  # not the base noise's stream
        return self.turns.lift(theta.to(self.flow.dtype), gen)

    @torch.no_grad()
    def sample(self, targets, n_per_target: int = 1, *, seed: Optional[int] = None, refine: bool = False,
               quat_order: str = "xyzw", method: Optional[str] = None, steps: Optional[int] = None,
               device=None, refine_dtype: torch.dtype = torch.float64, pos_tol: float = 1e-3,
               rot_tol: float = 1e-2, max_iters: int = 10, near=None, oversample: int = 4,
               spare: Optional[float] = None, retries: int = 4, retry_draws: Optional[int] = None,
               retry_starts: Optional[str] = None,
               temperature: Optional[float] = None, checker=None, rank: Optional[str] = None,
               bf16_draws: Optional[bool] = None) -> Dict[str, torch.Tensor]:
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
            spare, retries, retry_draws, retry_starts: with ``refine``, ``ceil(n (1 + spare))`` draws per target
                are refined and the ``n`` returned are successes first; rows still failing (a local minimum, most
                often with a joint on its limit, or a slow approach near a singularity) get up to ``retries`` rounds
                of ``retry_draws`` fresh draws for their target (uniform joints with ``retry_starts="uniform"``)
                plus the row itself continued, all refined; the last round starts from uniform random joints
                instead of draws, with longer refinements (see :meth:`_retry`). ``spare``, ``retry_draws`` and
                ``retry_starts`` left unset come from :attr:`refine_options` (measured for shipped weights), else
                :data:`REFINE_DEFAULTS`. Without a checker or a ranking a target's rows stop refining once it has
                ``n`` successes, so a spare row costs its draw and little else (spare 0.5 against 0.25 before: the
                Panda's time per exact solution at 20 targets per call went from 0.137 to 0.122 ms,
                ``benchmarks/results/ik_speed_panda_chunk20{_before,_midpoint2}.json``). Spares and retries beat
                long refinements: a few stuck rows keep a whole batch iterating, and an iteration of a few rows
                costs nearly as much as one of a thousand (the chain's per-call overhead). Thread CPU time per
                1000 exact solutions, 200 held-out targets in batches of 20 x 50, two runs each (the solver before
                Chan's damping): Panda 0.37-0.39 / 0.26-0.29 / 0.18-0.25 s at 20 / 10 / 8 iterations
                (99.99-100 % exact), iiwa14 0.28-0.31 / 0.25-0.27 / 0.25 s (99.99-100 %). The shipped UR5e
                weights (``benchmarks/ik_pretrained.py eval``): 99.675 % exact on 200 held-out targets x 20 and
                99.725 % on 1000 others x 20 with three rounds of fresh draws alone, 100 % and 99.985 % with the
                continued rows and the uniform last round (``retries=4``; ``results/full/ik_pretrained_ur5e*``).
                ``spare=0, retries=0`` refines each draw once.
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
            bf16_draws: run the network in bfloat16 for the draws (``torch.autocast``). Default: with ``refine``,
                on a CPU with native bfloat16 matrix products (:func:`native_bf16`), where it halves the cost of a
                draw and refinement restores the accuracy (``python benchmarks/ik.py convergence``: the same
                share of draws refined to exact solutions); off otherwise, and for raw draws.

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
        opts = {**REFINE_DEFAULTS, **self.refine_options}
        spare = opts["spare"] if spare is None else spare
        retry_draws = opts["retry_draws"] if retry_draws is None else retry_draws
        retry_starts = opts["retry_starts"] if retry_starts is None else retry_starts
        n, near, rank = self._check_sample_args(n_per_target, near, oversample, checker, retries, retry_draws,
                                                spare, rank, retry_starts)
        if device is not None:
            self.flow.to(device)
        cond = self.conditions(targets, quat_order)
        T = cond.shape[0]
        if near is not None:
            near = near.to(self.flow.device, torch.float64)
            near = near.expand(T, -1) if near.dim() == 1 else near
            if near.shape != (T, self.robot.dof):
                raise ValueError(f"near must have shape ({self.robot.dof},) or ({T}, {self.robot.dof}), got "
                                 f"{tuple(near.shape)}")
        # draws per target: oversampled for near=, and with refine, a checker or a ranking a share of spares, so
        # that the n rows returned can be (collision-free) successes, or the best ranked, without a second round
        m = n * int(oversample) if near is not None else (
            int(math.ceil(n * (1 + spare))) if refine or checker is not None or rank is not None else n)
        if refine and method is None and steps is None:
            method, steps = REFINE_SAMPLE_SOLVER["method"], REFINE_SAMPLE_SOLVER["steps"]
        if temperature is None:
            temperature = REFINE_TEMPERATURE if refine else 1.0
        if bf16_draws is None:
            bf16_draws = refine and self.flow.device.type == "cpu" and native_bf16()
        draw = dict(method=method, steps=steps, temperature=temperature, bf16=bool(bf16_draws))
        refine_opts = dict(quat_order=quat_order, pos_tol=pos_tol, rot_tol=rot_tol, max_iters=max_iters)
        # draw
        q = self.draw_joints(cond.repeat_interleave(m, 0), seed, **draw).reshape(T, m, self.robot.dof)
        out = {"joints": q}
        # refine
        if refine:
            tgt = torch.as_tensor(targets).to(q.device, refine_dtype).reshape(T, 7)
            # without a checker or a ranking any n successes of a target will do: its rows stop once it has them
            need = n if checker is None and rank is None else None
            out = {**self._refine(tgt, q.to(refine_dtype), checker, refine_opts, need), "raw_joints": q}
        elif checker is not None:
            out["collision_free"] = collision_free(checker, q)

        # select
        def score(rows):
            return row_scores(rows, rank, near=near, checker=checker, log_prob=lambda j: self.log_prob(
                j.to(self.flow.dtype), targets, quat_order=quat_order))

        if m > n or rank is not None:
            out = take_rows(out, order_rows(out, score(out))[:, :n])
        if refine:
            out = self._retry(out, cond, tgt, seed, draw, refine_opts, checker, retries, retry_draws,
                              score if rank else None, uniform=retry_starts == "uniform")
        return out

    def _check_sample_args(self, n_per_target, near, oversample, checker, retries, retry_draws, spare, rank,
                           retry_starts="draws"):
        """The checks of :meth:`sample`, before any work: ``(n, near (dof,) or (T, dof) or None, rank)``."""
        if isinstance(n_per_target, bool) or int(n_per_target) != n_per_target or n_per_target < 1:
            raise ValueError(f"n_per_target must be a positive integer, got {n_per_target!r}")
        if near is not None:
            near = self.robot.check_joints(near, require_limits=False)
            if int(oversample) != oversample or oversample < 1:
                raise ValueError(f"oversample must be a positive integer, got {oversample!r}")
        if checker is not None and not hasattr(checker, "collision_free"):
            raise TypeError(f"checker must be a posegen.robots.CollisionChecker, got {type(checker).__name__}")
        if checker is not None and list(checker.robot.joint_names) != list(self.robot.joint_names):
            raise ValueError(f"checker is for {checker.robot.name} (joints {list(checker.robot.joint_names)}), not "
                             f"for this sampler's {self.robot.name}")
        if int(retries) != retries or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
        if int(retry_draws) != retry_draws or retry_draws < 1:
            raise ValueError(f"retry_draws must be a positive integer, got {retry_draws!r}")
        if retry_starts not in RETRY_STARTS:
            raise ValueError(f"retry_starts must be one of {list(RETRY_STARTS)}, got {retry_starts!r}")
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
        return int(n_per_target), near, rank

    def _refine(self, tgt: torch.Tensor, q: torch.Tensor, checker, opts, need: Optional[int] = None
                ) -> Dict[str, torch.Tensor]:
        """DLS from ``q (T, m, dof)`` towards ``tgt (T, 7)``: joints, errors, success (and collision_free); with
        ``need``, a target's rows stop once ``need`` of them succeeded (:func:`~posegen.robots.ik.solve_ik`)."""
        res = solve_ik(self.robot, tgt, q, need=need, **opts)
        out = {"joints": res.joints, "position_error": res.position_error, "rotation_error": res.rotation_error,
               "success": res.success}
        if checker is not None:
            out["collision_free"] = collision_free(checker, res.joints)
        return out

    def _retry(self, out, cond, tgt, seed, draw, refine_opts, checker, retries: int, k: int, score,
               uniform: bool = False):
        """Rows still invalid after refinement (a local minimum, most often with a joint on its limit; a slow
        approach near a singularity; or a collision) get up to ``retries`` rounds of ``k + 1`` refined candidates:
        ``k`` fresh draws for their target and the row itself, continued for another ``max_iters`` (near a
        singularity DLS converges slowly, and a row at 1.1 mm needs a few steps, not a new start). In the last
        round the ``k`` new starts are uniform inside the limits, not draws, and every candidate is refined for
        :data:`LAST_ROUND_ITERS` times ``max_iters`` (the flow's draws for such a target have all failed); with
        ``uniform`` every round's new starts are uniform (no flow call for a handful of rows). The best candidate
        replaces the row if it is better (valid where the row is not, else closer). Rows fixed by a retry move up:
        valid rows first, each tier in the ranking's order (``score``; without one, in their order)."""
        out = {key: v.clone() for key, v in out.items()}
        retried = False
        for r in range(int(retries)):
            ti, si = (~valid_rows(out)).nonzero(as_tuple=True)
            if ti.numel() == 0:
                break
            retried = True
            rseed = None if seed is None else seed + 1 + r
            opts = refine_opts
            if r < retries - 1 and not uniform:
                fresh = self.draw_joints(cond[ti].repeat_interleave(k, 0), rseed, **draw).to(tgt.dtype)
            else:
                gen = None if rseed is None else torch.Generator(device="cpu").manual_seed(rseed)
                fresh = self.robot.manifold.sample_base(ti.numel() * k, generator=gen, dtype=tgt.dtype).to(tgt.device)
            if r == retries - 1:
                opts = dict(refine_opts, max_iters=LAST_ROUND_ITERS * refine_opts["max_iters"])
            starts = torch.cat([fresh.reshape(-1, k, self.robot.dof), out["joints"][ti, si].unsqueeze(1)], 1)
            # one success per failing row will do, unless the checker may still refuse it
            keep_better(out, ti, si, self._refine(tgt[ti], starts, checker, opts, 1 if checker is None else None))
        if retried:
            v = out["success"]
            out = take_rows(out, order_rows(out, score(out) if score else v.new_zeros(v.shape, dtype=torch.float64)))
        return out

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
        The integrator defaults to the flow's likelihood setting (rk4, 8 steps unless set otherwise). Joints on
        a limit, or within ``LIMIT_MARGIN`` (1e-4) of its range, are scored that far inside
        (:meth:`~posegen.manifolds.Manifold.interior`, as the data gate moves recorded values): refined solutions
        often end on a limit (4.4 % of the Panda's rows), where the flow's chart value lies beyond its training
        draws and its log-density is arbitrary.
        """
        q = self.robot.manifold.interior(self.robot.check_joints(q)).to(self.flow.device, self.flow.dtype)
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
                                "flow": self.flow.state(), "training": self.training,
                                "refine_options": dict(self.refine_options)}, path, kind="ik_sampler")

    @classmethod
    def pretrained(cls, name: str = "panda", map_location=None) -> "IKSampler":
        """The IK sampler shipped with posegen for built-in robot ``name`` (``"panda"``, ``"iiwa14"``,
        ``"ur5e"``): trained by ``benchmarks/ik_pretrained.py`` with ``configs/pretrained/ik.yaml``, no training
        step needed. ``sampler.training`` says how far it was trained (``steps`` of ``of_steps``);
        ``sampler.refine_options`` holds the refinement settings measured for the weights
        (:data:`PRETRAINED_REFINE_OPTIONS`).

        Raises:
            ValueError: ``name`` is not a robot with shipped weights (the message lists those that have).
        """
        path = shipped_weights("ik", name, "IK weights", "train your own with IKSampler(robot).fit(...) or "
                               "`posegen ik train --robot ...`")
        sampler = cls.load(path, map_location=map_location)
        sampler.refine_options = {**PRETRAINED_REFINE_OPTIONS.get(name, {}), **sampler.refine_options}
        return sampler

    @classmethod
    def load(cls, path, map_location=None) -> "IKSampler":
        """Load a sampler written by :meth:`save`; ValueError if the file is another kind of checkpoint or the
        robot's joints changed since."""
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
        sampler.refine_options = dict(ck.get("refine_options") or {})
        if map_location is not None:
            flow.to(map_location)
        flow.eval()
        return sampler
