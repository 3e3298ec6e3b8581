"""Products of manifolds: one flat coordinate vector, sliced per factor."""

from __future__ import annotations

from typing import List, Optional

import torch

from .base import Manifold, Shape, _safe_sqrt, as_shape


class Product(Manifold):
    """``M_1 x ... x M_k``. Points ``(..., sum coord_dim_i)`` are the factors' coordinates concatenated in
    order; dims, log-densities and squared distances add up.

    Every method splits the last axis with precomputed slices, calls the factor, and concatenates, so a
    product behaves exactly like its factors on their coordinates.
    """

    def __init__(self, *factors: Manifold):
        if len(factors) == 1 and isinstance(factors[0], (list, tuple)):
            factors = tuple(factors[0])
        if not factors:
            raise ValueError("Product needs at least one factor")
        flat: List[Manifold] = []
        for f in factors:
            if not isinstance(f, Manifold):
                raise TypeError(f"Product factors must be Manifolds, got {type(f).__name__}")
            flat.extend(f.factors if isinstance(f, Product) else [f])
        self.factors = tuple(flat)
        self.slices = []
        start = 0
        for f in self.factors:
            self.slices.append(slice(start, start + f.coord_dim))
            start += f.coord_dim
        self.coord_dim = start
        self.dim = sum(f.dim for f in self.factors)
        self.compact = all(f.compact for f in self.factors)

    # ------------------------------------------------------------------ structure
    def split(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Per-factor views ``[x[..., s] for s in slices]``."""
        return [x[..., s] for s in self.slices]

    def _map(self, fn, *args):
        parts = zip(*(self.split(a) for a in args))
        return torch.cat([fn(f, *p) for f, p in zip(self.factors, parts)], dim=-1)

    def _sum(self, fn, *args):
        parts = zip(*(self.split(a) for a in args))
        return sum(fn(f, *p) for f, p in zip(self.factors, parts))

    @property
    def spec(self) -> str:
        tokens, counts = [], []
        for f in self.factors:
            if tokens and tokens[-1] == f.spec:
                counts[-1] += 1
            else:
                tokens.append(f.spec)
                counts.append(1)
        return " x ".join(t if c == 1 else f"{t}^{c}" for t, c in zip(tokens, counts))

    def __eq__(self, other) -> bool:
        return isinstance(other, Product) and self.spec == other.spec

    @property
    def geometry(self) -> "Product":
        """Each factor's :attr:`~posegen.manifolds.base.Manifold.geometry`: the points, without model options."""
        return Product(*(f.geometry for f in self.factors))

    def __hash__(self) -> int:
        return hash(("Product", self.spec))

    @property
    def standardize_mask(self) -> torch.Tensor:
        """Boolean ``(coord_dim,)``: which coordinates are standardised before the network (R^d factors)."""
        m = torch.zeros(self.coord_dim, dtype=torch.bool)
        for f, s in zip(self.factors, self.slices):
            if f.standardize:
                m[s] = True
        return m

    euclidean_mask = standardize_mask  # the older name

    # ------------------------------------------------------------------ what the factors contribute
    @property
    def feature_dim(self) -> int:
        return sum(f.feature_dim for f in self.factors)

    def features(self, x):
        return self._map(lambda f, a: f.features(a), x)

    @property
    def head_dim(self) -> int:
        return sum(f.head_dim for f in self.factors)

    def head(self, x, out):
        heads, start = [], 0
        for f, xf in zip(self.factors, self.split(x)):
            heads.append(f.head(xf, out[..., start:start + f.head_dim]))
            start += f.head_dim
        return torch.cat(heads, -1)

    def kernel_coords(self, x):
        ys, logdet = [], 0
        for f, xf in zip(self.factors, self.split(x)):
            y, ld = f.kernel_coords(xf)
            ys.append(y)
            logdet = logdet + ld
        return torch.cat(ys, -1), logdet

    def from_kernel_coords(self, y):
        return self._map(lambda f, a: f.from_kernel_coords(a), y)

    @property
    def has_chart(self) -> bool:
        return any(f.has_chart for f in self.factors)

    def chart_manifold(self):
        return Product(*(f.chart_manifold() for f in self.factors)) if self.has_chart else self

    def to_chart(self, x):
        return self._map(lambda f, a: f.to_chart(a), x) if self.has_chart else x

    def from_chart(self, y):
        return self._map(lambda f, a: f.from_chart(a), y) if self.has_chart else y

    def chart_velocity(self, x, v):
        return self._map(lambda f, a, b: f.chart_velocity(a, b), x, v) if self.has_chart else v

    @property
    def holds_quaternion(self) -> bool:
        return any(f.holds_quaternion for f in self.factors)

    def canonical(self, x):
        return self._map(lambda f, a: f.canonical(a), x)

    def augment(self, x, generator=None):
        return self._map(lambda f, a: f.augment(a, generator), x)

    def coord_names(self, prefix: str = "") -> list:
        """Factor coordinate names; prefixed with ``f<i>.`` (factor index) only where they would clash."""
        names = [f.coord_names() for f in self.factors]
        flat = [n for ns in names for n in ns]
        if len(set(flat)) != len(flat):
            flat = [f"f{i}.{n}" for i, ns in enumerate(names) for n in ns]
        return [prefix + n for n in flat]

    # ------------------------------------------------------------------ geometry
    def projx(self, x):
        return self._map(lambda f, a: f.projx(a), x)

    def proju(self, x, u):
        return self._map(lambda f, a, b: f.proju(a, b), x, u)

    def expmap(self, x, u):
        return self._map(lambda f, a, b: f.expmap(a, b), x, u)

    def logmap(self, x, y):
        return self._map(lambda f, a, b: f.logmap(a, b), x, y)

    def transp(self, x, y, u):
        return self._map(lambda f, a, b, c: f.transp(a, b, c), x, y, u)

    def inner(self, x, u, v=None):
        v = u if v is None else v
        return self._sum(lambda f, a, b, c: f.inner(a, b, c), x, u, v)

    def norm(self, x, u):
        return _safe_sqrt(self.inner(x, u))

    def dist(self, x, y):
        # the safe square root keeps the gradient at x = y finite (0), like the factors' distances
        return _safe_sqrt(self._sum(lambda f, a, b: f.dist(a, b) ** 2, x, y))

    def geodesic(self, x, y, t):
        pts, vel = [], []
        for f, a, b in zip(self.factors, self.split(x), self.split(y)):
            p, v = f.geodesic(a, b, t)
            pts.append(p)
            vel.append(v)
        return torch.cat(pts, -1), torch.cat(vel, -1)

    # ------------------------------------------------------------------ distributions
    @property
    def log_volume(self) -> float:
        return sum(f.log_volume for f in self.factors)

    def temper(self, x, temperature):
        return self._map(lambda f, xi: f.temper(xi, temperature), x)

    def interior(self, x):
        return self._map(lambda f, xi: f.interior(xi), x)

    def sample_base(self, n: Shape, generator: Optional[torch.Generator] = None,
                    dtype=torch.float32, device=None):
        shape = as_shape(n)
        return torch.cat([f.sample_base(shape, generator=generator, dtype=dtype, device=device)
                          for f in self.factors], dim=-1)

    def base_log_prob(self, x):
        return self._sum(lambda f, a: f.base_log_prob(a), x)

    def _check(self, x, atol):
        if not isinstance(x, torch.Tensor):
            return False, f"expected a torch.Tensor, got {type(x).__name__}"
        if x.dim() == 0 or x.shape[-1] != self.coord_dim:
            layout = " + ".join(f"{f.coord_dim} ({f.spec})" for f in self.factors)
            return False, (f"expected shape (..., {self.coord_dim}) for {self!r} [{layout}], "
                           f"got {tuple(x.shape)}")
        for i, (f, a) in enumerate(zip(self.factors, self.split(x))):
            ok, reason = f._check(a, atol)
            if not ok:
                where = f"factor {i} ({f.spec}, columns {self.slices[i].start}:{self.slices[i].stop})"
                return False, f"{where}: {reason}" if len(self.factors) > 1 else reason
        return True, ""

