r"""From grasp candidates to ranked, reachable joint goals with a clear approach, and a plan to the best one.

:func:`reach_grasps` takes grasp poses in the object frame (any generator: :class:`~posegen.samplers.GraspSampler`,
:func:`~posegen.grasps.sample_antipodal`, an ACRONYM file) with their log-densities, and a
:class:`~posegen.planning.grasp.GraspWorld`, and runs these stages, counting the survivors of each:

1. **gripper**: the open gripper at the grasp is clear of the object and above the table, tested exactly
   (boxes against the object's surface points, :func:`posegen.grasps.gripper_collides`);
2. **reachable**: inverse kinematics of the end-effector target (:func:`~posegen.planning.grasp.ee_targets`):
   ``n_ik`` refined draws of a learned :class:`~posegen.samplers.IKSampler` when one is given, else damped least
   squares (:func:`~posegen.robots.ik.solve_ik`) from the ready configuration and ``n_ik - 1`` uniform starts
   inside the limits; a grasp is reachable when one solution meets ``pos_tol`` / ``rot_tol`` inside the limits;
3. **collision-free**: one such solution valid for the world's :class:`~posegen.planning.grasp.GraspChecker`
   (robot vs table and itself, arm vs object); of several, the nearest to ``home`` (shorter motions);
4. **approach**: the pre-grasp pose, the grasp moved back by ``pregrasp`` metres along the approach axis, has
   an IK solution from the grasp's (one refinement from it: the same branch, a short motion) that is valid
   with the object as an obstacle for every link (``world.checker``); and the straight joint-space motion
   from the pre-grasp to the grasp is valid for the grasp checker at configurations at most ``resolution``
   rad apart (largest joint change, as OMPL's motions in :func:`~posegen.planning.ompl.plan`), with the open
   gripper exactly clear of the object and the table at each, and the TCP within ``approach_tolerance`` of the
   straight line (:func:`approach_clear`).

Survivors are ranked by log-density, most probable first (draw order where none is given). :func:`plan_grasp`
plans with OMPL from a start to the best survivor's pre-grasp configuration (the object an obstacle for every
link) and appends the checked approach (:class:`GraspPlan`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..grasps import get_gripper, gripper_collides
from ..robots.collision import segment_points
from ..robots.ik import solve_ik
from ..robots.spheremodel import ready_configuration
from ..rotations import check_rigid
from .grasp import GraspWorld, approach_offset, ee_targets, grasps_in_base
from .ompl import PlanResult, plan

__all__ = ["GraspReach", "GraspPlan", "reach_grasps", "approach_clear", "plan_grasp", "GOAL_TOL", "STAGES"]

#: IK tolerances of grasp goals: 0.1 mm and 0.001 rad (within the tests' 1 mm / 0.01 rad by a margin)
GOAL_TOL = dict(pos_tol=1e-4, rot_tol=1e-3)
#: the stages of :func:`reach_grasps`, in order (keys of :attr:`GraspReach.counts` after "candidates")
STAGES = ("gripper", "reachable", "collision_free", "approach")


@dataclass
class GraspReach:
    """The grasps that survived every stage of :func:`reach_grasps`, most probable first.

    Attributes:
        index: ``(m,)`` their rows in the candidates given.
        log_prob: ``(m,)`` their log-densities (NaN where none was given).
        grasps: ``(m, 4, 4)`` grasp frames in the base frame; pregrasps: ``(m, 4, 4)`` the pre-grasp frames.
        q_grasp, q_pregrasp: ``(m, dof)`` float64 joint configurations at them.
        counts: candidates, then the survivors after each of :data:`STAGES`.
        seconds: wall time of each stage.
        ik: how IK was solved (a sentence for printing).
    """

    index: torch.Tensor
    log_prob: torch.Tensor
    grasps: torch.Tensor
    pregrasps: torch.Tensor
    q_grasp: torch.Tensor
    q_pregrasp: torch.Tensor
    counts: Dict[str, int] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    ik: str = ""

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def select(self, keep, stage: str, seconds: float = 0.0) -> "GraspReach":
        """The rows where ``keep (m,)`` (bool) is True, in the same order, with ``stage`` counted (a filter applied
        after :func:`reach_grasps`, e.g. a physics test of the grasps)."""
        keep = torch.as_tensor(keep, dtype=torch.bool)
        if keep.shape != (len(self),):
            raise ValueError(f"keep must be ({len(self)},) bool, one per grasp, got shape {tuple(keep.shape)}")
        return GraspReach(index=self.index[keep], log_prob=self.log_prob[keep], grasps=self.grasps[keep],
                          pregrasps=self.pregrasps[keep], q_grasp=self.q_grasp[keep], q_pregrasp=self.q_pregrasp[keep],
                          counts={**self.counts, stage: int(keep.sum())},
                          seconds={**self.seconds, stage: float(seconds)}, ik=self.ik)


def _gripper_free(world: GraspWorld, grasps_obj: torch.Tensor) -> torch.Tensor:
    """``(n,)`` bool: the open gripper at ``grasps_obj (n, 4, 4)`` (object frame) misses the object and the table."""
    hit = gripper_collides(grasps_obj.numpy(), get_gripper(world.mount.gripper), world.collider, support=world.support)
    return torch.from_numpy(~hit)


def _ik(world: GraspWorld, targets: torch.Tensor, ik_sampler, n_ik: int, seed: int,
        max_iters: int) -> Tuple[torch.Tensor, torch.Tensor, str]:
    """Solutions ``q (k, n_ik, dof)`` for ``targets (k, 7)`` (xyzw), ``ok (k, n_ik)`` (exact, inside the limits)
    and a sentence saying how."""
    robot, checker = world.robot, world.grasp_checker
    if targets.shape[0] == 0:
        return (torch.zeros(0, n_ik, robot.dof, dtype=torch.float64), torch.zeros(0, n_ik, dtype=torch.bool),
                "none solved (no grasp left)")
    if ik_sampler is not None:
        out = ik_sampler.sample(targets, n_ik, seed=seed, refine=True, **GOAL_TOL)
        q = out["joints"].to(torch.float64)
        return q, out["success"] & checker.within_limits(q), f"IKSampler ({n_ik} refined draws per grasp)"
    g = torch.Generator().manual_seed(int(seed))
    lim = robot.joint_limits.to(torch.float64)
    u = torch.rand(targets.shape[0], n_ik - 1, robot.dof, generator=g, dtype=torch.float64)
    starts = torch.cat([ready_configuration(robot).expand(targets.shape[0], 1, -1),
                        lim[:, 0] + u * (lim[:, 1] - lim[:, 0])], 1)
    sol = solve_ik(robot, targets, starts, quat_order="xyzw", max_iters=max_iters, seed=seed, **GOAL_TOL)
    q = sol.joints.to(torch.float64)
    return q, sol.success & checker.within_limits(q), (f"solve_ik from the ready configuration and {n_ik - 1} "
                                                       f"uniform starts per grasp")


def _nearest_valid(world: GraspWorld, q: torch.Tensor, ok: torch.Tensor, home: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per grasp, the solution of ``q (k, n, dof)`` nearest ``home`` among those ``ok (k, n)`` and valid for the
    grasp checker: ``has (k,)`` and ``q_goal (k, dof)`` (rows without one: undefined). Checked nearest first,
    one batch per rank, so a grasp whose nearest solution is valid costs one check."""
    k, n, _ = q.shape
    order = torch.where(ok, (q - home).norm(dim=-1), torch.inf).argsort(1)               # (k, n)
    has = torch.zeros(k, dtype=torch.bool)
    pick = torch.zeros(k, dtype=torch.long)
    for r in range(n):
        rows = (~has & ok.gather(1, order[:, r:r + 1]).squeeze(1)).nonzero().flatten()
        if len(rows) == 0:
            continue
        good = world.grasp_checker.collision_free(q[rows, order[rows, r]])
        has[rows[good]], pick[rows[good]] = True, order[rows[good], r]
    return has, q[torch.arange(k), pick]


