"""Robot-state extras of a sampler: the end-effector pose of sampled joints, and IK reachability of poses."""

from __future__ import annotations

from typing import Dict

import torch

from ..robots.ik import solve_ik

__all__ = ["end_effector_pose", "reachable"]


def end_effector_pose(robot, joints: torch.Tensor, quat_order: str) -> Dict[str, torch.Tensor]:
    """``{"position": (..., 3), "quat": (..., 4)}`` of ``joints (..., dof)`` by the robot's forward kinematics,
    the quaternion in ``quat_order``."""
    pos, quat = robot.pose(joints, quat_order=quat_order)
    return {"position": pos, "quat": quat}


def reachable(robot, position, quat, *, quat_order: str, n_starts: int = 8, seed: int = 0, pos_tol: float = 1e-3,
              rot_tol: float = 1e-2) -> Dict[str, torch.Tensor]:
    """Whether ``robot`` can put its end effector at each pose: inverse kinematics (projected damped least
    squares, :func:`posegen.robots.ik.solve_ik`) from ``n_starts`` uniform configurations inside the limits
    converges within ``pos_tol`` (m) and ``rot_tol`` (rad) for at least one of them.

    Args:
        position ``(T, 3)`` and quat ``(T, 4)`` in ``quat_order``: poses in the robot's base frame.
    Returns:
        ``{"reachable": (T,) bool, "joints": (T, dof) a solution inside the limits (the best start where
        none succeeded), "position_error": (T,), "rotation_error": (T,)}`` (float64).
    A pose that fails is reported as unreachable, never an exception; a finite number of starts can miss a
    reachable pose near the workspace boundary (more starts, fewer misses).
    """
    pos = torch.as_tensor(position, dtype=torch.float64).reshape(-1, 3)
    q = torch.as_tensor(quat, dtype=torch.float64).reshape(-1, 4)
    if pos.shape[0] != q.shape[0]:
        raise ValueError(f"reachable: position has {pos.shape[0]} rows but quat has {q.shape[0]}")
    # starts: uniform configurations, the base distribution of the robot's joint space
    starts = robot.manifold.sample_base((pos.shape[0], int(n_starts)),
                                        generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    res = solve_ik(robot, torch.cat([pos, q], -1), starts, quat_order=quat_order, pos_tol=pos_tol, rot_tol=rot_tol)
    # per pose, a successful start if there is one, else the one closest to the target
    score = res.position_error + res.rotation_error * 0.1 - 1e3 * res.success.double()
    best = score.argmin(-1)
    rows = torch.arange(pos.shape[0])
    return {"reachable": res.success.any(-1), "joints": res.joints[rows, best],
            "position_error": res.position_error[rows, best], "rotation_error": res.rotation_error[rows, best]}
