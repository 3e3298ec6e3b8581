"""Franka Emika Panda kinematics in torch: forward kinematics, joint limits, wrap/unwrap, batched DLS IK.

Every function takes joint angles ``q (..., 7)`` in radians with any leading batch shape, in float32 or
float64, on any device; results have the same dtype and device. Quaternions are ``(..., 4), xyzw`` (roma's
convention), positions are metres in the robot base frame ``panda_link0``.

Kinematic model
---------------
Modified (Craig) Denavit-Hartenberg parameters as published by the manufacturer ("Robot and interface
specifications", https://frankaemika.github.io/docs/control_parameters.html; the same table is used by
DQ Robotics, ``dqrobotics/cpp`` ``src/robots/FrankaEmikaPandaRobot.cpp``, which cites that page)::

    joint    a (m)     d (m)    alpha (rad)
      1      0         0.333    0
      2      0         0        -pi/2
      3      0         0.316     pi/2
      4      0.0825    0         pi/2
      5     -0.0825    0.384    -pi/2
      6      0         0         pi/2
      7      0.088     0         pi/2
    flange   0         0.107    0

Link ``i`` is ``T_{i-1,i} = RotX(alpha_i) TransX(a_i) RotZ(q_i) TransZ(d_i)``. After the flange
(``panda_link8``) the Franka Hand is mounted rotated by -pi/4 about z (``panda_hand``), and the tool centre
point (``panda_hand_tcp``, between the fingertips) is 0.1034 m along the hand's z axis. These fixed offsets
and the joint limits below are those of ``franka_description`` (frankaemika/franka_ros:
``franka_description/robots/panda_arm.xacro`` for the joint origins and limits,
``robots/panda/joint_limits.yaml`` for the limits, ``robots/common/franka_robot.xacro`` for the hand's
``rpy="0 0 -pi/4"`` and ``robots/common/franka_hand.xacro`` for ``tcp_xyz="0 0 0.1034"``).

Joint limits (rad, ``JOINT_LIMITS``)::

    q1 [-2.8973, 2.8973]  q2 [-1.7628, 1.7628]  q3 [-2.8973, 2.8973]  q4 [-3.0718, -0.0698]
    q5 [-2.8973, 2.8973]  q6 [-0.0175, 3.7525]  q7 [-2.8973, 2.8973]

Every range is shorter than 2 pi, so a wrapped angle has at most one representative inside the limits;
q6's range crosses pi, which is why posegen's wrapped angles need :func:`unwrap_to_limits` before FK
comparisons with recorded joints.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import roma
import torch

from ..manifolds.torus import wrap_angle

__all__ = [
    "DH_A", "DH_D", "DH_ALPHA", "FLANGE_D", "HAND_YAW", "TCP_OFFSET", "JOINT_LIMITS", "Q_READY",
    "LINK_NAMES", "FRAMES", "fk", "fk_matrices", "all_link_frames", "within_limits", "unwrap_to_limits",
    "wrap_angle", "jacobian", "pose_error", "ik",
]

# ---------------------------------------------------------------------------------------------------------
# Constants (manufacturer's modified DH table, franka_description offsets and limits; see module docstring)
# ---------------------------------------------------------------------------------------------------------
DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088)
DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0)
DH_ALPHA = (0.0, -math.pi / 2, math.pi / 2, math.pi / 2, -math.pi / 2, math.pi / 2, math.pi / 2)
FLANGE_D = 0.107
HAND_YAW = -math.pi / 4
TCP_OFFSET = 0.1034

JOINT_LIMITS = torch.tensor(
    [[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698],
     [-2.8973, 2.8973], [-0.0175, 3.7525], [-2.8973, 2.8973]], dtype=torch.float64)
"""``(7, 2)`` float64 tensor of ``[lower, upper]`` joint limits in radians."""

Q_READY = torch.tensor([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4],
                       dtype=torch.float64)
"""``(7,)`` the "ready" configuration of franka_ros / MoveIt: TCP pointing down in front of the robot."""

LINK_NAMES = ("panda_link0", "panda_link1", "panda_link2", "panda_link3", "panda_link4", "panda_link5",
              "panda_link6", "panda_link7", "panda_link8", "panda_hand", "panda_hand_tcp")
"""Names of the frames returned by :func:`all_link_frames`, in order (``panda_link8`` is the flange)."""

FRAMES = ("flange", "hand", "tcp")


def _limits(like: torch.Tensor) -> torch.Tensor:
    return JOINT_LIMITS.to(dtype=like.dtype, device=like.device)


def _check_q(q: torch.Tensor, name: str = "q") -> torch.Tensor:
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of joint angles (..., 7), got {type(q).__name__}")
    if q.ndim == 0 or q.shape[-1] != 7:
        raise ValueError(f"{name} must have shape (..., 7) (the Panda has 7 joints), got {tuple(q.shape)}")
    if not q.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64), got {q.dtype}")
    return q


def _check_frame(frame: str) -> str:
    if frame not in FRAMES:
        raise ValueError(f'Invalid frame "{frame}". Must be one of {sorted(FRAMES)}')
    return frame


# ---------------------------------------------------------------------------------------------------------
# Forward kinematics
# ---------------------------------------------------------------------------------------------------------
def _joint_transforms(q: torch.Tensor) -> torch.Tensor:
    """Modified-DH link transforms ``T_{i-1,i}`` for the 7 joints: ``q (..., 7) -> (..., 7, 4, 4)``."""
    a = torch.tensor(DH_A, dtype=q.dtype, device=q.device)
    d = torch.tensor(DH_D, dtype=q.dtype, device=q.device)
    alpha = torch.tensor(DH_ALPHA, dtype=q.dtype, device=q.device)
    ca, sa = torch.cos(alpha), torch.sin(alpha)
    # exact zeros for cos(+-pi/2) so that float64 frames have no 6e-17 residue
    ca = torch.where(ca.abs() < 1e-12, torch.zeros_like(ca), ca)
    ct, st = torch.cos(q), torch.sin(q)
    zero, one = torch.zeros_like(q), torch.ones_like(q)
    ca, sa, a, d = (v.expand_as(q) for v in (ca, sa, a, d))
    rows = [
        torch.stack([ct, -st, zero, a], -1),
        torch.stack([st * ca, ct * ca, -sa, -d * sa], -1),
        torch.stack([st * sa, ct * sa, ca, d * ca], -1),
        torch.stack([zero, zero, zero, one], -1),
    ]
    return torch.stack(rows, -2)


def _fixed_transforms(dtype, device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Constant transforms link7->flange, flange->hand, hand->tcp, each ``(4, 4)``."""
    eye = torch.eye(4, dtype=dtype, device=device)
    t_flange = eye.clone()
    t_flange[2, 3] = FLANGE_D
    c, s = math.cos(HAND_YAW), math.sin(HAND_YAW)
    t_hand = eye.clone()
    t_hand[0, 0], t_hand[0, 1], t_hand[1, 0], t_hand[1, 1] = c, -s, s, c
    t_tcp = eye.clone()
    t_tcp[2, 3] = TCP_OFFSET
    return t_flange, t_hand, t_tcp


