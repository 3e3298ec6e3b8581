r"""A serial chain's forward kinematics and geometric Jacobian as a short batched tensor program.

pytorch_kinematics evaluates a whole kinematic tree level by level (per frame a 4x4 joint matrix built from
axis-angle, a static offset product, a scatter into the tree's frames), which is general and costs many small
torch ops per joint. For the one serial chain that :class:`~posegen.robots.Robot` answers for, the same
parsed description gives a compact program (:class:`SerialProgram`):

* per movable joint ``k`` (root to tip) the fixed transform ``O_k`` from the previous joint's frame (the fixed
  joints in between folded in) and the unit axis ``a_k`` in the joint frame; the fixed transform from the last
  joint to ``ee_link`` is ``tail``;
* the joint's local transform is affine in two scalar functions of its value,

  .. math::  O_k M_k(\theta) = O_k + f_1(\theta) P_k + f_2(\theta) Q_k,

  revolute (Rodrigues, ``K = [a]_x``): ``f_1 = sin``, ``f_2 = 1 - cos``, ``P = O [K 0; 0 0]``,
  ``Q = O [K^2 0; 0 0]``; prismatic: ``f_1 = theta``, ``f_2 = 0``, ``P = O [0 a; 0 0]``. ``O, P, Q`` are
  precomputed, so every joint's local transform for the whole batch is two fused multiply-adds;
* the frames are the running product ``T_k = T_{k-1} (O_k M_k)`` (one batched 4x4 product per joint), each
  turned so that its z axis is the joint axis (see :class:`SerialProgram`);
* the geometric Jacobian at the ``ee_link`` origin, in the base frame, comes from the frames in one pass:
  ``z_k = R_k a_k`` and ``p_k`` the origin of joint frame ``k`` (a point on the axis), column
  ``[z_k x (p_ee - p_k); z_k]`` (revolute) or ``[z_k; 0]`` (prismatic).

Everything is plain torch (differentiable to any order, any dtype and device). Joint values are those of
the chain's movable joints in order (``theta (B, n)``; a robot maps its ``q`` to them, mimic joints
included). The constants are built in float64 from the description with the same origin conversion as the
pytorch_kinematics chain (:func:`posegen.robots.chain.origin_matrix`), which stays the reference and the
fallback (tests/test_kinematics.py checks agreement to 1e-12 in float64).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch

from .chain import origin_matrix
from .description import JointSpec

__all__ = ["SerialProgram", "PER_JOINT_ROWS"]

#: batches above this many rows build the joints' local transforms one joint at a time (see SerialProgram._chain)
PER_JOINT_ROWS = 1024


def _z_to(a: torch.Tensor) -> torch.Tensor:
    """``(n, 4, 4)`` rotations taking the z axis to the unit vectors ``a (n, 3)`` (the shortest one; a half
    turn about x for ``-z``)."""
    z = torch.tensor([0.0, 0.0, 1.0], dtype=a.dtype)
    v, c = torch.linalg.cross(z.expand_as(a), a, dim=-1), a[:, 2]
    K = torch.zeros(a.shape[0], 3, 3, dtype=a.dtype)
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    K = K - K.transpose(1, 2)
    flip = c < -1 + 1e-9
    R = torch.eye(3, dtype=a.dtype) + K + K @ K / (1 + torch.where(flip, 0.0, c))[:, None, None]
    R[flip] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=a.dtype))
    C = torch.eye(4, dtype=a.dtype).repeat(a.shape[0], 1, 1)
    C[:, :3, :3] = R
    return C


class SerialProgram:
    """FK and Jacobian of one serial chain (root to ``ee_link``) as a few batched ops per joint.

    Build with :meth:`from_joints` from the chain's joints (root to tip, fixed ones included). ``theta (B, n)``
    holds the values of the ``n`` movable joints in that order (radians, metres). Internally every joint frame
    is turned by a constant rotation ``C_k`` that takes z to the joint's axis (``O_k`` becomes
    ``C_{k-1}^T O_k C_k``, the tail ``C_{n-1}^T tail``): the chain's product and the end-effector pose are
    unchanged, and each joint's base-frame axis is then column 2 of its frame, read without a product.
    """

    def __init__(self, origins: torch.Tensor, axes: torch.Tensor, revolute: torch.Tensor, tail: torch.Tensor):
        n = axes.shape[0]
        if n == 0 or origins.shape != (n, 4, 4) or axes.shape != (n, 3) or revolute.shape != (n,) \
                or tail.shape != (4, 4):
            raise ValueError(f"SerialProgram: needs origins (n, 4, 4), axes (n, 3), revolute (n,), tail (4, 4) with "
                             f"n >= 1; got {tuple(origins.shape)}, {tuple(axes.shape)}, {tuple(revolute.shape)}, "
                             f"{tuple(tail.shape)}")
        f64 = dict(dtype=torch.float64, device="cpu")
        a = axes.to(**f64)
        a = a / a.norm(dim=-1, keepdim=True)
        C = _z_to(a)
        before = torch.cat([torch.eye(4, **f64)[None], C[:-1].transpose(1, 2)])
        O = before @ origins.to(**f64) @ C                      # O'_k = C_{k-1}^T O_k C_k
        tail = C[-1].transpose(0, 1) @ tail.to(**f64)
        Kz = torch.zeros(4, 4, **f64)
        Kz[0, 1], Kz[1, 0] = -1.0, 1.0                          # [z]_x
        Lz = torch.zeros(4, 4, **f64)
        Lz[2, 3] = 1.0                                          # d/dd of a translation along z
        rev = revolute.to(torch.bool).cpu()
        # O' M(theta) = O' + f1 P + f2 Q, with f1 = sin / theta, f2 = 1 - cos / 0 (revolute / prismatic)
        P = torch.where(rev[:, None, None], O @ Kz, O @ Lz)
        Q = torch.where(rev[:, None, None], O @ Kz @ Kz, torch.zeros_like(O))
        self.n = n
        self.all_revolute = bool(rev.all())
        self._tail_identity = bool(torch.allclose(tail, torch.eye(4, **f64), rtol=0, atol=0))
        self._consts = {(torch.float64, torch.device("cpu")): (O, P, Q, rev, tail)}

    @classmethod
    def from_joints(cls, joints: Sequence[JointSpec]) -> "SerialProgram":
        """The program of the chain through ``joints`` (root to tip; fixed joints are folded into the next
        movable joint's origin, or into the tail after the last one). ValueError without a movable joint."""
        origins, axes, revolute = [], [], []
        acc = torch.eye(4, dtype=torch.float64)
        for j in joints:
            acc = acc @ origin_matrix(j)
            if j.movable:
                origins.append(acc)
                axes.append(torch.tensor(j.axis, dtype=torch.float64))
                revolute.append(j.type != "prismatic")
                acc = torch.eye(4, dtype=torch.float64)
        if not origins:
            raise ValueError(f"SerialProgram.from_joints: no movable joint among {[j.name for j in joints]}")
        return cls(torch.stack(origins), torch.stack(axes), torch.tensor(revolute), acc)

    def _on(self, dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, ...]:
        key = (dtype, torch.device(device))
        hit = self._consts.get(key)
        if hit is None:
            base = self._consts[(torch.float64, torch.device("cpu"))]
            with torch.inference_mode(False):  # ordinary tensors even when first asked for inside inference mode
                hit = tuple(t.to(device=key[1], dtype=dtype if t.is_floating_point() else t.dtype) for t in base)
            self._consts[key] = hit
        return hit

    def _factors(self, theta: torch.Tensor, rev: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``f1, f2 (B, n, 1, 1)`` of ``O' M(theta) = O' + f1 P + f2 Q``."""
        if self.all_revolute:
            f1, f2 = torch.sin(theta), 1 - torch.cos(theta)
        else:
            f1 = torch.where(rev, torch.sin(theta), theta)
            f2 = torch.where(rev, 1 - torch.cos(theta), 0.0)
        return f1[..., None, None], f2[..., None, None]

    def _chain(self, theta: torch.Tensor, columns: bool):
        """The running product: ``(ee pose (B, 4, 4), axes and origins (B, n, 3, 2) or None)``.

        Up to :data:`PER_JOINT_ROWS` rows every joint's local transform comes from one pair of fused ops over
        all joints (fewer ops); above, joint by joint, so that the working set stays in the cache (at 3000 rows
        about half the time per row of the fused form on one thread)."""
        O, P, Q, rev, tail = self._on(theta.dtype, theta.device)
        f1, f2 = self._factors(theta, rev)
        if theta.shape[0] <= PER_JOINT_ROWS:
            A = torch.addcmul(torch.addcmul(O, f1, P), f2, Q)
            local = lambda k: A[:, k]  # noqa: E731
        else:
            local = lambda k: torch.addcmul(torch.addcmul(O[k], f1[:, k], P[k]), f2[:, k], Q[k])  # noqa: E731
        T = local(0)
        cols = [T[:, :3, 2:]] if columns else None
        for k in range(1, self.n):
            T = T @ local(k)
            if columns:
                cols.append(T[:, :3, 2:])
        ee = T if self._tail_identity else T @ tail
        return ee, (torch.stack(cols, 1) if columns else None)

    def fk(self, theta: torch.Tensor) -> torch.Tensor:
        """End-effector pose ``(B, 4, 4)`` for ``theta (B, n)``."""
        return self._chain(theta, False)[0]

    def fk_and_jacobian(self, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``theta (B, n) -> (ee pose (B, 4, 4), geometric Jacobian (B, 6, n))``: rows linear then angular
        velocity of the ee origin in the base frame, columns the joints in order."""
        ee, zp = self._chain(theta, True)
        z, p = zp[..., 0], zp[..., 1]                            # (B, n, 3): axis and a point on it
        lin = torch.linalg.cross(z, ee[:, None, :3, 3] - p, dim=-1)
        if self.all_revolute:
            J = torch.cat([lin, z], -1)
        else:
            r = self._on(theta.dtype, theta.device)[3][:, None]
            J = torch.cat([torch.where(r, lin, z), torch.where(r, z, 0.0)], -1)
        return ee, J.transpose(1, 2)
