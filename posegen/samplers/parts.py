"""Naming and conventions: each manifold factor as a named part, and the caller's quaternion order.

A part's ``name`` is display only (the factor's ``part_name``, or the caller's ``names=``); what code acts
on is the factor's ``role`` (``"joints"``, ``"angle"``, ``"position"``, ``"quaternion"``, ``"direction"``,
``"coordinates"``), so renaming a part never changes what the sampler does with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from ..manifolds import Manifold, parse, wrap_angle
from ..rotations import convert_quat_order

__all__ = ["Part", "manifold_parts", "RESERVED", "JOINT_ROLES", "to_caller", "from_caller", "split_parts"]

#: result keys a part may not take
RESERVED = ("points", "log_prob", "acceptance_rate", "n_drawn", "fk_position", "fk_quat")
#: roles whose coordinates can be a robot's joints (angles on a torus: older models of robot joints)
JOINT_ROLES = ("joints", "angle")


@dataclass(frozen=True)
class Part:
    """One named factor of the manifold: ``name`` (display), ``role`` (what it is, from the factor), the
    factor, and its ``columns`` in the flat coordinates."""

    name: str
    role: str
    factor: Manifold
    columns: slice

    @property
    def width(self) -> int:
        return self.columns.stop - self.columns.start


def _default_names(display: List[str]) -> List[str]:
    counts = {k: display.count(k) for k in display}
    seen: Dict[str, int] = {}
    names = []
    for k in display:
        if counts[k] == 1:
            names.append(k)
        else:
            names.append(f"{k}_{seen.get(k, 0)}")
            seen[k] = seen.get(k, 0) + 1
    return names


def manifold_parts(manifold, names: Optional[Sequence[str]] = None) -> List[Part]:
    """The named parts of ``manifold`` (a spec or :class:`~posegen.manifolds.Product`), in factor order.

    Args:
        manifold: e.g. ``"R3 x SO3"`` -> ``[position, quat]``; ``"R3 x T7 x SO3^2"`` -> ``[position, joints,
            quat_0, quat_1]``.
        names: one name per factor, to override the defaults (unique, none of :data:`RESERVED`).
    """
    M = parse(manifold)
    if names is None:
        names = _default_names([f.part_name for f in M.factors])
    else:
        names = [str(n) for n in names]
        if len(names) != len(M.factors):
            raise ValueError(f"names must give one name per factor of {M!r} ({len(M.factors)}), got {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names}")
        clash = [n for n in names if n in RESERVED]
        if clash:
            raise ValueError(f"names {clash} are reserved for result entries {RESERVED}")
    return [Part(n, f.role, f, s) for n, f, s in zip(names, M.factors, M.slices)]


def to_caller(parts: Sequence[Part], x: torch.Tensor, quat_order: str) -> torch.Tensor:
    """Internal points ``(..., coord_dim)`` (quaternions xyzw) -> the caller's quaternion order."""
    if quat_order == "xyzw":
        return x
    return torch.cat([convert_quat_order(x[..., p.columns], "xyzw", quat_order) if p.role == "quaternion"
                      else x[..., p.columns] for p in parts], -1)


def from_caller(parts: Sequence[Part], x: torch.Tensor, quat_order: str) -> torch.Tensor:
    """Flat points in the caller's quaternion order (any 2 pi offset on angles) -> internal points."""
    out = []
    for p in parts:
        a = x[..., p.columns]
        if p.role == "quaternion" and quat_order != "xyzw":
            a = convert_quat_order(a, quat_order, "xyzw")
        elif p.factor.periodic:
            a = wrap_angle(a)
        out.append(a)
    return torch.cat(out, -1)


def split_parts(parts: Sequence[Part], x_caller: torch.Tensor, joints: Optional[torch.Tensor] = None,
                joint_roles: Sequence[str] = ("angle",)) -> Dict[str, torch.Tensor]:
    """``{name: x[..., columns]}``; with ``joints (..., J)`` (angles mapped into a robot's limits), the parts
    of ``joint_roles`` take their columns from it instead, in part order."""
    out = {p.name: x_caller[..., p.columns] for p in parts}
    if joints is not None:
        k = 0
        for p in parts:
            if p.role in joint_roles:
                out[p.name] = joints[..., k:k + p.width]
                k += p.width
    return out