def all_link_frames(q: torch.Tensor) -> torch.Tensor:
    """Poses of every frame in :data:`LINK_NAMES` in the base frame.

    Args:
        q (..., 7): joint angles (rad).
    Returns:
        ``(..., 11, 4, 4)`` homogeneous transforms: ``panda_link0`` (identity), ``panda_link1`` ...
        ``panda_link7`` (frame ``i`` rotates about its own z axis with joint ``i``), ``panda_link8`` (flange),
        ``panda_hand``, ``panda_hand_tcp``.
    """
    q = _check_q(q)
    joints = _joint_transforms(q)
    t_flange, t_hand, t_tcp = _fixed_transforms(q.dtype, q.device)
    frames = [torch.eye(4, dtype=q.dtype, device=q.device).expand(*q.shape[:-1], 4, 4)]
    for i in range(7):
        frames.append(frames[-1] @ joints[..., i, :, :])
    frames.append(frames[-1] @ t_flange)
    frames.append(frames[-1] @ t_hand)
    frames.append(frames[-1] @ t_tcp)
    return torch.stack(frames, -3)


def fk_matrices(q: torch.Tensor, frame: str = "tcp") -> torch.Tensor:
    """Homogeneous pose ``(..., 4, 4)`` of ``frame`` ("flange" = panda_link8, "hand", "tcp") for ``q (..., 7)``."""
    q = _check_q(q)
    _check_frame(frame)
    joints = _joint_transforms(q)
    t_flange, t_hand, t_tcp = _fixed_transforms(q.dtype, q.device)
    T = joints[..., 0, :, :]
    for i in range(1, 7):
        T = T @ joints[..., i, :, :]
    tail = t_flange
    if frame in ("hand", "tcp"):
        tail = tail @ t_hand
    if frame == "tcp":
        tail = tail @ t_tcp
    return T @ tail


