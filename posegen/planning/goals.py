"""Goal joint configurations from grasp poses: reachable (IK inside the limits) and valid for a checker.

Two ways in: :func:`goals_from_poses` takes grasp poses ``(m, 4, 4)`` (from any grasp generator, ranked by
the caller) and :func:`grasp_goal_configs` draws them from a learned grasp model first (its ``top_k`` and
``se3_parts``). IK starts come from fixed seeds around the ready configuration or from a learned
:class:`~posegen.samplers.IKSampler` (every IK branch). Nothing here needs OMPL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..robots import as_robot
from ..robots.collision import CollisionChecker, ready_configuration
from ..robots.ik import solve_ik
from ..rotations import pos_quat_from_se3, se3_from_pos_quat

__all__ = ["GraspGoals", "goals_from_poses", "grasp_goal_configs"]

#: IK settings of goal configurations: 0.1 mm and 0.06 degrees
GOAL_IK = dict(max_iters=200, pos_tol=1e-4, rot_tol=1e-3)


@dataclass
class GraspGoals:
    """Goal configurations from grasp poses.

    ``q (m, dof)`` joint configurations (inside the limits, valid for the checker), ``T (m, 4, 4)`` their grasp
    poses (TCP, base frame), ``log_prob (m,)`` the grasp model's log-density of each pose (in the order given,
    highest first for a model's ``top_k``), ``n_candidates`` grasps drawn, ``n_ik_success`` grasps with an IK
    solution, ``n_valid`` of those that are collision-free.
    """

    q: torch.Tensor
    T: torch.Tensor
    log_prob: torch.Tensor
    n_candidates: int
    n_ik_success: int
    n_valid: int


def _first_valid(valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For ``valid (m, s)``: ``has (m,)`` (any valid start) and ``first (m,)`` (the first valid one; 0 if none)."""
    return valid.any(1), valid.to(torch.int8).argmax(1)


def _default_seeds(robot, seed: Optional[int]) -> torch.Tensor:
    """The ready configuration and three perturbations of it, inside the limits: ``(4, dof)``."""
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    ready = ready_configuration(robot)
    seeds = torch.cat([ready[None], ready + 0.3 * torch.randn(3, robot.dof, generator=g, dtype=torch.float64)])
    lim = robot.joint_limits
    return torch.minimum(torch.maximum(seeds, lim[:, 0]), lim[:, 1])


