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
* the frames are the running product ``T_k = T_{k-1} (O_k M_k) = T_{k-1} O_k + f_1 T_{k-1} P_k + f_2 T_{k-1} Q_k``,
  each turned so that its z axis is the joint axis (see :class:`SerialProgram`). The batch is the last,
  contiguous axis of every intermediate (frames stored ``(4 columns, 3 rows, B)``; the bottom row of an affine
  transform is implied), so the three products with constant matrices are one small matrix product over the
  whole batch, ``[O; P; Q]^T (12, 4) @ T (4, 3 B)``, and ``f_1``, ``f_2`` enter by two fused multiply-adds over
  contiguous memory (a batch of tiny 4x4 products, ``torch.bmm``, pays a per-matrix overhead on a CPU);
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

__all__ = ["SerialProgram"]


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
        # in the (column, row, batch) layout a right product T A is A^T T: the first frame's three matrices
        # (3, 4, 3) (the affine rows), every joint's stacked [O^T; P^T; Q^T] (n, 12, 4), the tail's transpose
        first = torch.stack([O[0].T, P[0].T, Q[0].T])[:, :, :3]
        stacked = torch.cat([O.transpose(1, 2), P.transpose(1, 2), Q.transpose(1, 2)], 1)
        last_row = torch.tensor([0.0, 0.0, 0.0, 1.0], **f64)
        self._consts = {(torch.float64, torch.device("cpu")): (first, stacked, tail.T.contiguous(), rev, last_row)}

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
        """``f1, f2 (n, B)`` of ``O' M(theta) = O' + f1 P + f2 Q`` for ``theta (B, n)``."""
        th = theta.T
        if self.all_revolute:
            return torch.sin(th), 1 - torch.cos(th)
        r = rev[:, None]
        return torch.where(r, torch.sin(th), th), torch.where(r, 1 - torch.cos(th), 0.0)

    def _chain(self, theta: torch.Tensor, frames: bool):
        """The running product in the ``(column, row, batch)`` layout: ``(ee (4, 3, B), frames (n, 4, 3, B) or
        None)``; frame ``k``'s column 2 is joint ``k``'s axis, its column 3 a point on it."""
        first, stacked, tail_t, rev, _ = self._on(theta.dtype, theta.device)
        f1, f2 = self._factors(theta, rev)
        B = theta.shape[0]
        T = torch.addcmul(torch.addcmul(first[0, ..., None], first[1, ..., None], f1[0]), first[2, ..., None], f2[0])
        out = [T] if frames else None
        for k in range(1, self.n):
            X = (stacked[k] @ T.reshape(4, 3 * B)).view(3, 4, 3, B)   # O^T T, P^T T, Q^T T
            T = torch.addcmul(torch.addcmul(X[0], X[1], f1[k]), X[2], f2[k])
            if frames:
                out.append(T)
        if not self._tail_identity:
            T = (tail_t @ T.reshape(4, 3 * B)).view(4, 3, B)
        return T, (torch.stack(out) if frames else None)

    def _pose(self, T: torch.Tensor) -> torch.Tensor:
        """``(4, 3, B)`` affine rows -> ``(B, 4, 4)`` homogeneous transforms."""
        last_row = self._on(T.dtype, T.device)[4]
        return torch.cat([T.permute(2, 1, 0), last_row.expand(T.shape[-1], 1, 4)], 1)

    def fk(self, theta: torch.Tensor) -> torch.Tensor:
        """End-effector pose ``(B, 4, 4)`` for ``theta (B, n)``."""
        return self._pose(self._chain(theta, False)[0])

    def fk_and_jacobian(self, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``theta (B, n) -> (ee pose (B, 4, 4), geometric Jacobian (B, 6, n))``: rows linear then angular
        velocity of the ee origin in the base frame, columns the joints in order."""
        ee, F = self._chain(theta, True)
        z, p = F[:, 2], F[:, 3]                                   # (n, 3, B): axis and a point on it
        lin = torch.linalg.cross(z, ee[3] - p, dim=1)
        if self.all_revolute:
            J = torch.cat([lin, z], 1)                            # (n, 6, B)
        else:
            r = self._on(theta.dtype, theta.device)[3][:, None, None]
            J = torch.cat([torch.where(r, lin, z), torch.where(r, z, 0.0)], 1)
        return self._pose(ee), J.permute(2, 1, 0).contiguous()