def fk(q: torch.Tensor, frame: str = "tcp") -> Tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics.

    Args:
        q (..., 7): joint angles (rad), float32 or float64.
        frame: "tcp" (default, ``panda_hand_tcp``), "hand" (``panda_hand``) or "flange" (``panda_link8``).
    Returns:
        ``pos (..., 3)`` in metres and ``quat (..., 4)`` xyzw with ``w >= 0`` (q and -q are the same
        rotation; callers that need sign continuity along a trajectory must fix it themselves).
    """
    T = fk_matrices(q, frame)
    pos = T[..., :3, 3]
    quat = roma.rotmat_to_unitquat(T[..., :3, :3])
    quat = torch.where(quat[..., 3:] < 0, -quat, quat)
    return pos, quat


# ---------------------------------------------------------------------------------------------------------
# Joint limits and angle wrapping
# ---------------------------------------------------------------------------------------------------------
def within_limits(q: torch.Tensor, atol: float = 0.0) -> torch.Tensor:
    """``(...,)`` bool: every joint of ``q (..., 7)`` lies in ``[lower - atol, upper + atol]``."""
    q = _check_q(q)
    lim = _limits(q)
    return ((q >= lim[:, 0] - atol) & (q <= lim[:, 1] + atol)).all(-1)


def unwrap_to_limits(q_wrapped: torch.Tensor, atol: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """Map angles known only modulo 2 pi (e.g. posegen's wrapped ``[-pi, pi)``) to the joint ranges.

    Each joint range is shorter than 2 pi, so ``q + 2 pi k`` has at most one representative inside
    ``[lower - atol, upper + atol]``. Nothing is clipped: a joint with no representative inside its range
    gets the representative nearest to the range and its configuration is flagged invalid.

    Args:
        q_wrapped (..., 7): joint angles in radians, any 2 pi offset.
        atol: slack at the limits for values that sit on a limit up to rounding.
    Returns:
        ``q (..., 7)`` with ``q == q_wrapped (mod 2 pi)`` and ``valid (...,)`` bool, True where every joint
        landed inside its limits.
    """
    q_wrapped = _check_q(q_wrapped, "q_wrapped")
    lim = _limits(q_wrapped)
    lo, hi = lim[:, 0], lim[:, 1]
    two_pi = 2 * math.pi
    # smallest representative >= lo - atol
    k = torch.ceil((lo - atol - q_wrapped) / two_pi)
    cand = q_wrapped + two_pi * k
    ok = cand <= hi + atol
    # not inside: choose whichever of cand (above hi) and cand - 2 pi (below lo) is closer to the range
    below = cand - two_pi
    nearer_below = (lo - below) < (cand - hi)
    out = torch.where(ok, cand, torch.where(nearer_below, below, cand))
    return out, ok.all(-1)


# ---------------------------------------------------------------------------------------------------------
# Jacobian, pose errors, inverse kinematics
# ---------------------------------------------------------------------------------------------------------
def jacobian(q: torch.Tensor, frame: str = "tcp") -> Tuple[torch.Tensor, torch.Tensor]:
    """Geometric Jacobian in the base frame.

    Args:
        q (..., 7): joint angles.
        frame: end frame, as for :func:`fk`.
    Returns:
        ``J (..., 6, 7)`` (rows: linear velocity of the frame origin, then angular velocity, both in the base
        frame) and the frame's pose ``T (..., 4, 4)``.
    """
    _check_frame(frame)
    frames = all_link_frames(q)
    T = frames[..., {"flange": 8, "hand": 9, "tcp": 10}[frame], :, :]
    z = frames[..., 1:8, :3, 2]            # joint axes (..., 7, 3)
    p = frames[..., 1:8, :3, 3]            # joint origins (..., 7, 3)
    p_e = T[..., None, :3, 3]
    jv = torch.linalg.cross(z, p_e - p, dim=-1)
    J = torch.cat([jv, z], -1).transpose(-1, -2)
    return J, T


def pose_error(T: torch.Tensor, target_pos: torch.Tensor, target_rot: torch.Tensor) -> torch.Tensor:
    """Twist-like error ``(..., 6)``: ``target_pos - pos`` and the rotation vector of ``R_target R^T``."""
    e_pos = target_pos - T[..., :3, 3]
    e_rot = roma.rotmat_to_rotvec(target_rot @ T[..., :3, :3].transpose(-1, -2))
    return torch.cat([e_pos, e_rot], -1)


def ik(target_pos: torch.Tensor, target_quat: torch.Tensor, q_init: torch.Tensor, iters: int = 100,
       damping: float = 0.05, tol_pos: float = 1e-4, tol_rot: float = 1e-3, frame: str = "tcp",
       q_rest: Optional[torch.Tensor] = None, nullspace_gain: float = 0.0, max_step: float = 0.2,
       min_iters: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched damped-least-squares inverse kinematics with joint-limit clamping.

    Each iteration solves ``dq = J^T (J J^T + damping^2 I)^-1 e`` for the 6-vector pose error ``e``
    (:func:`pose_error`), optionally adds a nullspace pull ``nullspace_gain (I - J^+ J)(q_rest - q)`` (``J^+``
    the pseudo-inverse, regularised only against exact singularity), scales
    the step so that no joint moves more than ``max_step`` rad, and clamps ``q`` to :data:`JOINT_LIMITS`.
    Rows that meet both tolerances stop moving after ``min_iters`` iterations (before that they keep
    taking steps, which lets the nullspace pull move a converged row along its self-motion); the loop ends
    when all have stopped.

    Args:
        target_pos (..., 3): target positions (m).
        target_quat (..., 4): target orientations, xyzw (need not be sign-canonical).
        q_init (..., 7): initial joint angles; moved into the limits by clamping first.
        iters: maximum number of iterations.
        damping: DLS damping lambda (metres / radians).
        tol_pos: position tolerance (m). tol_rot: orientation tolerance (rad).
        frame: "tcp", "hand" or "flange".
        q_rest (..., 7): rest posture for the nullspace pull (defaults to ``q_init``).
        nullspace_gain: gain of the nullspace pull; 0 disables it.
        max_step: largest joint change per iteration (rad).
        min_iters: iterations every row takes even when already within tolerance.
    Returns:
        ``q (..., 7)`` inside the joint limits, ``success (...,)`` bool (both final errors within tolerance),
        ``pos_err (...,)`` (m) and ``rot_err (...,)`` (rad) of the returned ``q``.
    """
    _check_frame(frame)
    q_init = _check_q(q_init, "q_init")
    for name, x, n in (("target_pos", target_pos, 3), ("target_quat", target_quat, 4)):
        if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[-1] != n:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a tensor of shape (..., {n}), got {got}")
    if iters < 0 or damping < 0 or max_step <= 0:
        raise ValueError(f"ik needs iters >= 0, damping >= 0 and max_step > 0; got iters={iters}, "
                         f"damping={damping}, max_step={max_step}")
    dtype, device = q_init.dtype, q_init.device
    batch = torch.broadcast_shapes(target_pos.shape[:-1], target_quat.shape[:-1], q_init.shape[:-1])
    p_t = target_pos.to(dtype).expand(*batch, 3).reshape(-1, 3)
    R_t = roma.unitquat_to_rotmat(target_quat.to(dtype).expand(*batch, 4).reshape(-1, 4))
    lim = _limits(q_init)
    q = torch.clamp(q_init.expand(*batch, 7).reshape(-1, 7), lim[:, 0], lim[:, 1])
    q_rest = (q.clone() if q_rest is None
              else _check_q(q_rest, "q_rest").to(dtype).expand(*batch, 7).reshape(-1, 7))
    eye6 = torch.eye(6, dtype=dtype, device=device)
    eye7 = torch.eye(7, dtype=dtype, device=device)
    eps_null = 1e-10 if dtype == torch.float64 else 1e-6

    def errors(T):
        e = pose_error(T, p_t, R_t)
        return e, e[:, :3].norm(dim=-1), e[:, 3:].norm(dim=-1)

    with torch.no_grad():
        for it in range(iters):
            J, T = jacobian(q, frame)
            e, ep, er = errors(T)
            active = (ep > tol_pos) | (er > tol_rot) | (it < min_iters)
            if not bool(active.any()):
                break
            JJt = J @ J.transpose(-1, -2)
            Jt_inv = J.transpose(-1, -2) @ torch.linalg.inv(JJt + (damping ** 2) * eye6)  # damped (n, 7, 6)
            dq = (Jt_inv @ e[..., None])[..., 0]
            if nullspace_gain > 0:
                # projector with the (almost) undamped pseudo-inverse: the damped one leaks the pull into
                # the task and slows convergence several-fold
                J_pinv = J.transpose(-1, -2) @ torch.linalg.inv(JJt + eps_null * eye6)
                null = eye7 - J_pinv @ J
                dq = dq + nullspace_gain * (null @ (q_rest - q)[..., None])[..., 0]
            scale = torch.clamp(max_step / dq.abs().amax(-1, keepdim=True).clamp_min(1e-12), max=1.0)
            dq = dq * scale * active[:, None].to(dtype)
            q = torch.minimum(torch.maximum(q + dq, lim[:, 0]), lim[:, 1])
        _, ep, er = errors(fk_matrices(q, frame))
    success = (ep <= tol_pos) & (er <= tol_rot)
    return (q.reshape(*batch, 7), success.reshape(batch), ep.reshape(batch), er.reshape(batch))
