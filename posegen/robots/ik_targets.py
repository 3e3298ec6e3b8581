r"""IK targets: pose rows checked and turned into positions and rotation matrices, and the errors of poses
against them, for :func:`~posegen.robots.ik.solve_ik` and its callers.

Targets are ``(T, 7)`` rows ``x, y, z, qx, qy, qz, qw`` (``quat_order="xyzw"``; ``"wxyz"`` puts ``w`` first):
the position (m) and orientation of the end-effector link in the robot's base frame. The error of a pose
``(p, R)`` against a target ``(p*, R*)`` is the 6-vector ``e = [p* - p; log(R* R^T)]`` (position in m, rotation
vector in rad, both in the base frame), with the rotation error's angle in the ``atan2`` form, accurate near 0
and pi.
"""

from __future__ import annotations

from typing import Tuple

import roma
import torch

from ..rotations import check_quat_order, convert_quat_order

__all__ = ["UNIT_TOL", "parse_targets", "rotation_angle_atan2", "pose_errors"]

#: how far a target quaternion's norm may be from 1 (files rounded to 4-6 digits pass; a typo does not)
UNIT_TOL = 1e-3


def parse_targets(targets, quat_order: str = "xyzw", *, dtype=None, device=None,
                  name: str = "targets") -> Tuple[torch.Tensor, torch.Tensor]:
    """Check pose rows and return ``(position (T, 3), rotation matrix (T, 3, 3))``.

    Args:
        targets: ``(T, 7)`` (or one pose ``(7,)``): ``x, y, z`` and a unit quaternion in ``quat_order``.
        quat_order: ``"xyzw"`` or ``"wxyz"``.

    Raises:
        ValueError: unknown ``quat_order``, wrong width, NaN/inf, or a quaternion whose norm is off 1 by more
            than :data:`UNIT_TOL` (named by row). Slightly non-unit quaternions are normalised.
    """
    check_quat_order(quat_order)
    t = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(targets)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    t = t.to(dtype=dtype or t.dtype, device=device)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2 or t.shape[-1] != 7:
        raise ValueError(f"{name} must have shape (T, 7) (x, y, z and a quaternion in {quat_order} order), "
                         f"got shape {tuple(t.shape)}")
    bad = ~torch.isfinite(t).all(-1)
    if bool(bad.any()):
        raise ValueError(f"{name} has NaN or infinite values in row(s) {bad.nonzero().flatten()[:5].tolist()}")
    quat = convert_quat_order(t[:, 3:], quat_order, "xyzw")
    norm = quat.norm(dim=-1)
    off = (norm - 1).abs() > UNIT_TOL
    if bool(off.any()):
        r = int(off.nonzero()[0])
        raise ValueError(f"{name} must hold unit quaternions (|q| = 1 within {UNIT_TOL:g}); row {r} has norm "
                         f"{norm[r].item():.6g} ({int(off.sum())} of {t.shape[0]} rows are off)")
    R = roma.unitquat_to_rotmat(quat / norm.unsqueeze(-1))
    return t[:, :3], R


def rotation_angle_atan2(R: torch.Tensor) -> torch.Tensor:
    """Angle (rad) of rotation matrices ``(..., 3, 3)`` as ``atan2(|vee(R - R^T)| / 2, (tr R - 1) / 2)``:
    accurate everywhere in ``[0, pi]``, unlike ``acos`` near 0."""
    s = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    tr = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    return torch.atan2(s.norm(dim=-1) / 2, (tr - 1) / 2)


#: rotation errors above this angle (rad) take their axis from the symmetric part of the rotation; below it
#: ``theta / (2 sin theta) vee(R - R^T)`` loses at most a few ulps (its factor is at most 1 / (2 sin 0.1))
_NEAR_PI = torch.pi - 0.1


def _rotvec_near_pi(R: torch.Tensor, theta: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Rotation vectors ``(m, 3)`` of rotations ``R (m, 3, 3)`` with angles ``theta (m,)`` near pi, from the
    symmetric part ``(R + R^T) / 2 = cos(theta) I + (1 - cos(theta)) a a^T``: the axis from its column of
    largest ``a_k^2``, its sign from ``s = vee(R - R^T) = 2 sin(theta) a``."""
    c = torch.cos(theta)[:, None]
    M = R + R.transpose(-1, -2)                                     # 2 c I + 2 (1 - c) a a^T
    k = torch.diagonal(M, dim1=-2, dim2=-1).argmax(-1, keepdim=True)    # the largest a_k^2
    col = torch.take_along_dim(M, k[:, None], dim=-1)[..., 0]       # 2 c e_k + 2 (1 - c) a_k a
    col = col - 2 * c * (k == torch.arange(3, device=R.device))     # 2 (1 - c) a_k a: +-a, |a_k| >= 1 / sqrt(3)
    a = col / col.norm(dim=-1, keepdim=True)
    sign = torch.where((a * s).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    return a * (sign * theta[:, None])


def pose_errors(T: torch.Tensor, pos: torch.Tensor, R: torch.Tensor):
    """Errors of poses ``T (..., 4, 4)`` against targets ``pos (..., 3)``, ``R (..., 3, 3)``.

    Returns ``(e (..., 6), position_error (...), rotation_error (...))``: ``e`` is the DLS residual
    ``[p* - p; rotvec(R* R^T)]`` in the base frame. The rotation vector is ``theta / |s| s`` with
    ``s = vee(R_err - R_err^T) = 2 sin(theta) axis`` and ``theta`` the atan2 angle of the rotation error
    (shared with ``rotation_error``); rows within 0.1 rad of pi (where ``s`` vanishes) take the axis from the
    symmetric part (:func:`_rotvec_near_pi`). Both agree with ``roma.rotmat_to_rotvec`` to float64 rounding
    (tests/test_ik.py) at a fraction of its quaternion round trip's ops."""
    dp = pos - T[..., :3, 3]
    R_err = R @ T[..., :3, :3].transpose(-1, -2)
    s = torch.stack([R_err[..., 2, 1] - R_err[..., 1, 2], R_err[..., 0, 2] - R_err[..., 2, 0],
                     R_err[..., 1, 0] - R_err[..., 0, 1]], -1)
    tr = R_err[..., 0, 0] + R_err[..., 1, 1] + R_err[..., 2, 2]
    sn = s.norm(dim=-1)
    theta = torch.atan2(sn / 2, (tr - 1) / 2)
    # theta / |s| = theta / (2 sin theta) -> 1/2 at theta = 0 (the clamp only guards the exact 0 / 0)
    rotvec = s * torch.where(sn > 1e-30, theta / sn.clamp_min(1e-30), 0.5).unsqueeze(-1)
    near_pi = (theta > _NEAR_PI).nonzero(as_tuple=True)
    if near_pi[0].numel():
        rotvec = rotvec.index_put(near_pi, _rotvec_near_pi(R_err[near_pi], theta[near_pi], s[near_pi]))
    return torch.cat([dp, rotvec], -1), dp.norm(dim=-1), theta
