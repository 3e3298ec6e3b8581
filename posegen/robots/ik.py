r"""Batched numerical inverse kinematics: damped least squares (Levenberg-Marquardt) that stays in the limits.

:func:`solve_ik` refines joint vectors towards end-effector targets; the IK sampler (its initial guesses), the
planner and reachability checks share it. Everything is torch, batched, on any device and dtype.

Targets are ``(T, 7)`` rows ``x, y, z, qx, qy, qz, qw`` (``quat_order="xyzw"``; ``"wxyz"`` puts ``w`` first):
the position (m) and orientation of the end-effector link in the robot's base frame (:mod:`.ik_targets` checks
them and measures errors against them).

Method
------
The error of ``q`` against a target ``(p*, R*)`` is the 6-vector ``e = [p* - p(q); log(R* R(q)^T)]`` (position in
m, rotation vector in rad, both in the base frame, which is the frame of :meth:`Robot.jacobian`). One step is

.. math::  \delta = J^T (J J^T + (\lambda + k E) I_6)^{-1} e, \qquad q' = \Pi(q + \delta), \qquad E = |e|^2 / 2,

with :math:`\Pi` the projection onto the joint limits (continuous joints are wrapped to ``[-pi, pi)``, joints
whose limits span a full turn are shifted by whole turns, see :class:`_Box`; the others are clamped). The
damping has two parts: Chan's ``k E`` (``error_damping``; Robotics Toolbox's ``ik_LM`` uses it alone), which
makes the steps short and gradient-like far from the target and Gauss-Newton close to it, and a per-row
Levenberg-Marquardt :math:`\lambda`, which shrinks after a step that lowered ``|e|^2`` by 1 % or more and grows
after one that did not. Every step is taken (``accept="always"``; ``"decrease"`` refuses the failed ones, the
rule before Chan's damping, which wastes the iterations it refuses), and each row keeps its best iterate. A
joint at a limit whose step points outwards is *active*: its Jacobian column is dropped and the step
recomputed, so the other joints do the work instead of the step being cut away by the projection (projected
Gauss-Newton on a box).

Why projection and not clamping at the end: every iterate is inside the limits, and the errors and the
``success`` flag are those of the returned joints, measured after the projection. Nothing is moved into the
limits after the errors were computed.

A row stuck in a minimum on the limits (steps failing while a joint sits on a limit) is *kicked*: those joints
are redrawn inside their range and the row continues; it returns its best iterate.

Success is ``position_error < pos_tol and rotation_error < rot_tol`` (defaults 1 mm and 0.01 rad, IKFlow's
"exact" solutions). A target that cannot be reached gives ``success = False`` on its rows; no exception is
raised for it and its rows are returned like the others (the closest joints found).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from .ik_targets import UNIT_TOL, parse_targets, pose_errors, rotation_angle_atan2
from .loader import as_robot
from .turns import full_turn_mask

__all__ = ["IKResult", "solve_ik", "parse_targets", "pose_errors", "rotation_angle_atan2", "UNIT_TOL", "ACCEPT",
           "ERROR_DAMPING"]

#: a row whose lambda grew to this (its steps keep failing) while a joint is on a limit is kicked
STUCK_LAMBDA = 0.02
_TWO_PI = 2 * math.pi
#: step rules of :func:`solve_ik`: take every step, or only those that lower the cost enough
ACCEPT = ("always", "decrease")
#: Chan's ``k`` (damping ``lambda + k E``, ``E = |e|^2 / 2``). Exact after 10 iterations from the UR5e's draws:
#: 68 % with the refusing rule, 86 / 85 / 82 % at k = 0.03 / 0.1 / 0.3 (uniform starts 38, 73 / 73 / 64 %; Panda
#: draws 88, 91 / 90 / 90 %; 5 to 40 iterations in ``python benchmarks/ik.py convergence``'s
#: results/ik_speed_convergence_*.json). Robotics Toolbox's ik_LM damps with k = 1 alone (every step taken)
ERROR_DAMPING = 0.1


@dataclass
class IKResult:
    """What :func:`solve_ik` returns; every field has the batch shape of ``q_init`` (``(T, n)`` or ``(T,)``).

    Attributes:
        joints: ``(..., dof)`` inside the joint limits.
        position_error: ``(...)`` m, ``|p* - p(joints)|``.
        rotation_error: ``(...)`` rad, the angle of ``R* R(joints)^T`` (atan2 form, accurate near 0 and pi).
        success: ``(...)`` bool, both errors below their tolerances.
        iterations: ``(...)`` int, Jacobian evaluations spent on the row.
    """

    joints: torch.Tensor
    position_error: torch.Tensor
    rotation_error: torch.Tensor
    success: torch.Tensor
    iterations: torch.Tensor


# --------------------------------------------------------------------------------------- the solver
class _Box:
    """The joint limits of ``robot`` in one dtype/device: projection and the joints sitting on a limit.

    Continuous joints are wrapped to ``[-pi, pi)``. Revolute joints whose limits span a full turn or more
    (:func:`~posegen.robots.turns.full_turn_mask`: the UR5e's six) are *shifted* by the fewest whole turns that
    bring them inside (then clamped, for a range a hair short of a turn): the pose depends on such a joint only
    through its angle, so every iterate keeps its pose, and values inside the limits are untouched (the spread
    of the starts is kept). Other joints are clamped. ``lo``/``hi`` are ``-inf``/``inf`` for continuous and
    full-turn joints, so one comparison finds the joints that a limit holds.
    """

    def __init__(self, robot, like: torch.Tensor):
        lim = robot.joint_limits.to(like)
        free = torch.tensor([t == "continuous" for t in robot.joint_types], device=like.device)
        turns = full_turn_mask(robot).to(like.device)
        self.free, self.turns = free, turns
        self.any_free, self.any_turns = bool(free.any()), bool(turns.any())
        self.all_turns = bool(turns.all())
        self.any_held = not bool((free | turns).all())  # some joint that a limit can hold (else no active set)
        self.lim_lo, self.lim_hi = lim[:, 0], lim[:, 1]
        self.lo = torch.where(free | turns, -torch.inf, lim[:, 0])
        self.hi = torch.where(free | turns, torch.inf, lim[:, 1])
        self.width = torch.where(free, 0.0, lim[:, 1] - lim[:, 0])

    def project(self, q: torch.Tensor) -> torch.Tensor:
        """``q (B, dof)`` inside the limits (see the class docstring)."""
        if self.any_turns:  # whole turns towards the range, only for values outside it
            up = torch.ceil((self.lim_lo - q).clamp_min(0) / _TWO_PI)
            down = torch.ceil((q - self.lim_hi).clamp_min(0) / _TWO_PI)
            shifted = torch.clamp(q + _TWO_PI * (up - down), self.lim_lo, self.lim_hi)
            q = shifted if self.all_turns else torch.where(self.turns, shifted, q)
        if self.any_free:
            q = torch.where(self.free, torch.remainder(q + torch.pi, 2 * torch.pi) - torch.pi, q)
        return torch.clamp(q, self.lo, self.hi) if self.any_held else q

    def on_limits(self, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(at lower, at upper)`` ``(B, dof)`` bool: joints that a limit holds (neither continuous nor full-turn
        ones), on their limits."""
        return q <= self.lo, q >= self.hi


def _dls_step(J: torch.Tensor, e: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
    """``J^T (J J^T + lam I)^-1 e`` for ``J (B, 6, dof)``, ``e (B, 6)``, ``damping = lam I (B, 6, 6)`` ->
    ``(B, dof)``; a row whose system is numerically singular gets a zero step (it fails, so lambda grows)."""
    y, info = torch.linalg.solve_ex(torch.baddbmm(damping, J, J.transpose(-1, -2)), e.unsqueeze(-1))
    step = (J.transpose(-1, -2) @ y).squeeze(-1)
    return torch.where((info == 0).unsqueeze(-1), step, 0.0)


def _checked_inputs(robot, targets, q_init, quat_order: str, *, pos_tol, rot_tol, max_step, rot_weight,
                    min_damping, min_decrease, kick, max_iters, need=None, error_damping=0.0, accept="always"):
    """The checks of :func:`solve_ik`, before any work: ``(q0 (T, dof) or (T, n, dof), pos (T, 3), R (T, 3, 3))``."""
    for name, v in (("pos_tol", pos_tol), ("rot_tol", rot_tol), ("max_step", max_step), ("rot_weight", rot_weight),
                    ("min_damping", min_damping)):
        if not v > 0:
            raise ValueError(f"solve_ik: {name} must be > 0, got {v!r}")
    if not 0 <= min_decrease < 1:
        raise ValueError(f"solve_ik: min_decrease must be in [0, 1), got {min_decrease!r}")
    if not error_damping >= 0:
        raise ValueError(f"solve_ik: error_damping must be >= 0, got {error_damping!r}")
    if accept not in ACCEPT:
        raise ValueError(f"solve_ik: accept must be one of {list(ACCEPT)}, got {accept!r}")
    if not 0 <= kick <= 1:
        raise ValueError(f"solve_ik: kick must be in [0, 1] (a fraction of each joint's range), got {kick!r}")
    if int(max_iters) != max_iters or max_iters < 0:
        raise ValueError(f"solve_ik: max_iters must be a non-negative integer, got {max_iters!r}")
    if need is not None and (isinstance(need, bool) or int(need) != need or need < 1):
        raise ValueError(f"solve_ik: need must be a positive integer or None, got {need!r}")
    q0 = robot.check_joints(q_init)  # shape, finiteness and limits, one ValueError naming rows and joints
    if q0.dim() not in (2, 3):
        raise ValueError(f"solve_ik: q_init must have shape (T, {robot.dof}) or (T, n, {robot.dof}), got "
                         f"{tuple(q0.shape)}")
    pos, R = parse_targets(targets, quat_order, dtype=q0.dtype, device=q0.device)
    if pos.shape[0] != q0.shape[0]:
        raise ValueError(f"solve_ik: {pos.shape[0]} targets but q_init has {q0.shape[0]} rows (shape "
                         f"{tuple(q0.shape)}); give one start or one set of starts per target")
    return q0, pos, R


def solve_ik(robot, targets, q_init, *, quat_order: str = "xyzw", pos_tol: float = 1e-3,
             rot_tol: float = 1e-2, max_iters: int = 60, damping: float = 1e-4, max_step: float = 2.0,
             rot_weight: float = 1.0, kick: float = 1.0, seed: int = 0, min_damping: float = 1e-4,
             min_decrease: float = 0.01, error_damping: float = ERROR_DAMPING, accept: str = "always",
             need: Optional[int] = None) -> IKResult:
    """Refine ``q_init`` towards ``targets`` with projected damped least squares (see the module docstring).

    Args:
        robot: a :class:`~posegen.robots.Robot` (or a built-in name).
        targets: ``(T, 7)`` poses (position, quaternion in ``quat_order``) of the end effector, base frame.
        q_init: ``(T, dof)`` one start per target, or ``(T, n, dof)`` ``n`` starts per target; must be inside
            the joint limits (continuous joints: any angle). Its dtype and device are used throughout
            (float64 for tolerances much below 1e-5 m).
        quat_order: ``"xyzw"`` (default) or ``"wxyz"``.
        pos_tol, rot_tol: success tolerances, m and rad (defaults 1 mm, 0.01 rad). Rows stop once they meet
            them.
        max_iters: Jacobian evaluations per row at most.
        damping: initial ``lambda`` (m^2 units of ``J J^T``); adapted per row by the LM rule.
        min_damping: the smallest ``lambda`` the LM rule may reach (the dtype's own floor is 2e-12 in float64).
            1e-4 was measured best with the refusing rule (``accept="decrease"``, 20 random starts on 100 targets,
            60 iterations: success 74.5 / 78.9 / 92.1 % on the Panda / UR5e / iiwa14 against 65.9 / 69.3 / 86.2
            % without a floor and 76.7 / 79.2 / 92.4 % at 1e-3; at 0.1 mm / 0.001 rad 73.6 / 77.5 / 91.3 % against
            74.2 / 75.3 / 91.9 % at 1e-3).
        error_damping: ``k`` of Chan's damping: the step's damping is ``lambda + k E`` with ``E = |e|^2 / 2``, so
            far from the target (large ``E``) steps are short and gradient-like, close to it Gauss-Newton.
            0 turns it off. See :data:`ERROR_DAMPING` for the measurements behind the default.
        accept: ``"always"`` (default): every step is taken, as in Chan's and Robotics Toolbox's LM; a step that
            raises the cost grows ``lambda`` for the next one, and the best iterate is returned. ``"decrease"``:
            a step is taken only if it lowers the cost by ``min_decrease`` (solve_ik's rule before Chan's damping,
            with ``error_damping=0, max_step=0.5, damping=1e-3``: it wastes the iterations whose steps it
            refuses; :data:`ERROR_DAMPING` compares the two).
        min_decrease: a step that lowers the weighted squared error by less than this share counts as failed:
            ``lambda`` grows (x4; it shrinks /3 after a success), and a row whose steps keep failing while a joint
            sits on a limit is kicked. Why: with any decrease counted, rows in a minimum on a limit kept creeping
            and were never kicked (refusing rule, same protocol as ``min_damping``: 74.5 / 85.0 % on the Panda at
            0 / 1e-2).
        max_step: largest joint change of one step (rad or m, infinity norm); longer steps are scaled down.
            Chan's damping already shortens the steps far from the target; 2 rad binds rarely.
        rot_weight: weight of the rotation rows of the residual against the position rows (m per rad).
        kick: escape from minima on the limits. A row whose steps keep failing (``lambda`` grew to
            :data:`STUCK_LAMBDA`) while a joint sits on a limit has those joints moved inside by a uniform
            fraction in ``[0, kick)`` of their range (1: anywhere in it), and continues from there; the best
            iterate of each row is what is returned. 0 turns it off. Why: on Panda 97 % of the failures from
            learned starts ended with a joint on a limit; kicks took the success of 5000 learned starts
            from 93.9 % to 96.3 % and of random starts from 48 % to 64 % at 60 iterations (refusing rule).
        seed: seeds the kicks (results are reproducible for a given seed, dtype and device).
        need: with ``n`` starts per target (``q_init (T, n, dof)``), stop a target's rows once ``need`` of them
            have succeeded: the rest return where they are (their best iterate, ``success`` False unless they
            met the tolerances on the same iteration). For callers that want ``need`` solutions per target from
            spare starts: the rows in a slow approach or a minimum no longer iterate for a target that has its
            solutions. ``None`` (default): every row runs until it succeeds or ``max_iters``.

    Returns:
        :class:`IKResult` with the batch shape of ``q_init``. Unreachable targets give ``success`` False.

    Raises:
        ValueError: malformed targets (see :func:`parse_targets`), ``q_init`` of the wrong shape, outside the
            limits or not finite, non-positive tolerances, a negative ``error_damping`` or an unknown ``accept``.
    """
    robot = as_robot(robot)
    q0, pos, R = _checked_inputs(robot, targets, q_init, quat_order, pos_tol=pos_tol, rot_tol=rot_tol,
                                 max_step=max_step, rot_weight=rot_weight, min_damping=min_damping,
                                 min_decrease=min_decrease, kick=kick, max_iters=max_iters, need=need,
                                 error_damping=error_damping, accept=accept)
    # inference mode: no autograd bookkeeping in the many small ops of the iterations (13-19 % of a solve's time
    # on one thread); the results are cloned out of it, so they are ordinary tensors, and the kinematics caches
    # are made outside it (tests/test_kinematics.py)
    with torch.inference_mode():
        out = _solve(robot, q0, pos, R, max_iters, need, dict(
            pos_tol=pos_tol, rot_tol=rot_tol, damping=damping, max_step=max_step, rot_weight=rot_weight, kick=kick,
            seed=seed, min_damping=min_damping, min_decrease=min_decrease, error_damping=error_damping,
            accept=accept))
    out = {k: v.clone() for k, v in out.items()}
    batch = q0.shape[:-1]
    return IKResult(joints=out["q"].reshape(*batch, robot.dof), position_error=out["perr"].reshape(batch),
                    rotation_error=out["rerr"].reshape(batch), success=out["done"].reshape(batch),
                    iterations=out["iters"].reshape(batch))


def _solve(robot, q0: torch.Tensor, pos: torch.Tensor, R: torch.Tensor, max_iters: int, need: Optional[int],
           options) -> Dict[str, torch.Tensor]:
    """The iterations of :func:`solve_ik` on checked inputs: ``{q, perr, rerr, done, iters}`` of the rows of
    ``q0`` flattened to ``(-1, dof)``; with ``need``, a target's rows leave once ``need`` of them succeeded."""
    per = 1 if q0.dim() == 2 else q0.shape[1]
    q = q0.reshape(-1, robot.dof)
    lm = _LM(robot, q, **options)
    rows = lm.start(q, pos.repeat_interleave(per, 0), R.repeat_interleave(per, 0))
    out = {k: rows[k].clone() for k in _OUT}
    # successes per target so far (rows already written back included): only kept when ``need`` asks for it
    quota = None if need is None or need >= per else _Quota(pos.shape[0], per, int(need), q.device)
    for _ in range(int(max_iters)):
        lm.iterate(rows)
        # rows that met the tolerances (or whose target has its ``need``) leave the working set once they are a
        # quarter of it (or all of it): fewer gathers than compacting every iteration; a finished row is frozen
        leave = rows["done"] if quota is None else quota.leave(rows)
        n_leave = int(leave.sum())
        if n_leave and 4 * n_leave >= leave.numel():
            rows = _write_back(out, rows, lm, leave, quota)
            if rows is None:
                break
    if rows is not None:
        _write_back(out, rows, lm, rows["done"], quota)
    return out


class _Quota:
    """Successes per target for :func:`solve_ik`'s ``need``: rows ``idx // per`` belong to one target."""

    def __init__(self, n_targets: int, per: int, need: int, device):
        self.per, self.need = per, need
        self.found = torch.zeros(n_targets, dtype=torch.long, device=device)  # successes written back

    def leave(self, rows) -> torch.Tensor:
        """``(B,)`` bool: rows that are done, or whose target has ``need`` successes with this set's."""
        tgt = rows["idx"] // self.per
        have = self.found.index_add(0, tgt, rows["done"].long())
        return rows["done"] | (have[tgt] >= self.need)

    def record(self, rows, leave: torch.Tensor) -> None:
        """Count the successes among the rows that leave the working set."""
        self.found.index_add_(0, rows["idx"][leave] // self.per, rows["done"][leave].long())


#: the fields of a row that :func:`solve_ik` returns
_OUT = ("q", "perr", "rerr", "done", "iters")


def _write_back(out: Dict[str, torch.Tensor], rows: Dict[str, torch.Tensor], lm: "_LM", leave: torch.Tensor,
                quota: Optional[_Quota]):
    """Store the working rows' results in ``out`` (rows that did not succeed return their best iterate) and
    return the working set without the rows that ``leave`` (None when none is left)."""
    res = lm.result(rows)
    idx = rows["idx"]
    for k in _OUT:
        out[k][idx] = res[k]
    if quota is not None:
        quota.record(rows, leave)
    keep = (~leave).nonzero().flatten()
    if keep.numel() == 0:
        return None
    return {k: v[keep] for k, v in rows.items()}


class _LM:
    """One projected Levenberg-Marquardt iteration on a working set of rows (see :func:`solve_ik`).

    A working set is a dict of tensors with one row per IK problem: ``idx`` (row of the caller's batch), ``q``,
    ``pos``, ``R`` (target), ``e`` (weighted residual), ``perr``, ``rerr``, ``cost`` (``|e|^2``), ``J`` (weighted
    Jacobian at ``q``), ``lam``, ``iters``, ``done``, and the best iterate so far (``best_q``, ``best_perr``,
    ``best_rerr``, ``best_cost``): with ``accept="always"`` a step may raise the cost, and with kicks a row
    restarts, so a row that does not succeed returns its best iterate, not its last.
    """

    def __init__(self, robot, like: torch.Tensor, *, pos_tol, rot_tol, damping, max_step, rot_weight, kick, seed,
                 min_damping, min_decrease, error_damping, accept):
        self.robot, self.box = robot, _Box(robot, like)
        self.pos_tol, self.rot_tol, self.damping, self.max_step = pos_tol, rot_tol, float(damping), max_step
        self.kick, self.keep_share = kick, 1 - min_decrease
        self.error_damping, self.refuse = float(error_damping) / 2, accept == "decrease"  # k E = (k / 2) |e|^2
        self.w = None if rot_weight == 1 else torch.tensor([1.0] * 3 + [rot_weight] * 3, dtype=like.dtype,
                                                          device=like.device)
        # smallest lambda: J J^T stays well conditioned in the dtype (its entries are ~1), and no step trusts the
        # linear model more than min_damping allows
        self.lam_min = max(1e4 * torch.finfo(like.dtype).eps, float(min_damping))
        self.eye = torch.eye(6, dtype=like.dtype, device=like.device)
        self.gen = torch.Generator(device=like.device).manual_seed(int(seed)) if kick > 0 else None

    def evaluate(self, q: torch.Tensor, pos: torch.Tensor, R: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Weighted residual, errors, cost and weighted Jacobian of joints ``q (B, dof)``."""
        T, J = self.robot._fk_and_jacobian(q)
        e, perr, rerr = pose_errors(T, pos, R)
        if self.w is not None:
            e, J = e * self.w, J * self.w[:, None]
        return {"q": q, "e": e, "perr": perr, "rerr": rerr, "cost": e.square().sum(-1), "J": J}

    def start(self, q: torch.Tensor, pos: torch.Tensor, R: torch.Tensor) -> Dict[str, torch.Tensor]:
        rows = self.evaluate(q, pos, R)
        B = q.shape[0]
        rows.update(idx=torch.arange(B, device=q.device), pos=pos, R=R,
                    lam=torch.full((B,), self.damping, dtype=q.dtype, device=q.device),
                    iters=torch.zeros(B, dtype=torch.long, device=q.device), done=self._done(rows))
        rows.update(best_q=q, best_perr=rows["perr"], best_rerr=rows["rerr"], best_cost=rows["cost"])
        return rows

    def _done(self, rows) -> torch.Tensor:
        return (rows["perr"] < self.pos_tol) & (rows["rerr"] < self.rot_tol)

    def step(self, rows) -> torch.Tensor:
        """The damped least-squares step of every row (damping ``lam + k E``), active joints (on a limit, pushed
        outwards) held."""
        J, e, q = rows["J"], rows["e"], rows["q"]
        lam = rows["lam"] if not self.error_damping else torch.add(rows["lam"], rows["cost"], alpha=self.error_damping)
        damping = lam[:, None, None] * self.eye
        step = _dls_step(J, e, damping)
        if not self.box.any_held:  # no joint that a limit holds: no active set
            big = step.abs().amax(-1, keepdim=True)
            return step * (self.max_step / big.clamp_min(self.max_step))
        at_lo, at_hi = self.box.on_limits(q)
        act = (at_lo & (step < 0)) | (at_hi & (step > 0))
        if bool(act.any()):  # drop the held joints' columns and solve again, so the free joints take over
            step = torch.where(act, 0.0, _dls_step(J * (~act).unsqueeze(-2), e, damping))
        big = step.abs().amax(-1, keepdim=True)
        return step * (self.max_step / big.clamp_min(self.max_step))

    def iterate(self, rows: Dict[str, torch.Tensor]) -> None:
        """One step of every row that has not finished, in place. A step that lowers the cost by the sufficient
        share shrinks ``lam``, one that does not grows it (the next step is shorter, and a row held on a limit so
        is kicked); with ``accept="always"`` every step is taken (Chan's LM), with ``"decrease"`` only the former
        ones. The best iterate of each row is kept."""
        new = self.evaluate(self.box.project(rows["q"] + self.step(rows)), rows["pos"], rows["R"])
        live = ~rows["done"]
        # sufficient decrease: a step that barely lowers the cost counts as failed, so lambda grows and a row
        # creeping along a joint limit is kicked instead of spending its iterations there
        gain = new["cost"] < rows["cost"] * self.keep_share
        lam = rows["lam"]
        rows["lam"] = torch.where(gain, (lam / 3).clamp_min(self.lam_min), (lam * 4).clamp_max(1e4))
        if not self.refuse and bool(live.all()):  # every row takes its step: no selection
            rows.update(new)
        else:
            take = live & gain if self.refuse else live
            for k, v in new.items():
                rows[k] = torch.where(take.view(-1, *([1] * (v.dim() - 1))), v, rows[k])
        rows["iters"] = rows["iters"] + live
        rows["done"] = self._done(rows)
        if not self.refuse:  # the cost may have risen: keep the best iterate (with refusals the last one is it)
            self._keep_best(rows)
        if self.gen is not None and self.box.any_held:  # kicks move joints off limits that hold them
            self._kick(rows)

    def _keep_best(self, rows: Dict[str, torch.Tensor]) -> None:
        better = rows["cost"] < rows["best_cost"]
        for k in ("q", "perr", "rerr", "cost"):
            v = rows[k]
            rows["best_" + k] = torch.where(better.view(-1, *([1] * (v.dim() - 1))), v, rows["best_" + k])

    def _kick(self, rows: Dict[str, torch.Tensor]) -> None:
        """Rows whose steps keep failing while a joint sits on a limit: those joints redrawn inside."""
        at_lo, at_hi = self.box.on_limits(rows["q"])
        stuck = (~rows["done"] & (rows["lam"] >= STUCK_LAMBDA) & (at_lo | at_hi).any(-1)).nonzero().flatten()
        if stuck.numel() == 0:
            return
        if self.refuse:  # the iterate before the kick is the best since the previous one: keep it if it is better
            better = stuck[rows["cost"][stuck] < rows["best_cost"][stuck]]
            for k in ("q", "perr", "rerr", "cost"):
                rows["best_" + k] = rows["best_" + k].index_copy(0, better, rows[k][better])
        box, qs = self.box, rows["q"][stuck]
        u = self.kick * box.width * torch.rand(stuck.numel(), qs.shape[-1], generator=self.gen, dtype=qs.dtype,
                                               device=qs.device)
        qs = torch.where(at_lo[stuck], box.lo + u, torch.where(at_hi[stuck], box.hi - u, qs))
        new = self.evaluate(qs, rows["pos"][stuck], rows["R"][stuck])
        for k, v in new.items():
            rows[k] = rows[k].index_copy(0, stuck, v)
        rows["lam"] = rows["lam"].index_fill(0, stuck, self.damping)
        rows["done"] = self._done(rows)

    def result(self, rows: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``q, perr, rerr, done, iters`` of the working rows; a row that did not succeed returns its best
        iterate."""
        back = ~rows["done"] & (rows["best_cost"] < rows["cost"])
        out = {k: torch.where(back.view(-1, *([1] * (rows[k].dim() - 1))), rows["best_" + k], rows[k])
               for k in ("q", "perr", "rerr")}
        return {**out, "done": rows["done"], "iters": rows["iters"]}
