"""Valid samples by rejection, with the rate reported: joint angles of torus models (older models) mapped into
their joint's range (rejected when they have no representative there), a margin from the limits, and a
collision checker, redrawn in rounds until enough pass.

Joints on :class:`~posegen.manifolds.Interval` factors need no limit check: they are inside their limits by
construction; the margin and the checker apply to them as to any joint.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch

from ..robots import as_robot

__all__ = ["SamplingShortfall", "resolve_joint_limits", "unwrap_to_limits", "JointFilter"]


class SamplingShortfall(RuntimeError):
    """Fewer valid samples than requested after the allowed rejection rounds."""


def resolve_joint_limits(joint_limits, n_joints: int, dtype=torch.float64, device=None) -> Optional[torch.Tensor]:
    """``None``, a robot (a :class:`posegen.robots.Robot` or a built-in name such as ``"panda"``) or an
    array-like ``(n_joints, 2)`` of ``[lower, upper]`` (rad) -> tensor or None.

    ``n_joints`` is the number of angles of the manifold's torus factors (all of them, in factor order).
    """
    if joint_limits is None:
        return None
    if isinstance(joint_limits, str) or hasattr(joint_limits, "joint_limits"):
        try:
            lim = as_robot(joint_limits, "joint_limits").joint_limits
        except (ValueError, TypeError) as e:
            raise ValueError(f"joint_limits must be None, a robot (e.g. \"panda\") or a (n_joints, 2) array: "
                             f"{e}") from None
    else:
        lim = torch.as_tensor(joint_limits, dtype=torch.float64)
    if n_joints == 0:
        raise ValueError("joint_limits are only for joints modelled as angles on a torus (T<n>); this manifold "
                         "has none (joints on an interval factor, I<n>, are inside their limits by construction: "
                         "drop joint_limits=)")
    if lim.shape != (n_joints, 2):
        raise ValueError(f"joint_limits must have shape ({n_joints}, 2) for the manifold's {n_joints} joint "
                         f"angles, got {tuple(lim.shape)}")
    if not torch.isfinite(lim).all() or not (lim[:, 0] < lim[:, 1]).all():
        raise ValueError(f"joint_limits must be finite with lower < upper in every row, got {lim.tolist()}")
    return lim.to(dtype=dtype, device=device)


def unwrap_to_limits(q: torch.Tensor, limits: torch.Tensor, atol: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """Map angles known modulo 2 pi into joint ranges (generic :func:`posegen.data.panda.unwrap_to_limits`).

    Args:
        q (..., n): angles in radians, any 2 pi offset.
        limits (n, 2): ``[lower, upper]`` per joint.
        atol: slack at the limits for values that sit on a limit up to rounding.
    Returns:
        ``q_in (..., n)`` with ``q_in == q (mod 2 pi)``: the smallest representative ``>= lower - atol``
        (for ranges shorter than 2 pi the only one inside), and ``valid (...,)`` True where every joint's
        representative is ``<= upper + atol``. Invalid joints keep the representative just above ``lower``;
        nothing is clipped.
    """
    lo, hi = limits[:, 0].to(q), limits[:, 1].to(q)
    k = torch.ceil((lo - atol - q) / (2 * math.pi))
    q_in = q + 2 * math.pi * k
    return q_in, (q_in <= hi + atol).all(-1)


#: ``draw(m, condition, generator) -> (m, coord_dim)`` points
Draw = Callable[[int, Optional[torch.Tensor], Optional[torch.Generator]], torch.Tensor]
#: ``check(x (m, coord_dim)) -> (joints (m, J) inside the limits, or None; valid (m,) bool)``
Check = Callable[[torch.Tensor], Tuple[Optional[torch.Tensor], torch.Tensor]]


class JointFilter:
    """Rejection of samples that ``check`` refuses (angles without a representative inside the joint limits, a
    joint closer to a limit than a margin, a collision), redrawn in rounds until ``n`` pass.

    A seeded draw starts from a fixed guess of the acceptance rate (so that a seed alone fixes the result), an
    unseeded one from ``last_rate`` (fewer rounds for repeated calls)."""

    def __init__(self, check: Check, *, max_rounds: int = 10, last_rate: Optional[float] = None):
        if int(max_rounds) != max_rounds or max_rounds < 1:
            raise ValueError(f"max_rounds must be a positive integer, got {max_rounds!r}")
        self.check, self.max_rounds, self.last_rate = check, int(max_rounds), last_rate

    def draw(self, draw: Draw, n: int, cond: Optional[torch.Tensor], generator, *, coord_dim: int, dtype,
             device):
        """Rejection rounds: ``(x (m, D), joints (m, J) or None, drawn, accepted)``, ``m <= n``.

        Each round draws enough for the missing rows at the acceptance rate seen so far; with one condition
        per row, every pending row draws its own candidates and keeps the first valid one."""
        per_row = cond is not None and cond.dim() == 2
        x_out = torch.empty(n, coord_dim, dtype=dtype, device=device)
        q_out = None
        filled = torch.zeros(n, dtype=torch.bool, device=device)
        drawn = accepted = 0
        rate = self.last_rate if (generator is None and self.last_rate) else 0.5
        for _ in range(self.max_rounds):
            pending = (~filled).nonzero().squeeze(-1)
            need = int(pending.numel())
            if need == 0:
                break
            floor = max(rate, 0.02)
            if per_row:
                r = min(int(math.ceil(1.5 / floor)), 64)
                x = draw(need * r, cond[pending.repeat_interleave(r)], generator)
                q, ok = self.check(x)
                ok2 = ok.view(need, r)
                has = ok2.any(1)
                src = (torch.arange(need, device=device) * r + ok2.to(torch.int8).argmax(1))[has]
                dst = pending[has]
            else:
                x = draw(int(math.ceil(need / floor * 1.1)) + 8, cond, generator)
                q, ok = self.check(x)
                src = ok.nonzero().squeeze(-1)[:need]
                dst = pending[: src.numel()]
            if q is not None and q_out is None:
                q_out = torch.empty(n, q.shape[1], dtype=dtype, device=device)
            x_out[dst] = x[src]
            if q is not None:
                q_out[dst] = q[src]
            filled[dst] = True
            drawn += int(x.shape[0])
            accepted += int(ok.sum())
            rate = accepted / drawn
        self.last_rate = accepted / drawn if drawn else 1.0
        keep = filled.nonzero().squeeze(-1)
        return x_out[keep], None if q_out is None else q_out[keep], drawn, accepted
