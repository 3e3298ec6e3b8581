"""Spheres S^d embedded in R^(d+1), and SO(3) as unit quaternions modulo sign."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .base import DataCheck, Manifold, Shape, _rows_message, _safe_norm, as_shape, log_sphere_volume, sinc, tol

_TRIU = tuple(torch.triu_indices(4, 4).tolist())  # plain ints: no tensor copied to the device per call


class Sphere(Manifold):
    """The unit sphere S^d in R^(d+1) with the round metric.

    Points ``(..., d+1)`` with unit norm; tangent vectors ``(..., d+1)`` orthogonal to the point.
    Total volume 4 pi for S^2 and 2 pi^2 for S^3.
    """

    compact = True
    kernel = "vmf"

    def __init__(self, d: int, fourier: int = 0):
        if int(d) != d or d < 1:
            raise ValueError(f"Sphere dimension must be a positive integer, got {d!r}")
        if int(fourier) != fourier or fourier < 0:
            raise ValueError(f"fourier must be a non-negative integer (number of octaves), got {fourier!r}")
        self.dim = int(d)
        self.coord_dim = self.dim + 1
        self.fourier = int(fourier)

    # What the velocity network sees of a point: the unit vector x, and with ``fourier=K`` also
    # sin/cos(pi 2^k x_i) for k < K (a smooth, chart-free function of the point, so exact divergence through
    # the features still works), which lets an MLP resolve features down to ~pi / 2^(K-1) radians: sharp
    # densities such as the earth sets on S2. Default 0: x only.
    @property
    def feature_dim(self) -> int:
        return self.coord_dim * (1 + 2 * self.fourier)

    def features(self, x):
        if not self.fourier:
            return x
        freqs = math.pi * 2.0 ** torch.arange(self.fourier, dtype=x.dtype, device=x.device)
        a = (x.unsqueeze(-1) * freqs).flatten(-2)  # (..., coord_dim * K)
        return torch.cat([x, torch.sin(a), torch.cos(a)], -1)

    @property
    def geometry(self) -> "Sphere":
        # the features are what the network sees, not where the points are: S^d[fourier=K] holds S^d's points
        return Sphere(self.dim) if self.fourier else self

    # S^3 factors hold quaternions (the CNFM paper's robot manifold R3 x T8 x S3^6); S^2 is drawn as a globe
    @property
    def holds_quaternion(self) -> bool:
        return self.dim == 3

    @property
    def role(self) -> str:
        return "quaternion" if self.dim == 3 else "direction"

    @property
    def part_name(self) -> str:
        return "quat" if self.dim == 3 else "sphere"

    @property
    def plot_kind(self) -> str:
        return {2: "sphere", 3: "rotations"}.get(self.dim, "positions")

    def data_check(self, x, *, unit, renormalize_tol=0.05, wrap=False):
        norm = x.norm(dim=1)
        err = (norm - 1).abs()
        far = (err > renormalize_tol) | (norm <= torch.finfo(x.dtype).tiny)
        if far.any():
            shown = ", ".join(f"{float(a):.4g}" for a in norm[far][:3]) + (", ..." if int(far.sum()) > 3 else "")
            return DataCheck(refuse=far, reason=(
                f"must hold unit vectors, but {int(far.sum())} of {x.shape[0]} rows have norm off 1 by more "
                f"than renormalize_tol={renormalize_tol:g} (norms [{shown}])"))
        near = err > unit
        if not near.any():
            return DataCheck()
        return DataCheck(fix=near.unsqueeze(1), value=x / norm.unsqueeze(1), note=(
            f"renormalised {int(near.sum())} of {x.shape[0]} rows of {{where}} whose norm was off 1 by up to "
            f"{err.max().item():.3g} (more than the {x.dtype} tolerance {unit:g})"))

    @property
    def spec(self) -> str:
        # the feature option changes the network's input width, so it is part of the name (a flow saved with
        # it is not loaded as a plain S<d> one)
        return f"S{self.dim}" + (f"[fourier={self.fourier}]" if self.fourier else "")

    @property
    def log_volume(self) -> float:
        return log_sphere_volume(self.dim)

    # ------------------------------------------------------------------ maps
    def projx(self, x):
        return x / _safe_norm(x, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny ** 0.5)

    def proju(self, x, u):
        return u - (x * u).sum(-1, keepdim=True) * x

    def expmap(self, x, u):
        # exp_x(u) = cos|u| x + sin|u| u/|u|, written with sinc so that u -> 0 is exact and differentiable.
        n = _safe_norm(u, keepdim=True)
        return self.projx(torch.cos(n) * x + sinc(n) * u)

    def _angle(self, x, y):
        # 2 atan2(|x - y|, |x + y|) is accurate for near, far and antipodal pairs alike (unlike acos).
        return 2 * torch.atan2(_safe_norm(x - y), _safe_norm(x + y))

    def dist(self, x, y):
        return self._angle(x, y)

    def logmap(self, x, y):
        theta = self._angle(x, y).unsqueeze(-1)
        v = y - (x * y).sum(-1, keepdim=True) * x  # |v| = sin(theta)
        vn = _safe_norm(v, keepdim=True)
        eps = tol(x.dtype, "eps")
        # At the antipode every direction is a minimising geodesic; pick a fixed one so values stay finite.
        # branch-free (no host sync): elsewhere torch.where keeps v and vn bit for bit
        antipodal = (vn < eps) & (theta > math.pi / 2)
        v = torch.where(antipodal, self._some_tangent(x), v)
        vn = torch.where(antipodal, torch.ones_like(vn), vn)
        small = theta < eps ** 0.5 * 10
        # theta / sin(theta) = 1 + theta^2/6 + 7 theta^4/360 + O(theta^6): without the theta^4 term the
        # branch was off by ~25 ulp in float64 just below the switch
        t2 = theta * theta
        factor = torch.where(small, 1 + t2 / 6 + 7 * t2 * t2 / 360,
                             theta / torch.where(small, torch.ones_like(vn), vn))
        return factor * v

    def tangent_frame(self, x):
        """``(d, ..., d+1)``: an orthonormal basis of the tangent space at each ``x`` (unit vectors).

        The columns ``i >= 1`` of the Householder reflection taking ``e_0`` to ``-sign(x_0) x``:
        ``e_i - x_i (x + s e_0) / (1 + |x_0|)`` with ``s = sign(x_0)`` (``+1`` at 0); branch-free and
        stable (the denominator is >= 1).
        """
        x = self.projx(x)
        s = torch.where(x[..., :1] >= 0, 1.0, -1.0).to(x.dtype)
        w = torch.cat([x[..., :1] + s, x[..., 1:]], -1)  # x + s e_0
        coef = x[..., 1:] / (1 + x[..., :1].abs())  # (..., d)
        eye = torch.eye(self.coord_dim, dtype=x.dtype, device=x.device)[1:]  # (d, d+1)
        frame = eye.view((self.dim,) + (1,) * (x.dim() - 1) + (self.coord_dim,)) \
            - coef.movedim(-1, 0).unsqueeze(-1) * w
        return frame

    def _some_tangent(self, x):
        """A unit tangent vector at x: the coordinate axis least aligned with x, projected."""
        k = x.abs().argmin(-1, keepdim=True)
        e = torch.zeros_like(x).scatter_(-1, k, 1.0)
        e = self.proju(x, e)
        return e / _safe_norm(e, keepdim=True).clamp_min(tol(x.dtype, "eps"))

    def geodesic(self, x, y, t):
        u = self.logmap(x, y)
        theta = _safe_norm(u, keepdim=True)
        tt = t.unsqueeze(-1) * theta
        # x_t = cos(t th) x + t sinc(t th) u ;  dx_t/dt = -th sin(t th) x + cos(t th) u
        x_t = torch.cos(tt) * x + t.unsqueeze(-1) * sinc(tt) * u
        dx_t = -theta * torch.sin(tt) * x + torch.cos(tt) * u
        return self.projx(x_t), dx_t

    def transp(self, x, y, u):
        # On T_x, transport along the minimising geodesic is the reflection through the hyperplane
        # orthogonal to x + y (it takes log_x y to -log_y x): u - 2 <n, u> n with n = (x + y) / |x + y|.
        # This equals the textbook u - <y, u> / (1 + <x, y>) (x + y) for tangent u, but normalises x + y
        # directly instead of dividing by the cancelling 1 + <x, y> (0/0 at the antipode). At the antipode
        # it reflects along the direction logmap picks there, so transp(x, y, log_x y) = -log_y x holds.
        s = x + y
        sn = _safe_norm(s, keepdim=True)
        antipodal = sn < tol(x.dtype, "eps")  # branch-free, as in logmap
        s = torch.where(antipodal, self._some_tangent(x), s)
        sn = torch.where(antipodal, torch.ones_like(sn), sn)
        n = s / sn
        return u - 2 * (n * u).sum(-1, keepdim=True) * n

    # ------------------------------------------------------------------ distributions
    def sample_base(self, n: Shape, generator: Optional[torch.Generator] = None,
                    dtype=torch.float32, device=None):
        z = torch.randn(*as_shape(n), self.coord_dim, generator=generator, dtype=dtype, device=device)
        return self.projx(z)

    def base_log_prob(self, x):
        return torch.full(x.shape[:-1], -self.log_volume, dtype=x.dtype, device=x.device)

    _coord_stem = "s"

    def _check_on_manifold(self, x, atol):
        err = ((x * x).sum(-1).sqrt() - 1).abs()
        bad = err > atol
        if bad.any():
            return False, (f"norm differs from 1 by up to {err.max().item():.3g} (tolerance {atol:.1g}) "
                           f"in {_rows_message(bad)}")
        return True, ""


class SO3(Sphere):
    """Rotations as unit quaternions stored ``(..., 4)`` in x, y, z, w order (roma's and SciPy's), with
    ``q`` and ``-q`` the same point.

    The metric is the one S^3 induces, so :meth:`dist` is ``arccos |<q, p>|`` (half the rotation angle)
    and the total volume is pi^2, half of S^3's. :meth:`logmap` takes the nearer representative of ``y``.
    Points are not forced into one hemisphere (flows must move continuously); use :meth:`canonical` for
    output.
    """

    kernel = "so3"
    holds_quaternion = True
    role = "quaternion"
    part_name = "quat"
    plot_kind = "rotations"

    def __init__(self):
        super().__init__(3)

    @property
    def spec(self) -> str:
        return "SO3"

    # The network sees the 10 entries of q q^T on and above the diagonal, invariant under q -> -q, and its
    # head is a 4x4 matrix A with v = proju(q, A q): an odd field (v(-q) = -v(q)), so the flow commutes with
    # q -> -q and descends to rotations exactly (the density on SO3 is twice the one on S^3, which
    # base_log_prob accounts for).
    @property
    def feature_dim(self) -> int:
        return 10

    def features(self, x):
        outer = x.unsqueeze(-1) * x.unsqueeze(-2)
        return outer[..., _TRIU[0], _TRIU[1]]

    @property
    def head_dim(self) -> int:
        return 16

    def head(self, x, out):
        A = out.unflatten(-1, (4, 4))
        return self.proju(x, (A @ x.unsqueeze(-1)).squeeze(-1))

    def augment(self, x, generator=None):
        # q and -q are the same rotation: a random sign teaches the field nothing false
        dev = generator.device if generator is not None else x.device
        sign = torch.randint(0, 2, (*x.shape[:-1], 1), generator=generator, device=dev).to(x) * 2 - 1
        return x * sign

    @property
    def log_volume(self) -> float:
        return log_sphere_volume(3) - math.log(2.0)

    @staticmethod
    def _sign(x, y):
        """``(..., 1)``: -1 where ``-y`` is the representative nearer ``x``, else 1."""
        return torch.where((x * y).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(y.dtype)

    @classmethod
    def _align(cls, x, y):
        """``y`` or ``-y``, whichever is nearer ``x``."""
        return cls._sign(x, y) * y

    def dist(self, x, y):
        return super().dist(x, self._align(x, y))

    def logmap(self, x, y):
        return super().logmap(x, self._align(x, y))

    def geodesic(self, x, y, t):
        return super().geodesic(x, self._align(x, y), t)

    def transp(self, x, y, u):
        # along the minimising geodesic, i.e. to the representative s y nearer x; a tangent vector w at
        # s y is the tangent vector s w at y (q -> -q maps velocities to their negatives)
        s = self._sign(x, y)
        return s * super().transp(x, s * y, u)

    @staticmethod
    def canonical(q):  # static, so that SO3.canonical(q) works too
        """The representative with w >= 0 (w is the last coordinate in xyzw order)."""
        return torch.where(q[..., 3:4] < 0, -q, q)

    def coord_names(self, prefix: str = "") -> list:
        return [f"{prefix}q{c}" for c in "xyzw"]
