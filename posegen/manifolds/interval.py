r"""Joints with limits: the open box ``(lo, hi)`` in R^d, as a manifold whose points never leave it.

Why this geometry
-----------------
A joint with limits ``[lo, hi]`` must be sampled inside them *by construction*: no rejection of the mass a
torus puts outside, no clamping. posegen's flows move points by integrating an ODE and train on paths
between base and data points, so the box needs (1) paths that stay inside, (2) an ODE whose steps of any
size stay inside, and (3) an exact density w.r.t. Lebesgue measure on the box. A reflected flow gives (1)
and (2) only for exact trajectories and needs boundary conditions on the network; a smooth bijection to
R^d gives all three with closed forms, so posegen uses the bijection

.. math::  x = g(z) = lo + (hi - lo)\,\Phi(z), \qquad z = \Phi^{-1}\Big(\frac{x - lo}{hi - lo}\Big),

per coordinate, with :math:`\Phi` the standard normal CDF. The choice of :math:`\Phi` (rather than a
sigmoid or tanh) makes the base distribution exact and simple: ``z ~ N(0, I)`` is *uniform* on the box, so
the base density is ``1 / prod(hi - lo)`` (what Moser Flow and the compact factors use), and the CNFM
kernel, a Gaussian in ``z``, equals the base density at ``t = 0``.

* **Metric**: the pullback of R^d's through ``z``: geodesics are straight lines in ``z`` (so RFM's
  conditional paths and the interpolant's stay inside), ``dist = |z(y) - z(x)|``, and the flow-matching
  loss ``|v - dx_t|^2_x`` is the plain squared error of the velocity in ``z``. The box with this metric is
  complete (isometric to R^d): no geodesic reaches the limits in finite time.
* **Density**: w.r.t. Lebesgue measure on the box, ``dx``, not the pullback volume ``dz``; ``exp(log_prob)``
  integrates to 1 over the box. The engine's likelihood only needs that its divergence is the trace of the
  coordinate Jacobian of the velocity in stored coordinates, which is the divergence w.r.t. ``dx``.
* **Network**: it sees ``z`` and the position in the range ``2 u - 1`` (``u = (x - lo) / (hi - lo)``), and its
  output ``h`` is a velocity in ``z``; the tangent vector in stored coordinates is ``g'(z) h``, which
  vanishes at the limits.
* **Solver chart**: the ODE is integrated in ``z`` (:meth:`to_chart`), where no step of any size can leave
  the box; ``g`` maps back, and ``g(z)`` is inside ``[lo, hi]`` for every finite ``z`` (each half of the
  range is computed from its nearer limit, so rounding never crosses it).

Numerics: ``z`` is computed from the nearer limit (full precision near both), and clamped to ``|z| <=``
:data:`Z_MAX` of the dtype, past which ``g(z)`` equals the limit in that dtype anyway; a point exactly at a
limit is therefore a valid point (the closed box), and ``g'(z) > 0`` everywhere, so the chart's velocity
``v / g'(z)`` is finite.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from .base import DataCheck, Manifold, Shape, _rows_message, _safe_sqrt, as_shape
from .euclidean import Euclidean

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
#: beyond this |z| the map g(z) is a limit to the dtype's precision (1 - Phi(5.4) < 2^-24; 1 - Phi(37.5)
#: underflows float64), so z is clamped there and g'(z) stays a normal number
Z_MAX = {torch.float16: 4.0, torch.bfloat16: 4.0, torch.float32: 8.0, torch.float64: 30.0}

Number = Union[float, int]

#: recorded values closer to a limit than this share of the range (robots pinned at a hard stop, logs
#: clamped to the limits) are moved to it on entry: a density has no finite value on the boundary, and a
#: point mass there would let a flow's likelihood grow without bound
LIMIT_MARGIN = 1e-4


def _as_limits(lo, hi):
    lo_t = torch.as_tensor(lo, dtype=torch.float64).reshape(-1)
    hi_t = torch.as_tensor(hi, dtype=torch.float64).reshape(-1)
    if lo_t.numel() == 1 and hi_t.numel() > 1:
        lo_t = lo_t.expand(hi_t.numel()).clone()
    if hi_t.numel() == 1 and lo_t.numel() > 1:
        hi_t = hi_t.expand(lo_t.numel()).clone()
    if lo_t.numel() != hi_t.numel() or lo_t.numel() < 1:
        raise ValueError(f"Interval: lo and hi must have the same positive length, got {lo_t.numel()} lower "
                         f"and {hi_t.numel()} upper limits")
    bad = ~(torch.isfinite(lo_t) & torch.isfinite(hi_t) & (hi_t > lo_t))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"Interval: limits must be finite with lo < hi in every coordinate, got "
                         f"[{lo_t[i].item()}, {hi_t[i].item()}] for coordinate {i}")
    return lo_t, hi_t


class Interval(Manifold):
    """The box ``[lo_1, hi_1] x ... x [lo_d, hi_d]`` (joint limits), points ``(..., d)`` in stored units.

    Args:
        lo, hi: lower and upper limits, numbers or sequences of length ``d`` (a number broadcasts).

    ``spec`` names the limits exactly (``"I2[-1.5:1.5,0:3.75]"``), so that a spec string rebuilds the same
    factor; ``parse("I7", limits=...)`` takes them separately. Samples of the base distribution and of any
    flow on this factor are inside the limits by construction (see the module docstring).
    """

    compact = True  # finite volume prod(hi - lo) and a uniform base distribution
    kernel = "gaussian"  # a Gaussian in z, pushed forward (kernel_coords)
    role = "joints"
    part_name = "joints"
    plot_kind = "angles"

    def __init__(self, lo: Union[Number, Sequence[Number], torch.Tensor],
                 hi: Union[Number, Sequence[Number], torch.Tensor]):
        self.lo, self.hi = _as_limits(lo, hi)
        self.dim = self.coord_dim = int(self.lo.numel())
        self._lims_cache = {}  # (dtype, device) -> (lo, hi) rounded inwards, see _lims

    # ------------------------------------------------------------------ naming
    @property
    def limits(self) -> torch.Tensor:
        """``(d, 2)`` float64 ``[lower, upper]``."""
        return torch.stack([self.lo, self.hi], -1)

    bounds = limits

    @property
    def spec(self) -> str:
        box = ",".join(f"{float(a)!r}:{float(b)!r}" for a, b in zip(self.lo.tolist(), self.hi.tolist()))
        return f"I{self.dim}[{box}]"

    def __repr__(self) -> str:
        return self.spec

    _coord_stem = "q"

    # ------------------------------------------------------------------ the bijection z <-> x
    def _lims(self, x):
        """``(lo, hi)`` in ``x``'s dtype and device, rounded inwards, so that a point inside them in a lower
        precision is inside the float64 limits too. Cached per (dtype, device): no copy per call."""
        key = (x.dtype, x.device)
        cache = self._lims_cache
        if key not in cache:
            lo, hi = self.lo.to(x.dtype), self.hi.to(x.dtype)
            lo = torch.where(lo.double() < self.lo, torch.nextafter(lo, torch.full_like(lo, math.inf)), lo)
            hi = torch.where(hi.double() > self.hi, torch.nextafter(hi, torch.full_like(hi, -math.inf)), hi)
            cache[key] = (lo.to(x.device), hi.to(x.device))
        return cache[key]

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        """``z = Phi^-1((x - lo) / (hi - lo))``, from the nearer limit, clamped to ``|z| <= Z_MAX``."""
        lo, hi = self._lims(x)
        w = hi - lo
        zmax = Z_MAX.get(x.dtype, 8.0)
        tiny = torch.finfo(x.dtype).tiny
        d_lo, d_hi = x - lo, hi - x
        near_lo = d_lo <= d_hi
        # u (exact near lo) or 1 - u (exact near hi), whichever is nearer: one ndtri of the nearer side, not both
        # sides and a choice (the same values; ndtri is most of the chart's cost when a flow samples)
        m = (torch.where(near_lo, d_lo, d_hi) / w).clamp(tiny, 0.5)
        z = torch.special.ndtri(m)
        return torch.where(near_lo, z, -z).clamp(-zmax, zmax)

    def _g(self, z: torch.Tensor) -> torch.Tensor:
        """``x = lo + (hi - lo) Phi(z)``, from the nearer limit: inside ``[lo, hi]`` for every finite ``z``."""
        lo, hi = self._lims(z)
        w = hi - lo
        return torch.where(z <= 0, lo + w * torch.special.ndtr(z), hi - w * torch.special.ndtr(-z))

    def _log_dg(self, z: torch.Tensor) -> torch.Tensor:
        """``log g'(z) = log(hi - lo) + log phi(z)``, elementwise."""
        lo, hi = self._lims(z)
        return torch.log(hi - lo) - 0.5 * z * z - _LOG_SQRT_2PI

    def _dg(self, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(self._log_dg(z))

    # ------------------------------------------------------------------ geometry (pullback of R^d)
    def projx(self, x):
        lo, hi = self._lims(x)
        return torch.minimum(torch.maximum(x, lo), hi)

    def proju(self, x, u):
        return u

    def expmap(self, x, u):
        z = self._z(x)
        y = self._g(z + u / self._dg(z))
        # u = 0 returns x bit for bit (the round trip through z can move it by an ulp); the correction is a
        # constant, so the derivatives are those of the map (d/du = 1 at u = 0)
        return y + torch.where(u == 0, x - y, torch.zeros_like(y)).detach()

    def logmap(self, x, y):
        z = self._z(x)
        return self._dg(z) * (self._z(y) - z)

    def dist(self, x, y):
        d = self._z(y) - self._z(x)
        return _safe_sqrt((d * d).sum(-1))

    def inner(self, x, u, v=None):
        v = u if v is None else v
        return (u * v * torch.exp(-2 * self._log_dg(self._z(x)))).sum(-1)

    def norm(self, x, u):
        return _safe_sqrt(self.inner(x, u))

    def transp(self, x, y, u):
        return u * torch.exp(self._log_dg(self._z(y)) - self._log_dg(self._z(x)))

    def geodesic(self, x, y, t):
        z0, z1 = self._z(x), self._z(y)
        x_t = self._g(z0 + t.unsqueeze(-1) * (z1 - z0))
        # the velocity at the stored x_t (its z recomputed), not at the exact z_t: near a limit x_t rounds,
        # and only this keeps |v - dx_t|_x_t, which divides by g'(z(x_t)), the error of the chart velocity
        # (in float32 the other choice gave losses of 1e13 on joints at their limits)
        return x_t, self._dg(self._z(x_t)) * (z1 - z0)

    # ------------------------------------------------------------------ distributions (w.r.t. dx)
    @property
    def log_volume(self) -> float:
        return float(torch.log(self.hi - self.lo).sum())

    def sample_base(self, n: Shape, generator: Optional[torch.Generator] = None,
                    dtype=torch.float32, device=None):
        u = torch.rand(*as_shape(n), self.dim, generator=generator, dtype=dtype, device=device)
        lo, hi = self._lims(u)
        return self.projx(lo + (hi - lo) * u)

    def temper(self, x, temperature):
        # the uniform base is z ~ N(0, I) in the chart: widen z, and more of the draws lie near the limits
        return x if temperature == 1 else self.from_chart(self.to_chart(x) * temperature)

    def base_log_prob(self, x):
        return torch.full(x.shape[:-1], -self.log_volume, dtype=x.dtype, device=x.device)

    def interior(self, x):
        # a value on a limit sits at the chart's clamp (z = -+Z_MAX, 8 in float32), far beyond anything a flow
        # trained on continuous draws has seen (Phi^-1(2^-24) = -5.3), where its field, hence its log-density, is
        # arbitrary: the shipped Panda IK weights scored refined solutions with a joint on a limit 5-60 nats below
        # the same solutions LIMIT_MARGIN inside. So they are scored that far inside, as the data gate moves them
        lo, hi = self._lims(x)
        m = LIMIT_MARGIN * (hi - lo)
        return torch.minimum(torch.maximum(x, lo + m), hi - m)

    # ------------------------------------------------------------------ what the factor contributes
    @property
    def feature_dim(self) -> int:
        return 2 * self.dim

    def features(self, x):
        lo, hi = self._lims(x)
        return torch.cat([self._z(x), 2 * (x - lo) / (hi - lo) - 1], -1)

    def head(self, x, out):
        # the network's output is a velocity in z; in stored coordinates it is g'(z) h, 0 at the limits
        return self._dg(self._z(x)) * out

    def kernel_coords(self, x):
        z = self._z(x)
        return z, -self._log_dg(z).sum(-1)

    def from_kernel_coords(self, y):
        return self._g(y)

    @property
    def has_chart(self) -> bool:
        return True

    def chart_manifold(self):
        return Euclidean(self.dim)

    def to_chart(self, x):
        return self._z(x)

    def from_chart(self, y):
        return self._g(y)

    def chart_velocity(self, x, v):
        return v * torch.exp(-self._log_dg(self._z(x)))

    # ------------------------------------------------------------------ validation
    def _outside(self, x, atol):
        lo, hi = self._lims(x)
        return (x < lo - atol) | (x > hi + atol)

    def _check_on_manifold(self, x, atol):
        bad = self._outside(x, atol)
        if bad.any():
            return False, self._outside_reason(x, bad.any(-1), bad)
        return True, ""

    def _outside_reason(self, x, rows, cells) -> str:
        flat_x, flat_c = x.reshape(-1, self.dim), cells.reshape(-1, self.dim)
        cols = sorted({int(c) for c in flat_c.nonzero()[:, 1].tolist()})
        shown = ", ".join(f"coordinate {c} in [{self.lo[c].item():.6g}, {self.hi[c].item():.6g}] "
                          f"(got {flat_x[:, c][flat_c[:, c]][0].item():.6g})" for c in cols[:3])
        return (f"values outside the limits of {self.spec} in {_rows_message(rows)}: {shown}"
                f"{' and more' if len(cols) > 3 else ''}")

    def data_check(self, x, *, unit, renormalize_tol=0.05, wrap=False):
        far = self._outside(x, unit)
        if far.any():
            return DataCheck(refuse=far.any(1), reason=(
                f"must hold values inside the joint limits, but {int(far.any(1).sum())} of {x.shape[0]} rows "
                f"do not ({self._outside_reason(x, far.any(1), far)}). Are they degrees, or wrapped angles "
                f"of a joint whose range crosses pi (unwrap them into the limits)?"))
        inside = self.interior(x)
        near = inside != x  # on a limit, or off it by rounding only
        if not near.any():
            return DataCheck()
        # counts and coordinates are the gate's placeholders, so that one load's checks add up to one warning
        return DataCheck(fix=near, value=inside, note=(
            f"{{where}}: {{rows}} of {{n}} rows had {{coords}} on a joint limit (within {LIMIT_MARGIN:g} of its "
            f"range); moved that far inside, where the density is finite"))

    def __eq__(self, other) -> bool:
        return (isinstance(other, Interval) and self.dim == other.dim and torch.equal(self.lo, other.lo)
                and torch.equal(self.hi, other.hi))

    def __hash__(self) -> int:
        return hash(("Interval", self.spec))