def _tcp(world: GraspWorld, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For ``q (B, dof)``: grasp frames ``(B, 4, 4)`` in the object frame, TCP positions ``(B, 3)`` in the base."""
    T_b_g = world.robot.frames(q, [world.mount.link])[world.mount.link].double() @ torch.as_tensor(
        world.mount.link_from_grasp)
    tcp = T_b_g[:, :3, 3] + get_gripper(world.mount.gripper).tcp_offset * T_b_g[:, :3, 2]
    return torch.linalg.inv(world.object_pose) @ T_b_g, tcp


def approach_clear(world: GraspWorld, q_from: torch.Tensor, q_to: torch.Tensor, resolution: float = 0.025,
                   tolerance: float = 0.01) -> torch.Tensor:
    """``(k,)`` bool: whether each straight joint-space approach ``q_from -> q_to`` (``(k, dof)``) is clear.

    At configurations at most ``resolution`` rad apart after ``q_from`` (largest joint change; each segment its
    own count): valid for the grasp checker, the open gripper exactly clear of the object and the table, and
    the TCP within ``tolerance`` (m) of the straight line between its two ends (the gripper moves along its
    approach, not around)."""
    k = q_to.shape[0]
    q, row = segment_points(q_from, q_to, resolution)                                        # (sum steps, dof)
    T_o_g, tcp = _tcp(world, q)
    _, ends = _tcp(world, torch.cat([q_from, q_to]))
    a, ab = ends[:k][row], (ends[k:] - ends[:k])[row]
    s = ((tcp - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-18)
    off = (tcp - a - s.clamp(0, 1)[:, None] * ab).norm(dim=-1)
    bad = ~(world.grasp_checker.is_valid(q) & _gripper_free(world, T_o_g)) | (off > tolerance)
    return torch.bincount(row[bad], minlength=k) == 0


def _check_candidates(grasps, log_prob) -> Tuple[torch.Tensor, torch.Tensor]:
    T = check_rigid(grasps, "grasps")
    if T.shape[0] == 0:
        raise ValueError("grasps must hold at least one (4, 4) transform, got none")
    if log_prob is None:
        return T, torch.full((T.shape[0],), float("nan"), dtype=torch.float64)
    lp = torch.as_tensor(log_prob, dtype=torch.float64).reshape(-1)
    if lp.shape != (T.shape[0],) or bool(torch.isnan(lp).any()):
        raise ValueError(f"log_prob must be ({T.shape[0]},) numbers without NaN (one per grasp), got shape "
                         f"{tuple(lp.shape)}")
    return T, lp


def _check_options(world: GraspWorld, ik_sampler, **v) -> None:
    """ValueError naming the first bad option of :func:`reach_grasps`."""
    for name, lo in (("n_ik", 1 if ik_sampler is not None else 2), ("max_iters", 1)):
        if isinstance(v[name], bool) or int(v[name]) != v[name] or v[name] < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v[name]!r}")
    if not (float(v["pregrasp"]) >= 0.0 and math.isfinite(v["pregrasp"])):
        raise ValueError(f"pregrasp must be a finite distance >= 0 (m), got {v['pregrasp']!r}")
    for name in ("resolution", "approach_tolerance"):
        if not (float(v[name]) > 0.0 and math.isfinite(v[name])):
            raise ValueError(f"{name} must be a finite number > 0, got {v[name]!r}")
    if ik_sampler is not None and list(ik_sampler.robot.joint_names) != list(world.robot.joint_names):
        raise ValueError(f"ik_sampler is for {ik_sampler.robot.name}, the world's robot is {world.robot.name}")


def reach_grasps(world: GraspWorld, grasps, log_prob=None, *, ik_sampler=None, n_ik: int = 8,
                 pregrasp: float = 0.1, resolution: float = 0.025, approach_tolerance: float = 0.01,
                 max_iters: int = 100, home=None, seed: int = 0) -> GraspReach:
    """Ranked grasp goals of ``world``'s robot for ``grasps (n, 4, 4)`` (object frame; module docstring).

    Args:
        log_prob: ``(n,)`` the grasps' log-densities (ranking; default none: draw order).
        ik_sampler: an :class:`~posegen.samplers.IKSampler` of the robot (else numerical IK from starts).
        n_ik: IK draws (or starts) per grasp, >= 1 (>= 2 without a sampler: the ready configuration and
            ``n_ik - 1`` uniform starts).
        pregrasp: distance (m) the pre-grasp pose backs off along the approach axis, >= 0.
        resolution: largest joint change (rad) between the configurations checked on the approach, > 0.
        approach_tolerance: largest distance (m) of the TCP from the straight approach line, > 0.
        max_iters: damped least-squares iterations of numerical IK and of the pre-grasp refinement.
        home: ``(dof,)`` the configuration the motion starts from (default the ready configuration): of a
            grasp's valid IK solutions the nearest to it (joint-space L2) is its goal.
        seed: seeds the IK draws or starts.
    """
    T_o_g, lp = _check_candidates(grasps, log_prob)
    home = ready_configuration(world.robot) if home is None else torch.as_tensor(home, dtype=torch.float64)
    if home.shape != (world.robot.dof,) or not bool(torch.isfinite(home).all()):
        raise ValueError(f"home must be ({world.robot.dof},) finite joint values, got shape {tuple(home.shape)}")
    _check_options(world, ik_sampler, n_ik=n_ik, max_iters=max_iters, pregrasp=pregrasp, resolution=resolution,
                   approach_tolerance=approach_tolerance)
    counts, seconds = {"candidates": int(T_o_g.shape[0])}, {}
    clock = time.perf_counter()

    def stage(name: str, keep: torch.Tensor) -> None:
        nonlocal clock
        counts[name] = int(keep.sum())
        seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()

    idx = torch.arange(T_o_g.shape[0])
    keep = _gripper_free(world, T_o_g)
    stage("gripper", keep)
    idx = idx[keep]
    T_b_g = grasps_in_base(T_o_g[idx], world.object_pose)
    q, ok, how = _ik(world, ee_targets(T_b_g, world.robot, world.mount), ik_sampler, int(n_ik), seed,
                     int(max_iters))
    stage("reachable", ok.any(1))
    has, q_goal = _nearest_valid(world, q, ok, home)
    q_goal, idx, T_b_g = q_goal[has], idx[has], T_b_g[has]
    stage("collision_free", has)
    T_pre = approach_offset(T_b_g, pregrasp)
    q_pre, ok_pre = q_goal.clone(), torch.zeros(len(idx), dtype=torch.bool)
    if len(idx):
        sol = solve_ik(world.robot, ee_targets(T_pre, world.robot, world.mount), q_goal, quat_order="xyzw",
                       max_iters=int(max_iters), seed=seed, **GOAL_TOL)
        q_pre = sol.joints.to(torch.float64)
        ok_pre = sol.success & world.checker.is_valid(q_pre)
        ok_pre &= approach_clear(world, q_pre, q_goal, float(resolution), float(approach_tolerance))
    stage("approach", ok_pre)
    order = torch.argsort(-lp[idx[ok_pre]], stable=True) if log_prob is not None else torch.arange(int(ok_pre.sum()))
    sel = ok_pre.nonzero().flatten()[order]
    return GraspReach(index=idx[sel], log_prob=lp[idx[sel]], grasps=T_b_g[sel], pregrasps=T_pre[sel],
                      q_grasp=q_goal[sel], q_pregrasp=q_pre[sel], counts=counts, seconds=seconds, ik=how)


@dataclass
class GraspPlan:
    """Outcome of :func:`plan_grasp`: ``rank`` of the grasp planned to in the :class:`GraspReach` (None if no
    try was solved), ``results`` every :class:`~posegen.planning.ompl.PlanResult` tried, in rank order, and ``path
    (p, dof)`` float64 from the start through the pre-grasp to the grasp configuration (None if unsolved)."""

    rank: Optional[int]
    results: List[PlanResult]
    path: Optional[np.ndarray]

    @property
    def solved(self) -> bool:
        return self.path is not None


def plan_grasp(world: GraspWorld, reach: GraspReach, start=None, *, tries: int = 3, planner: str = "RRTConnect",
               time_limit: float = 10.0, seed: Optional[int] = 0, simplify: bool = False) -> GraspPlan:
    """Plan from ``start`` (``(dof,)``, default the robot's ready configuration) to the pre-grasp configuration of
    the best grasp of ``reach`` with OMPL (:func:`~posegen.planning.ompl.plan`: ``planner``, ``time_limit`` s,
    ``seed``, ``simplify``; the object an obstacle for every link), then to the next best, up to ``tries`` grasps,
    until one is solved; the checked approach to the grasp configuration ends the path.

    Raises:
        ValueError: ``tries`` < 1, a ``start`` of the wrong shape or not valid in the world.
    """
    if isinstance(tries, bool) or int(tries) != tries or tries < 1:
        raise ValueError(f"tries must be an integer >= 1, got {tries!r}")
    q0 = ready_configuration(world.robot) if start is None else torch.as_tensor(start, dtype=torch.float64)
    if q0.shape != (world.robot.dof,):
        raise ValueError(f"start must have shape ({world.robot.dof},), got {tuple(q0.shape)}")
    if not bool(world.checker.is_valid(q0)):
        raise ValueError(f"start {q0.tolist()} is not valid in the grasp world (limits, table, object, self)")
    results: List[PlanResult] = []
    for rank in range(min(int(tries), len(reach))):
        res = plan(world.checker, q0, reach.q_pregrasp[rank], planner=planner, time_limit=time_limit, seed=seed,
                   simplify=simplify)
        results.append(res)
        if res.solved:
            return GraspPlan(rank, results, np.concatenate([res.path, reach.q_grasp[rank].numpy()[None]]))
    return GraspPlan(None, results, None)
