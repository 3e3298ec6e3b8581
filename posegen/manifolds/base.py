"""The geometry protocol every posegen manifold implements.

Names follow geoopt and flow_matching (``projx``, ``proju``, ``expmap``, ``logmap``, ``inner``, ``dist``)
plus posegen's ``dim``, ``coord_dim``, ``sample_base``, ``base_log_prob`` and ``check_point``.

Conventions
-----------
* A point is stored as ``coord_dim`` numbers in the last axis: ``x (..., coord_dim)``. Any leading batch
  shape works.
* Tangent vectors are stored in the same coordinates as points (ambient coordinates for embedded spheres,
  angle increments for tori), so ``u (..., coord_dim)``.
* Densities (``base_log_prob``) are natural logs w.r.t. the Riemannian volume of the manifold as stored.
"""

from __future__ import annotations

import abc
import math
from typing import Optional, Sequence, Tuple, Union

import torch

Shape = Union[int, Sequence[int]]

# One table of tolerances, keyed by dtype. ``unit`` is how far from the manifold a stored point may be
# (e.g. | |q| - 1 |) and still count as on it; ``eps`` guards divisions and switches to Taylor branches.
TOLERANCES = {
    torch.float16: {"unit": 1e-2, "eps": 1e-3},
    torch.bfloat16: {"unit": 2e-2, "eps": 1e-2},
    torch.float32: {"unit": 1e-4, "eps": 1e-4},
    torch.float64: {"unit": 1e-8, "eps": 1e-7},
}


def tol(dtype: torch.dtype, key: str) -> float:
    """Tolerance ``key`` (``"unit"`` or ``"eps"``) for ``dtype``; float32's for unknown dtypes."""
    return TOLERANCES.get(dtype, TOLERANCES[torch.float32])[key]


def as_shape(n: Shape) -> Tuple[int, ...]:
    if isinstance(n, int):
        if n < 0:
            raise ValueError(f"sample size must be >= 0, got {n}")
        return (n,)
    shape = tuple(int(s) for s in n)
    if any(s < 0 for s in shape):
        raise ValueError(f"sample shape must be non-negative, got {shape}")
    return shape


def _rows_message(bad: torch.Tensor, limit: int = 5) -> str:
    """Human-readable list of the first offending row indices of a boolean mask over leading dims."""
    if bad.dim() == 0:  # an unbatched point, x (coord_dim,)
        return "the (unbatched) point"
    idx = bad.nonzero()
    rows = [int(r[0]) if bad.dim() == 1 else tuple(int(i) for i in r) for r in idx[:limit]]
    more = f" and {idx.shape[0] - limit} more" if idx.shape[0] > limit else ""
    return f"rows {rows}{more}"


class DataCheck:
    """What :meth:`Manifold.data_check` found in data rows ``(N, coord_dim)``.

    ``refuse (N,)``: rows that cannot be used, with ``reason`` (a phrase completing "... but <reason>");
    ``fix (N,) or (N, coord_dim)``: entries to replace by ``value (N, coord_dim)``, with ``note`` (a warning
    to give, where ``{where}`` is replaced by the factor's place in the caller's layout, or None for a
    silent fix such as wrapping on request).
    """

    __slots__ = ("refuse", "reason", "fix", "value", "note")

    def __init__(self, refuse=None, reason: str = "", fix=None, value=None, note: Optional[str] = None):
        self.refuse, self.reason, self.fix, self.value, self.note = refuse, reason, fix, value, note


