"""The independent joints of a chain: URDF ``<mimic>`` joints followed to the joints that drive them.

A mimic joint ``m`` with ``<mimic joint="d" multiplier="k" offset="c"/>`` takes the value
``theta_m = k * theta_d + c``; mimics of mimics compose. A robot's joint vector ``q (..., dof)`` holds the
independent (driving) joints only, so the chain's joint values are an affine map of it:
``theta (..., n_path) = q[..., index] * multiplier + offset`` (:class:`ChainDrive`), and the Jacobian in
``q`` is the chain's Jacobian with each column scaled by its multiplier and added into its driver's column.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Dict, Optional, Sequence, Tuple

from .description import Description, JointSpec

__all__ = ["ChainDrive", "driver_of", "chain_drive", "driven_by"]


def driver_of(desc: Description, joint: JointSpec) -> Tuple[JointSpec, float, float]:
    """``(driver, multiplier, offset)``: the independent joint that sets ``joint``'s value, with
    ``theta_joint = multiplier * theta_driver + offset`` (``(joint, 1, 0)`` for a joint that mimics nothing).

    Raises ValueError (naming the source and the joints) for a mimic of an unknown or fixed joint and for
    mimic cycles.
    """
    mult, offset, seen, j = 1.0, 0.0, [joint.name], joint
    while j.mimic is not None:
        target = desc.joint(j.mimic)
        if target is None or not target.movable:
            what = "no joint of the file" if target is None else "a fixed joint"
            raise ValueError(f"{desc.source}: joint {j.name!r} mimics {j.mimic!r}, which is {what}")
        if target.name in seen:
            raise ValueError(f"{desc.source}: mimic joints form a cycle: {' -> '.join(seen + [target.name])}")
        # theta_j = m_j * theta_t + c_j and theta_t = ... : compose from the outside in
        mult, offset = mult * j.mimic_multiplier, offset + mult * j.mimic_offset
        seen.append(target.name)
        j = target
    return j, mult, offset


@dataclass(frozen=True)
class ChainDrive:
    """How a chain's movable joints follow the robot's joint vector.

    ``dofs`` are the independent joints in order of first appearance from the root (a mimic joint's
    driver takes the place of its first mimic when it is not on the chain itself); for path joint ``k``,
    ``theta_k = multiplier[k] * q[index[k]] + offset[k]``. ``identity`` is True when the chain has no mimic
    joint (then ``theta = q``).
    """

    dofs: Tuple[JointSpec, ...]
    index: Tuple[int, ...]
    multiplier: Tuple[float, ...]
    offset: Tuple[float, ...]

    @cached_property
    def identity(self) -> bool:
        return (self.index == tuple(range(len(self.index))) and all(m == 1.0 for m in self.multiplier)
                and all(c == 0.0 for c in self.offset))


def chain_drive(desc: Description, path: Sequence[JointSpec]) -> ChainDrive:
    """The :class:`ChainDrive` of the movable joints ``path`` (root to tip) of ``desc``."""
    dofs: Dict[str, int] = {}
    order, index, mult, offset = [], [], [], []
    for j in path:
        d, m, c = driver_of(desc, j)
        if d.name not in dofs:
            dofs[d.name] = len(order)
            order.append(d)
        index.append(dofs[d.name])
        mult.append(m)
        offset.append(c)
    return ChainDrive(tuple(order), tuple(index), tuple(mult), tuple(offset))


def driven_by(desc: Description, joint: JointSpec, names: Dict[str, int]) -> Optional[Tuple[int, float, float]]:
    """``(dof index, multiplier, offset)`` when ``joint`` is one of the dofs ``names`` (name -> index) or
    mimics one of them; None otherwise (also for a joint whose mimic cannot be resolved)."""
    try:
        d, m, c = driver_of(desc, joint)
    except ValueError:
        return None
    k = names.get(d.name)
    return None if k is None else (k, m, c)
