r"""Joints whose limits span a full turn or more, modelled as angles and lifted back inside their limits.

A revolute joint with ``hi - lo >= 2 pi`` (the UR5e's ``[-2 pi, 2 pi]``) reaches every angle at least once, and
forward kinematics depends on it only through the angle ``theta = wrap(q)``. Learning ``p(q | pose)`` on the
interval makes a flow learn every IK branch once per copy of each such joint (``2^5`` copies on the UR5e), while
the pose only determines the angles. So :class:`FullTurns` gives a model manifold where those joints are
``Torus`` factors and maps between the two:

* ``to_model(q)``: ``q (..., dof) -> theta``, the full-turn joints wrapped to ``[-pi, pi)``;
* ``lift(theta, generator)``: back to joints inside the limits, each full-turn joint put on one of the copies
  ``theta + 2 pi k`` with ``lo <= theta + 2 pi k <= hi``, ``k`` uniform among them (never a clamp: every copy
  is inside by construction);
* ``log_copies(theta)``: ``log`` of the number of copies, the density correction.

Exact for the training law: if ``q`` is uniform on ``[lo, hi]``, then given ``theta`` every copy is equally
likely, and given the pose too (FK sees only ``theta``), so ``p(q | pose) = p(theta | pose) / copies(theta)``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..manifolds import Interval, Product, Torus, wrap_angle

__all__ = ["FullTurns", "full_turn_mask"]

TWO_PI = 2.0 * math.pi
#: a range this close to a full turn counts as one (limits written as 6.2831 in a URDF)
FULL_TURN_TOL = 1e-3


def full_turn_mask(robot) -> torch.Tensor:
    """``(dof,)`` bool: revolute joints whose limits span at least a full turn (continuous joints are
    angles already and are not in the mask)."""
    lim = robot.joint_limits
    revolute = torch.tensor([t == "revolute" for t in robot.joint_types], dtype=torch.bool)
    return revolute & (lim[:, 1] - lim[:, 0] >= TWO_PI - FULL_TURN_TOL)


class FullTurns:
    """The model coordinates of a robot's joints, with full-turn joints as angles.

    Args:
        robot: a :class:`~posegen.robots.Robot`.
        enabled: ``False`` keeps every joint as the robot's manifold has it (the identity map).

    Attributes:
        mask: ``(dof,)`` bool, the joints modelled as angles and lifted.
        manifold: the model's ``Product``: runs of angle joints (full-turn or continuous) as ``Torus``, runs of
            other joints as ``Interval`` with their limits, in joint order.
    """

    def __init__(self, robot, enabled: bool = True):

        self.robot = robot
        self.mask = full_turn_mask(robot) if enabled else torch.zeros(robot.dof, dtype=torch.bool)
        lim = robot.joint_limits
        self.lower, self.upper = lim[:, 0], lim[:, 1]
        if not bool(self.mask.any()):
            self.manifold = robot.manifold
            return
        angle = [bool(m) or t == "continuous" for m, t in zip(self.mask.tolist(), robot.joint_types)]
        factors, start = [], 0
        for i in range(1, robot.dof + 1):
            if i == robot.dof or angle[i] != angle[start]:
                factors.append(Torus(i - start) if angle[start] else
                               Interval(self.lower[start:i].tolist(), self.upper[start:i].tolist()))
                start = i
        self.manifold = Product(*factors)

    @property
    def active(self) -> bool:
        """Whether any joint is lifted (else every map here is the identity)."""
        return bool(self.mask.any())

    def __repr__(self) -> str:
        names = [n for n, m in zip(self.robot.joint_names, self.mask.tolist()) if m]
        return f"FullTurns({self.robot.name!r}, angles={names})"

    def to_model(self, q: torch.Tensor) -> torch.Tensor:
        """Joints ``(..., dof)`` -> model coordinates: full-turn joints wrapped to ``[-pi, pi)``."""
        if not self.active:
            return q

        return torch.where(self.mask.to(q.device), wrap_angle(q), q)

    def _k_range(self, theta: torch.Tensor):
        lo = self.lower.to(theta.device, torch.float64)
        hi = self.upper.to(theta.device, torch.float64)
        th = theta.double()
        k_min = torch.ceil((lo - th) / TWO_PI)
        k_max = torch.floor((hi - th) / TWO_PI)
        return th, k_min, k_max

    def log_copies(self, theta: torch.Tensor) -> torch.Tensor:
        """``(...,)``: log of the number of joint vectors inside the limits with these angles."""
        if not self.active:
            return theta.new_zeros(theta.shape[:-1])
        _, k_min, k_max = self._k_range(theta)
        n = torch.where(self.mask.to(theta.device), (k_max - k_min + 1).clamp_min(1), 1.0)
        return n.log().sum(-1).to(theta.dtype)

    def lift(self, theta: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Model coordinates ``(..., dof)`` -> joints inside the limits: each full-turn joint on a copy
        ``theta + 2 pi k`` drawn uniformly among those inside (``generator`` draws on the CPU, so a seed gives
        the same copies on any device)."""
        if not self.active:
            return theta
        th, k_min, k_max = self._k_range(theta)
        u = torch.rand(theta.shape, generator=generator, dtype=torch.float64).to(theta.device)
        k = k_min + torch.floor(u * (k_max - k_min + 1)).clamp_max(k_max - k_min)
        q = th + TWO_PI * k
        # rounding of theta + 2 pi k can land one ulp past a limit when a copy sits exactly on it: take the
        # neighbouring copy inside instead (a different valid copy, not a clamped value)
        lo = self.lower.to(theta.device, torch.float64)
        hi = self.upper.to(theta.device, torch.float64)
        q = torch.where(q > hi, q - TWO_PI, torch.where(q < lo, q + TWO_PI, q))
        return torch.where(self.mask.to(theta.device), q.to(theta.dtype), theta)
