"""The flat torus T^n = (S^1)^n, each angle in radians wrapped to [-pi, pi)."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .base import DataCheck, Manifold, Shape, _rows_message, _safe_norm, as_shape


def wrap_angle(theta: torch.Tensor) -> torch.Tensor:
    """Wrap angles (radians) to ``[-pi, pi)``; the gradient is 1 everywhere.

    Angles already in ``[-pi, pi)`` come back bit for bit: shifting them by pi and back would round
    them to the grid of numbers near pi (1e-3 came back as 0.00099993 in float32, 1e-10 as 0).
    """
    out = torch.remainder(theta + math.pi, 2 * math.pi) - math.pi
    # remainder can round up to exactly 2*pi for tiny negative inputs; fold that back.
    out = torch.where(out >= math.pi, out - 2 * math.pi, out)
    return torch.where((theta >= -math.pi) & (theta < math.pi), theta, out)


class Torus(Manifold):
    """n angles with the flat metric (arc length on each circle): total volume (2 pi)^n.

    Points ``(..., n)`` are angles in ``[-pi, pi)``; tangent vectors are angle increments ``(..., n)``.
    """

    compact = True
    kernel = "von_mises"
    role = "angle"
    part_name = "joints"
    periodic = True
    plot_kind = "angles"

    def __init__(self, n: int):
        if int(n) != n or n < 1:
            raise ValueError(f"Torus dimension must be a positive integer, got {n!r}")
        self.dim = self.coord_dim = int(n)

    @property
    def bounds(self) -> torch.Tensor:
        return torch.tensor([[-math.pi, math.pi]] * self.dim, dtype=torch.float64)

    @property
    def feature_dim(self) -> int:
        return 2 * self.dim

    def features(self, x):
        # (cos, sin) of every angle: the field is periodic in each angle by construction
        return torch.cat([torch.cos(x), torch.sin(x)], -1)

    def data_check(self, x, *, unit, renormalize_tol=0.05, wrap=False):
        if wrap:
            outside = (x < -math.pi) | (x >= math.pi)
            return DataCheck(fix=outside, value=wrap_angle(x)) if outside.any() else DataCheck()
        outside = ((x < -math.pi - unit) | (x > math.pi + unit)).any(1)
        if not outside.any():
            return DataCheck()
        return DataCheck(refuse=outside, reason=(
            f"holds angles outside [-pi, pi] in {int(outside.sum())} of {x.shape[0]} rows (max |angle| "
            f"{x.abs().max().item():.4g}). Torus angles are radians in [-pi, pi): are they degrees (convert, "
            f"or angle_unit='deg' for tables)? Unwrapped joint angles? Pass wrap=True to wrap them"))

    @property
    def spec(self) -> str:
        return f"T{self.dim}"

    @property
    def log_volume(self) -> float:
        return self.dim * math.log(2 * math.pi)

    def projx(self, x):
        return wrap_angle(x)

    def proju(self, x, u):
        return u

    def expmap(self, x, u):
        return wrap_angle(x + u)

    def logmap(self, x, y):
        return wrap_angle(y - x)

    def dist(self, x, y):
        return _safe_norm(wrap_angle(y - x))

    def geodesic(self, x, y, t):
        u = wrap_angle(y - x)
        return wrap_angle(x + t.unsqueeze(-1) * u), u

    def sample_base(self, n: Shape, generator: Optional[torch.Generator] = None,
                    dtype=torch.float32, device=None):
        u = torch.rand(*as_shape(n), self.dim, generator=generator, dtype=dtype, device=device)
        return wrap_angle(2 * math.pi * u - math.pi)

    def base_log_prob(self, x):
        return torch.full(x.shape[:-1], -self.log_volume, dtype=x.dtype, device=x.device)

    _coord_stem = "theta"

    def _check_on_manifold(self, x, atol):
        bad = ((x < -math.pi - atol) | (x > math.pi + atol)).any(-1)
        if bad.any():
            return False, (f"angles outside [-pi, pi) in {_rows_message(bad)} "
                           f"(max |angle| {x.abs().max().item():.4g}); wrap them with posegen.wrap_angle "
                           f"or check that they are radians, not degrees")
        return True, ""