def goals_from_poses(T, log_prob=None, *, checker: Optional[CollisionChecker] = None, robot=None, ik_seeds=None,
                     ik_sampler=None, n_ik: int = 8, seed: Optional[int] = None, n_candidates: Optional[int] = None,
                     **ik_options) -> GraspGoals:
    """Per grasp pose ``T (m, 4, 4)`` (end-effector link, base frame), the first IK solution that converged and
    is valid for ``checker``; grasps without one are dropped.

    Args:
        log_prob: ``(m,)`` scores carried along (default zeros).
        checker: collision checker; its robot is the robot (else ``robot``, else the IK sampler's, else the
            Panda).
        ik_seeds: ``(s, dof)`` starts inside the limits (default the robot's ready configuration and three
            perturbations of it).
        ik_sampler: a :class:`~posegen.samplers.IKSampler` of the robot: ``n_ik`` refined, checked draws per
            grasp instead of ``ik_seeds``.
        n_candidates: how many grasps were drawn to get these (reported; default ``m``).
        ik_options: passed to :func:`~posegen.robots.ik.solve_ik` (default :data:`GOAL_IK`).
    """
    T = torch.as_tensor(T, dtype=torch.float64).cpu()
    if T.dim() != 3 or T.shape[1:] != (4, 4) or not torch.isfinite(T).all():
        raise ValueError(f"grasp poses must be finite (m, 4, 4) transforms, got shape {tuple(T.shape)}")
    m = T.shape[0]
    lp = torch.zeros(m, dtype=torch.float64) if log_prob is None else torch.as_tensor(log_prob).double().cpu()
    if ik_sampler is not None:
        if ik_seeds is not None:
            raise ValueError("grasp_goal_configs: give ik_seeds or ik_sampler, not both")
        robot = ik_sampler.robot
        if checker is not None and list(checker.robot.joint_names) != list(robot.joint_names):
            raise ValueError(f"grasp_goal_configs: the checker is for {checker.robot.name}, the IK sampler for "
                             f"{robot.name}")
        if int(n_ik) != n_ik or n_ik < 1:
            raise ValueError(f"grasp_goal_configs: n_ik must be a positive integer, got {n_ik!r}")
    else:
        robot = checker.robot if checker is not None else as_robot("panda" if robot is None else robot,
                                                                   "grasp_goal_configs")
    n_candidates = m if n_candidates is None else int(n_candidates)
    targets = torch.cat(pos_quat_from_se3(T, "xyzw"), -1)
    opts = {**GOAL_IK, **ik_options}
    if m == 0:
        return GraspGoals(q=torch.zeros(0, robot.dof, dtype=torch.float64), T=T, log_prob=lp,
                          n_candidates=n_candidates, n_ik_success=0, n_valid=0)
    if ik_sampler is not None:
        out = ik_sampler.sample(targets, int(n_ik), seed=seed, refine=True, checker=checker, **opts)
        ok = out["success"].cpu()
        valid = ok & out["collision_free"].cpu() if checker is not None else ok
        q = out["joints"].double().cpu()  # rows come valid first
    else:
        seeds = torch.as_tensor(_default_seeds(robot, seed) if ik_seeds is None else ik_seeds,
                                dtype=torch.float64).reshape(-1, robot.dof)
        sol = solve_ik(robot, targets, seeds.expand(m, -1, -1), quat_order="xyzw", **opts)
        q, ok = sol.joints, sol.success
        valid = ok.clone()
        if checker is not None:
            valid &= checker.is_valid(q.reshape(-1, robot.dof)).cpu().view(ok.shape)
    has, first = _first_valid(valid)
    q = q[torch.arange(m), first]
    return GraspGoals(q=q[has], T=T[has], log_prob=lp[has], n_candidates=n_candidates,
                      n_ik_success=int(ok.any(1).sum()), n_valid=int(has.sum()))


def grasp_goal_configs(grasp_sampler, object_pos, *, n_candidates: int = 64, k: int = 16,
                       checker: Optional[CollisionChecker] = None, robot=None, ik_seeds=None, ik_sampler=None,
                       n_ik: int = 8, seed: Optional[int] = None, **ik_options) -> GraspGoals:
    """Goal joint configurations for grasping an object at ``object_pos``.

    Draws ``n_candidates`` grasp poses from ``grasp_sampler`` (a :class:`~posegen.samplers.PoseSampler` of a
    conditional model on ``R3 x SO3``, condition = object position), keeps the ``k`` most likely (its
    ``top_k``), and hands them to :func:`goals_from_poses` (``checker``, ``robot``, ``ik_seeds``,
    ``ik_sampler``, ``n_ik``, ``seed``, ``ik_options`` as there; the robot defaults to the grasp model's).
    """
    res = grasp_sampler.top_k(int(n_candidates), int(k), condition=object_pos, seed=seed)
    p_pos, p_rot = grasp_sampler.se3_parts()
    T = se3_from_pos_quat(res[p_pos.name], res[p_rot.name], grasp_sampler.quat_order)
    if robot is None and checker is None and ik_sampler is None:
        robot = getattr(grasp_sampler, "robot", None)
    return goals_from_poses(T, res["log_prob"].detach(), checker=checker, robot=robot, ik_seeds=ik_seeds,
                            ik_sampler=ik_sampler, n_ik=n_ik, seed=seed, n_candidates=int(n_candidates),
                            **ik_options)
