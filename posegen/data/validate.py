"""Data at entry: the gate (:mod:`posegen.manifolds.gate`, re-exported here) and quaternion order.

posegen stores quaternions ``(..., 4)`` in x, y, z, w order; files may hold w, x, y, z, and every loader
converts on entry with :func:`convert_quats` (a product's SO3 columns) or
:func:`posegen.rotations.convert_quat_order`, then passes the points through :func:`validate_points`.
"""

from __future__ import annotations

import torch

from ..manifolds import parse
from ..manifolds.gate import (
    NONFINITE,
    DataWarning,
    as_float_tensor,
    check_nonfinite_mode,
    layout,
    validate_points,
    validate_with_conditions,
)
from ..rotations import check_quat_order, convert_quat_order

__all__ = ["convert_quats", "validate_points", "validate_with_conditions", "as_float_tensor", "layout",
           "DataWarning", "check_nonfinite_mode", "NONFINITE"]


def convert_quats(manifold, x: torch.Tensor, order: str, to_xyzw: bool = True) -> torch.Tensor:
    """Reorder the SO3 factors' columns of ``x (..., coord_dim)`` from ``order`` to xyzw (or, with
    ``to_xyzw=False``, from xyzw to ``order``) with :func:`posegen.rotations.convert_quat_order`.

    Other factors (S3 included: it is not a rotation) are left as they are. Returns ``x`` itself when
    ``order`` is xyzw or there is no SO3 factor, else a new tensor. Exact (a permutation).
    """
    manifold = parse(manifold)
    order = check_quat_order(order)
    slices = [s for f, s in zip(manifold.factors, manifold.slices) if f.holds_quaternion]
    if order == "xyzw" or not slices:
        return x
    src, dst = (order, "xyzw") if to_xyzw else ("xyzw", order)
    out = x.clone()
    for s in slices:
        out[..., s] = convert_quat_order(x[..., s], src, dst)
    return out
