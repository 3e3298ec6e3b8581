"""How grasp sets compare: distances between parallel-jaw grasps, coverage of a reference set, diversity.

A grasp is a ``(4, 4)`` transform of the gripper's base frame (ACRONYM's convention, :mod:`.gripper`). Two
grasps are compared where they hold the object, at the tool centre point (TCP, ``tcp_offset`` along the
grasp frame's z), and by the rotation angle between their frames, taken over the jaw symmetry: ``T`` and
``T Rz(pi)`` are one grasp, so the angle is the smaller of the two (in ``[0, pi/2]`` about z, ``[0, pi]``
otherwise).

Coverage follows the grasp-generation papers (Contact-GraspNet, SE(3)-DiffusionFields, GraspLDM): the share of
an object's successful reference grasps that have a sampled grasp within a position and an angle tolerance
(2 cm and 20 degrees by default).
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

from .checks import check_transforms
from .gripper import get_gripper

__all__ = ["grasp_distances", "coverage", "diversity"]

#: the default tolerances of :func:`coverage`: 2 cm at the TCP and 20 degrees
POSITION_TOL = 0.02
ANGLE_TOL = math.radians(20.0)


def grasp_distances(A, B, gripper="panda") -> Tuple[np.ndarray, np.ndarray]:
    """TCP distances (m) and jaw-symmetric rotation angles (rad) between every grasp of ``A (n, 4, 4)`` and
    every grasp of ``B (m, 4, 4)``: two ``(n, m)`` float64 arrays."""
    A = check_transforms(A, "A")
    B = check_transforms(B, "B")
    tcp = np.array([0.0, 0.0, get_gripper(gripper).tcp_offset, 1.0])
    pa, pb = (A @ tcp)[:, :3], (B @ tcp)[:, :3]
    position = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=-1)
    M = np.einsum("nji,mjk->nmik", A[:, :3, :3], B[:, :3, :3])      # R_a^T R_b
    d = np.diagonal(M, axis1=-2, axis2=-1)                              # (n, m, 3)
    trace, trace_flip = d.sum(-1), d[..., 2] - d[..., 0] - d[..., 1]   # R_a^T R_b and R_a^T R_b Rz(pi)
    cos = np.clip((np.maximum(trace, trace_flip) - 1.0) / 2.0, -1.0, 1.0)
    return position, np.arccos(cos)


def coverage(samples, references, gripper="panda", *, position_tol: float = POSITION_TOL,
             angle_tol: float = ANGLE_TOL) -> float:
    """Share of ``references (m, 4, 4)`` that have a grasp of ``samples (n, 4, 4)`` within ``position_tol`` (m, at
    the TCP) and ``angle_tol`` (rad, jaw symmetry allowed); ``nan`` when there are no references."""
    if not position_tol > 0 or not angle_tol > 0:
        raise ValueError(f"position_tol and angle_tol must be > 0, got {position_tol!r}, {angle_tol!r}")
    references = check_transforms(references, "references")
    if len(references) == 0:
        return float("nan")
    samples = check_transforms(samples, "samples")
    if len(samples) == 0:
        return 0.0
    position, angle = grasp_distances(samples, references, gripper)
    return float(((position <= position_tol) & (angle <= angle_tol)).any(0).mean())


def diversity(T, gripper="panda") -> Dict[str, float]:
    """Mean pairwise TCP distance (m) and jaw-symmetric angle (rad) over the distinct pairs of ``T (n, 4, 4)``;
    ``nan`` for fewer than two grasps."""
    T = check_transforms(T, "T")
    if len(T) < 2:
        return {"position": float("nan"), "angle": float("nan")}
    position, angle = grasp_distances(T, T, gripper)
    upper = np.triu_indices(len(T), 1)
    return {"position": float(position[upper].mean()), "angle": float(angle[upper].mean())}