class Manifold(abc.ABC):
    """Abstract Riemannian manifold with points stored as ``coord_dim`` numbers.

    Subclasses implement the maps on single factors; :class:`~posegen.manifolds.Product` combines them.
    """

    #: intrinsic dimension
    dim: int
    #: numbers stored per point
    coord_dim: int
    #: whether the manifold is compact (finite volume, uniform base distribution)
    compact: bool

    # ------------------------------------------------------------------ geometry
    @abc.abstractmethod
    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest point on the manifold: ``x (..., coord_dim) -> (..., coord_dim)``."""

    @abc.abstractmethod
    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection of ambient ``u`` onto the tangent space at ``x``."""

    @abc.abstractmethod
    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Exponential map: follow the geodesic from ``x`` with initial velocity ``u`` for unit time."""

    @abc.abstractmethod
    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`expmap`: the tangent vector at ``x`` pointing to ``y`` with norm ``dist(x, y)``."""

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Riemannian inner product ``<u, v>_x``, shape ``(...)``. All posegen factors use the metric
        induced by their coordinates, so this is the coordinate dot product."""
        if v is None:
            v = u
        return (u * v).sum(-1)

    def norm(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Riemannian norm of the tangent vector ``u`` at ``x``, shape ``(...)``."""
        return _safe_norm(u)

    @abc.abstractmethod
    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Geodesic distance, shape ``(...)``."""

    def geodesic(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""Point and velocity at time ``t`` on the minimising geodesic from ``x`` (t=0) to ``y`` (t=1).

        ``x, y (..., coord_dim)``, ``t (...)``; returns ``(x_t, dx_t)`` with ``dx_t = d/dt x_t``. The
        default is :math:`x_t = \exp_x(t \log_x y)` and the velocity is its parallel transport,
        computed in closed form by the factors.
        """
        u = self.logmap(x, y)
        x_t = self.expmap(x, t.unsqueeze(-1) * u)
        return x_t, self.transp(x, x_t, u)

    def transp(self, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Parallel transport of ``u`` from ``x`` to ``y`` along the minimising geodesic (flat: identity)."""
        return u

    # ------------------------------------------------------------------ distributions
    @abc.abstractmethod
    def sample_base(self, n: Shape, generator: Optional[torch.Generator] = None,
                    dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """Samples of the base (prior) distribution, shape ``(*n, coord_dim)``: uniform on compact
        manifolds, standard normal on R^d."""

    def temper(self, x: torch.Tensor, temperature: float) -> torch.Tensor:
        """Base draws ``x (..., coord_dim)`` made wider (``temperature > 1``) or narrower, as a Gaussian base's
        standard deviation times ``temperature`` (Glow's temperature). A factor with a uniform base returns
        ``x`` unchanged: there is no wider uniform law on a compact manifold."""
        return x

    def interior(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., coord_dim)`` with points on the boundary moved inside, to where a learned density has a
        finite, trained value (what the data gate does to recorded values). ``x`` itself on manifolds without a
        boundary."""
        return x

    @abc.abstractmethod
    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of the base distribution w.r.t. the Riemannian volume, shape ``(...)``."""

    @property
    def log_volume(self) -> float:
        """Log of the total Riemannian volume (compact manifolds only)."""
        raise ValueError(f"{self!r} is not compact: it has no finite volume")

    def random_tangent(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """A standard-normal tangent vector at each ``x`` (for tests and Hutchinson probes)."""
        u = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return self.proju(x, u)

    # ------------------------------------------------------------------ validation
    def check_point(self, x: torch.Tensor, explain: bool = False, atol: Optional[float] = None):
        """Check that ``x (..., coord_dim)`` holds finite points on the manifold.

        With ``explain=True`` returns ``(ok, reason)``; otherwise raises :class:`ValueError` with the
        reason (which factor, which rows, what is wrong) and returns ``None``.
        """
        ok, reason = self._check(x, atol)
        if explain:
            return ok, reason
        if not ok:
            raise ValueError(f"points are not on {self!r}: {reason}")
        return None

    def _check(self, x: torch.Tensor, atol: Optional[float]) -> Tuple[bool, str]:
        if not isinstance(x, torch.Tensor):
            return False, f"expected a torch.Tensor, got {type(x).__name__}"
        if x.dim() == 0 or x.shape[-1] != self.coord_dim:
            return False, (f"expected shape (..., {self.coord_dim}) for {self!r}, got {tuple(x.shape)}")
        if not x.is_floating_point():
            return False, f"expected a floating-point tensor, got dtype {x.dtype}"
        bad = ~torch.isfinite(x).all(-1)
        if bad.any():
            return False, f"non-finite values (NaN or inf) in {_rows_message(bad)}"
        return self._check_on_manifold(x, tol(x.dtype, "unit") if atol is None else atol)

    def _check_on_manifold(self, x: torch.Tensor, atol: float) -> Tuple[bool, str]:
        return True, ""

    # ------------------------------------------------------------------ what the factor contributes
    # Everything the rest of posegen needs to know about a kind of factor lives here, so that a new factor
    # is one class (plus its tests): the network's features and output head, the CNFM kernel family, the
    # chart the ODE solver integrates in, the symmetries of the stored representation, data checks, and
    # how samples are named and plotted. The defaults suit a factor embedded in its coordinates.

    #: CNFM kernel family: a key of :data:`posegen.paths.families.FAMILIES` ("gaussian", "von_mises", "vmf",
    #: "so3"), resolved by :func:`posegen.paths.kernel_family`; a factor defined outside posegen may hold a
    #: :class:`~posegen.paths.KernelFamily` instance instead (None: no kernel)
    kernel: Optional[str] = None
    #: what the factor's coordinates are, which code acts on (independent of the display name ``part_name``):
    #: ``"joints"`` (a robot's joints inside limits), ``"angle"`` (angles that may be a robot's joints),
    #: ``"position"`` (a point in R^3), ``"quaternion"`` (a unit quaternion, xyzw), ``"direction"`` (a unit
    #: vector), ``"coordinates"`` (anything else)
    role: str = "coordinates"
    #: default name of this factor's entry in a sampler's result (``"position"``, ``"joints"``, ...): display only
    part_name: str = "coords"
    #: how :func:`posegen.plots.plot_factors` draws it: ``"positions"``, ``"angles"``, ``"rotations"``,
    #: ``"sphere"`` or ``"box"``
    plot_kind: str = "positions"
    #: whether the factor stores a quaternion (its columns follow the caller's quaternion order)
    holds_quaternion: bool = False
    #: whether the data's coordinates are standardised (mean/std) before the network sees them
    standardize: bool = False
    #: whether the factor is a vector space (nonlinear interpolants such as the trigonometric one apply)
    vector_space: bool = False
    #: whether coordinates are angles known modulo 2 pi (tori): callers' values are wrapped on entry
    periodic: bool = False
    #: ``(coord_dim, 2)`` float64 ``[lower, upper]`` of each coordinate where the factor is a box
    #: (tori, intervals); None where it is not
    bounds: Optional[torch.Tensor] = None

    @property
    def feature_dim(self) -> int:
        """Width of :meth:`features`."""
        return self.coord_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the velocity network sees of a point: ``x (..., coord_dim) -> (..., feature_dim)``."""
        return x

    @property
    def head_dim(self) -> int:
        """Number of network outputs :meth:`head` turns into a tangent vector."""
        return self.coord_dim

    def head(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Tangent vector at ``x (..., coord_dim)`` from the network's raw outputs ``out (..., head_dim)``."""
        return self.proju(x, out)

    def kernel_coords(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(y, log|det dy/dx|)``: the coordinates the CNFM kernel is a standard kernel in, and the
        log-Jacobian of the change of variables, ``(...)`` (so that the kernel is a density in ``x``)."""
        return x, torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)

    def from_kernel_coords(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`kernel_coords` (first output)."""
        return y

    def to_chart(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates the ODE solver integrates in, ``(..., coord_dim)``. The identity, except for factors
        whose stored coordinates are not complete (an interval: its chart is R^d, so no step can leave it)."""
        return x

    def from_chart(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_chart`."""
        return y

    def chart_velocity(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """A tangent vector ``v`` at ``x`` in chart coordinates (the chart map's differential)."""
        return v

    @property
    def has_chart(self) -> bool:
        """Whether :meth:`to_chart` is anything but the identity."""
        return False

    def chart_manifold(self) -> "Manifold":
        """The manifold the chart coordinates live on (itself, for the identity chart)."""
        return self

    def canonical(self, x: torch.Tensor) -> torch.Tensor:
        """The representative to hand to users, where several coordinates name one point (SO3: ``w >= 0``)."""
        return x

    def augment(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Other coordinates of the same points, drawn at random (SO3: a random sign); ``x (B, coord_dim)``."""
        return x

    def data_check(self, x: torch.Tensor, *, unit: float, renormalize_tol: float = 0.05,
                   wrap: bool = False) -> "DataCheck":
        """Check data rows ``x (N, coord_dim)`` (finite already): rows to refuse and cells to fix.

        The default only refuses what :meth:`check_point` refuses.
        """
        ok, reason = self._check_on_manifold(x, unit)
        if ok:
            return DataCheck()
        return DataCheck(refuse=torch.ones(x.shape[0], dtype=torch.bool, device=x.device), reason=reason)

    @property
    def geometry(self) -> "Manifold":
        """The same points and metric without the model's options (``S2[fourier=6]`` -> ``S2``): what data
        and a model must agree on. Equality (``==``) compares the full spec, options included."""
        return self

    # ------------------------------------------------------------------ naming
    @property
    @abc.abstractmethod
    def spec(self) -> str:
        """The token :func:`posegen.manifolds.parse` reads back, e.g. ``"S2"``."""

    def coord_names(self, prefix: str = "") -> list:
        """One name per stored coordinate, for files and tables."""
        return [f"{prefix}{self._coord_stem}{i}" for i in range(self.coord_dim)]

    _coord_stem = "c"

    def __repr__(self) -> str:
        return self.spec

    def __eq__(self, other) -> bool:
        return isinstance(other, Manifold) and type(self) is type(other) and self.spec == other.spec

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec))


# ---------------------------------------------------------------------- numerics shared by the factors
def _safe_norm(u: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Euclidean norm over the last axis whose gradient is 0 (not NaN) at ``u = 0``."""
    return _safe_sqrt((u * u).sum(-1, keepdim=keepdim))


def _safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of a non-negative tensor whose gradient is 0 (not NaN) at 0."""
    zero = sq <= 0
    return torch.where(zero, torch.zeros_like(sq), torch.sqrt(torch.where(zero, torch.ones_like(sq), sq)))


def sinc(theta: torch.Tensor) -> torch.Tensor:
    """``sin(theta) / theta`` with a Taylor branch near 0 (finite values and gradients at 0)."""
    small = theta.abs() < tol(theta.dtype, "eps") ** 0.5 * 10
    safe = torch.where(small, torch.ones_like(theta), theta)
    t2 = theta * theta
    return torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(safe) / safe)


def log_sphere_volume(d: int) -> float:
    """log of the surface measure of the unit sphere S^d in R^(d+1): 2 pi^((d+1)/2) / Gamma((d+1)/2)."""
    return math.log(2.0) + 0.5 * (d + 1) * math.log(math.pi) - math.lgamma(0.5 * (d + 1))
