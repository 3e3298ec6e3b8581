"""Property tests for ``posegen.manifolds``, in the style of geoopt's.

One case generator per kind of factor (a point ``x``, a second point ``y``, tangent vectors ``u, v`` at
``x`` with ``u`` inside the injectivity radius, raw ambient values); a product concatenates its factors'
cases. Every generic property runs over ``MANIFOLDS x SEEDS x DTYPES``: float64 with tight tolerances,
float32 with looser ones that reflect its 6e-8 unit roundoff on quantities of size pi.

Singular places get their own tests (u = 0, y = x, antipodes, the angle wrap, SO3's q ~ -q), some driven
by hypothesis with a bounded, derandomised number of examples.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posegen.manifolds import SO3, Euclidean, Interval, Product, Sphere, Torus, parse, tol, wrap_angle

# the Panda's joint limits (rad): q4's range is all negative, q6's crosses pi
PANDA_LIMITS = [[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698],
                [-2.8973, 2.8973], [-0.0175, 3.7525], [-2.8973, 2.8973]]

MANIFOLDS = {
    "R3": Euclidean(3),
    "T1": Torus(1),
    "T3": Torus(3),
    "S2": Sphere(2),
    "S3": Sphere(3),
    "SO3": SO3(),
    "R3 x T7 x S3": parse("R3 x T7 x S3"),
    "R1 x S1": parse("R1 x S1"),
    "R3 x SO3": parse("R3 x SO3"),
    "R3 x T8 x S3^6": parse("R3 x T8 x S3^6"),
    "I1": Interval(-0.5, 2.0),
    "I2": Interval([-1.0, 0.1], [1.0, 0.3]),
    "R1 x I1": parse("R1 x I1", limits=[[-3.0718, -0.0698]]),
    "R3 x I7 x SO3": parse("R3 x I7 x SO3", limits=PANDA_LIMITS),
}
SEEDS = (0, 1, 2)
DTYPES = (torch.float64, torch.float32)
BATCH = (64,)

# Absolute tolerance for O(1) results (angles up to pi, unit vectors, tangent vectors of norm <= pi)
# after a handful of operations. The worst errors seen over these cases are ~1e-14 in float64 and
# ~3e-6 in float32 (unit roundoff 6e-8, times pi, times the theta / sin(theta) <= 9 of logmap at 0.9 pi).
ATOL = {torch.float64: 1e-13, torch.float32: 1e-5}

HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def _id(name: str) -> str:
    return name.replace(" ", "")


def _dtype_id(dtype: torch.dtype) -> str:
    return {torch.float64: "f64", torch.float32: "f32"}[dtype]


# ---------------------------------------------------------------------- case generators
class Case(NamedTuple):
    M: object
    x: torch.Tensor    # points
    y: torch.Tensor    # independent points
    u: torch.Tensor    # tangent at x, inside the injectivity radius (per factor)
    v: torch.Tensor    # tangent at x, any size
    raw: torch.Tensor  # ambient values, not on the manifold
    dtype: torch.dtype
    seed: int


def factors_of(M):
    """``[(factor, slice)]`` of a product, or ``[(M, all columns)]`` for a single factor."""
    if isinstance(M, Product):
        return list(zip(M.factors, M.slices))
    return [(M, slice(0, M.coord_dim))]


def _uniform(shape, g, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)


def _randn(shape, g):
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _euclidean_case(f, shape, g):
    s = shape + (f.coord_dim,)
    return dict(x=2 * _randn(s, g), y=2 * _randn(s, g), u=_randn(s, g), v=_randn(s, g), raw=3 * _randn(s, g))


def _torus_case(f, shape, g):
    s = shape + (f.coord_dim,)
    # the torus is flat: exp/log are inverse while every angle increment is in (-pi, pi)
    return dict(x=_uniform(s, g, -math.pi, math.pi), y=_uniform(s, g, -math.pi, math.pi),
                u=_uniform(s, g, -0.9 * math.pi, 0.9 * math.pi), v=_randn(s, g),
                raw=_uniform(s, g, -20.0, 20.0))


def _sphere_case(f, shape, g):
    s = shape + (f.coord_dim,)
    radius = math.pi / 2 if isinstance(f, SO3) else math.pi  # injectivity radius
    x = f.projx(_randn(s, g))
    u = _unit_tangent(f, x, g) * _uniform(shape + (1,), g, 0.0, 0.9 * radius)
    return dict(x=x, y=f.projx(_randn(s, g)), u=u, v=f.proju(x, _randn(s, g)), raw=3 * _randn(s, g))


def _interval_case(f, shape, g):
    s = shape + (f.coord_dim,)
    lo, hi = f.lo, f.hi
    # points with |z| <= 2 (2.3 % of the box at each end is left to the boundary tests below); tangent
    # vectors are velocities g'(z) w with |w| <= 1 in z, so that expmap moves |z| by at most one
    x = f.from_chart(_uniform(s, g, -1.5, 1.5))
    y = f.from_chart(_uniform(s, g, -2.0, 2.0))
    dg = f.logmap(x, f.from_chart(f.to_chart(x) + 1.0))  # g'(z) per coordinate (z moved by exactly 1)
    return dict(x=x, y=y, u=dg * _uniform(s, g, -1.0, 1.0), v=dg * _randn(s, g),
                raw=_uniform(s, g, 0.0, 1.0) * 3 * (hi - lo) + lo - (hi - lo))


def _unit_tangent(S, x, g):
    """Random unit tangent vectors of the sphere ``S`` at ``x``."""
    w = S.proju(x, torch.randn(x.shape, generator=g, dtype=x.dtype))
    return w / w.norm(dim=-1, keepdim=True)


def _factor_case(f, shape, g):
    if isinstance(f, Euclidean):
        return _euclidean_case(f, shape, g)
    if isinstance(f, Torus):
        return _torus_case(f, shape, g)
    if isinstance(f, Sphere):  # SO3 included
        return _sphere_case(f, shape, g)
    if isinstance(f, Interval):
        return _interval_case(f, shape, g)
    raise TypeError(f"no case generator for {f!r}")


def make_case(M, seed: int, dtype: torch.dtype, shape=BATCH) -> Case:
    """Draw a case in float64, cast it, and re-project in ``dtype`` so that it is exact in that dtype."""
    g = torch.Generator().manual_seed(1000 + seed)
    parts = [_factor_case(f, tuple(shape), g) for f, _ in factors_of(M)]
    cat = {k: torch.cat([p[k] for p in parts], -1).to(dtype) for k in parts[0]}
    x = M.projx(cat["x"])
    return Case(M, x, M.projx(cat["y"]), M.proju(x, cat["u"]), M.proju(x, cat["v"]), cat["raw"], dtype, seed)


def _params(names, dtypes=DTYPES, seeds=SEEDS):
    return [pytest.param(n, s, d, id=f"{_id(n)}-{_dtype_id(d)}-s{s}") for n in names for d in dtypes for s in seeds]


@pytest.fixture(params=[pytest.param(p.values, id=p.id) for p in _params(MANIFOLDS)])
def case(request) -> Case:
    name, seed, dtype = request.param
    return make_case(MANIFOLDS[name], seed, dtype)


# ---------------------------------------------------------------------- comparisons
def assert_close(actual, expected, atol, rtol=0.0, msg=""):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{msg}\n{m}")


def point_error(M, a, b):
    """Max per-coordinate difference of two points, independent of ``dist``: angles compared modulo
    2 pi, quaternions up to sign."""
    errs = []
    for f, s in factors_of(M):
        d = a[..., s] - b[..., s]
        if isinstance(f, Torus):
            d = wrap_angle(d)
        err = d.abs().amax(-1)
        if isinstance(f, SO3):
            err = torch.minimum(err, (a[..., s] + b[..., s]).abs().amax(-1))
        errs.append(err)
    return torch.stack(errs, -1).amax(-1)


def assert_points_close(M, a, b, atol, msg=""):
    err = point_error(M, a, b)
    assert err.max().item() <= atol, f"{msg}: points differ by up to {err.max().item():.3g} > {atol:.1g}"


def sphere_columns(M):
    """Slices of the (embedded) sphere factors, SO3 included."""
    return [s for f, s in factors_of(M) if isinstance(f, Sphere)]


def assert_tangent(M, x, w, atol, msg=""):
    for s in sphere_columns(M):
        assert_close((x[..., s] * w[..., s]).sum(-1), torch.zeros(x.shape[:-1], dtype=x.dtype), atol=atol,
                     msg=f"{msg}: not tangent on the sphere factor at columns {s.start}:{s.stop}")


def flip_so3(M, q):
    """``q`` with every SO3 factor's quaternion negated (the same rotations)."""
    out = q.clone()
    for f, s in factors_of(M):
        if isinstance(f, SO3):
            out[..., s] = -out[..., s]
    return out


# ---------------------------------------------------------------------- interior
def test_interior_moves_only_points_on_a_limit_and_exactly_to_the_margin(case):
    from posegen.manifolds.interval import LIMIT_MARGIN

    M, x = case.M, case.x
    # these seeded base draws all lie outside the margin (a uniform draw falls inside it with probability 2e-4 per
    # coordinate), so nothing moves
    assert torch.equal(M.interior(x), x)
    on = x.clone()
    for f, s in factors_of(M):
        if isinstance(f, Interval):  # first half of the rows on the lower limits, second half on the upper
            lo, hi = f._lims(x)
            half = x.shape[0] // 2
            on[:half, s], on[half:, s] = lo, hi
    moved = M.interior(on)
    assert_points_close(M, M.projx(moved), moved, ATOL[case.dtype], "interior left the manifold")
    for f, s in factors_of(M):
        if isinstance(f, Interval):
            lo, hi = f._lims(x)
            m = LIMIT_MARGIN * (hi - lo)
            assert torch.equal(moved[:half, s], (lo + m).expand(half, -1))
            assert torch.equal(moved[half:, s], (hi - m).expand(x.shape[0] - half, -1))
        else:
            assert torch.equal(moved[:, s], on[:, s])


# ---------------------------------------------------------------------- projections
def test_projx_lands_on_manifold_and_is_idempotent(case):
    M, atol = case.M, ATOL[case.dtype]
    p = M.projx(case.raw)
    M.check_point(p)
    assert_close(M.projx(p), p, atol=atol, msg="projx(projx(z)) != projx(z)")
    assert_close(M.projx(case.x), case.x, atol=atol, msg="projx moves points already on the manifold")


def test_proju_gives_tangent_vectors_and_is_idempotent(case):
    M, atol = case.M, ATOL[case.dtype]
    w = M.proju(case.x, case.raw)
    assert_tangent(M, case.x, w, atol, "proju")
    assert_close(M.proju(case.x, w), w, atol=atol, msg="proju not idempotent")
    assert_close(M.proju(case.x, case.v), case.v, atol=atol, msg="proju moves tangent vectors")
    g = torch.Generator().manual_seed(case.seed)
    assert_tangent(M, case.x, M.random_tangent(case.x, generator=g), atol, "random_tangent")


# ---------------------------------------------------------------------- exp / log
def test_logmap_inverts_expmap_inside_injectivity_radius(case):
    M, atol = case.M, ATOL[case.dtype]
    y = M.expmap(case.x, case.u)
    M.check_point(y)
    # |d log / dy| grows like theta / sin(theta) <= 9 at 0.9 pi
    assert_close(M.logmap(case.x, y), case.u, atol=10 * atol, msg="logmap(x, expmap(x, u)) != u")


def test_expmap_inverts_logmap(case):
    M, atol = case.M, ATOL[case.dtype]
    u = M.logmap(case.x, case.y)
    assert_tangent(M, case.x, u, atol, "logmap")
    assert_points_close(M, M.expmap(case.x, u), case.y, 10 * atol, "expmap(x, logmap(x, y)) != y")


def test_dist_is_a_metric_and_equals_logmap_norm(case):
    M, x, y, atol = case.M, case.x, case.y, ATOL[case.dtype]
    d = M.dist(x, y)
    assert d.shape == x.shape[:-1] and (d >= 0).all()
    assert_close(M.dist(y, x), d, atol=atol, msg="dist not symmetric")
    assert_close(M.dist(x, x), torch.zeros_like(d), atol=atol, msg="dist(x, x) != 0")
    u = M.logmap(x, y)
    assert_close(M.norm(x, u), d, atol=atol, msg="dist != |logmap|")
    assert_close(M.inner(x, u), d * d, atol=10 * atol, msg="dist^2 != <logmap, logmap>")
    z = M.projx(case.raw)
    assert (M.dist(x, z) <= d + M.dist(y, z) + atol).all(), "triangle inequality fails"


def test_inner_and_norm(case):
    M, x, u, v, atol = case.M, case.x, case.u, case.v, ATOL[case.dtype]
    assert_close(M.inner(x, u, v), M.inner(x, v, u), atol=atol)
    assert_close(M.norm(x, u) ** 2, M.inner(x, u), atol=10 * atol)


# ---------------------------------------------------------------------- geodesics
FD_STEP = {torch.float64: 1e-5, torch.float32: 1e-2}
# central differences: truncation h^2 |x'''| / 6 <= h^2 pi^3 / 6 per coordinate, plus roundoff ~ ulp / h
FD_ATOL = {torch.float64: 1e-8, torch.float32: 2e-3}


def test_geodesic_endpoints_and_speed(case):
    M, x, y, atol = case.M, case.x, case.y, ATOL[case.dtype]
    batch = x.shape[:-1]
    x_0, _ = M.geodesic(x, y, torch.zeros(batch, dtype=x.dtype))
    x_1, _ = M.geodesic(x, y, torch.ones(batch, dtype=x.dtype))
    assert_points_close(M, x_0, x, atol, "geodesic at t=0")
    assert_points_close(M, x_1, y, 10 * atol, "geodesic at t=1")
    t = torch.rand(batch, generator=torch.Generator().manual_seed(case.seed), dtype=x.dtype)
    x_t, dx_t = M.geodesic(x, y, t)
    M.check_point(x_t)
    assert_tangent(M, x_t, dx_t, 10 * atol, "dx_t")
    assert_close(M.norm(x_t, dx_t), M.dist(x, y), atol=10 * atol, msg="|dx_t| != dist(x, y)")
    assert_points_close(M, x_t, M.expmap(x, t.unsqueeze(-1) * M.logmap(x, y)), 10 * atol,
                        "x_t != expmap(x, t logmap(x, y))")


def test_geodesic_velocity_is_the_time_derivative(case):
    M, x, y, dtype = case.M, case.x, case.y, case.dtype
    h = FD_STEP[dtype]
    t = h + (1 - 2 * h) * torch.rand(x.shape[:-1], generator=torch.Generator().manual_seed(case.seed),
                                     dtype=dtype)
    _, dx_t = M.geodesic(x, y, t)
    x_plus, _ = M.geodesic(x, y, t + h)
    x_minus, _ = M.geodesic(x, y, t - h)
    diff = x_plus - x_minus
    for f, s in factors_of(M):
        if isinstance(f, Torus):
            diff[..., s] = wrap_angle(diff[..., s])
    assert_close(diff / (2 * h), dx_t, atol=FD_ATOL[dtype], msg="dx_t != (x_(t+h) - x_(t-h)) / 2h")


# ---------------------------------------------------------------------- parallel transport
def test_transp_preserves_inner_products_and_tangency(case):
    M, x, y, u, v, atol = case.M, case.x, case.y, case.u, case.v, ATOL[case.dtype]
    tu, tv = M.transp(x, y, u), M.transp(x, y, v)
    assert torch.isfinite(tu).all()
    assert_tangent(M, y, tu, 10 * atol, "transp")
    assert_close(M.norm(y, tu), M.norm(x, u), atol=10 * atol, msg="transp changes norms")
    assert_close(M.inner(y, tu, tv), M.inner(x, u, v), atol=10 * atol, rtol=10 * atol,
                 msg="transp changes inner products")
    assert_close(M.transp(x, x, u), u, atol=atol, msg="transp(x, x, u) != u")


def test_transp_carries_the_initial_velocity_to_the_final_one(case):
    """Along the minimising geodesic from x to y, log_x(y) is carried to -log_y(x), the velocity at y."""
    M, x, y, atol = case.M, case.x, case.y, ATOL[case.dtype]
    u = M.logmap(x, y)
    assert_close(M.transp(x, y, u), -M.logmap(y, x), atol=10 * atol, msg="transp(x, y, log_x y) != -log_y x")
    # the geodesic ends at y or, on SO3, possibly at -y: compare at the point it returns
    x_1, dx_1 = M.geodesic(x, y, torch.ones(x.shape[:-1], dtype=x.dtype))
    assert_close(M.transp(x, x_1, u), dx_1, atol=10 * atol, msg="transp(x, x_1, log_x y) != dx_t at t=1")


# ---------------------------------------------------------------------- float32 against float64
@pytest.mark.parametrize("name, seed", [pytest.param(n, s, id=f"{_id(n)}-s{s}") for n in MANIFOLDS
                                        for s in SEEDS])
def test_float32_agrees_with_float64(name, seed):
    M = MANIFOLDS[name]
    c32 = make_case(M, seed, torch.float32)
    x, y, u = c32.x, c32.y, c32.u
    x64, y64, u64 = x.double(), y.double(), u.double()
    t = torch.rand(x.shape[:-1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    atol = ATOL[torch.float32]
    pairs = {
        "expmap": (M.expmap(x, u), M.expmap(x64, u64)),
        "logmap": (M.logmap(x, y), M.logmap(x64, y64)),
        "dist": (M.dist(x, y), M.dist(x64, y64)),
        "transp": (M.transp(x, y, u), M.transp(x64, y64, u64)),
        "geodesic x_t": (M.geodesic(x, y, t.float())[0], M.geodesic(x64, y64, t)[0]),
        "geodesic dx_t": (M.geodesic(x, y, t.float())[1], M.geodesic(x64, y64, t)[1]),
    }
    for what, (a, b) in pairs.items():
        assert a.dtype == torch.float32
        if what in ("expmap", "geodesic x_t"):
            assert_points_close(M, a.double(), b, atol, f"float32 {what}")
        else:
            assert_close(a.double(), b, atol=atol, msg=f"float32 {what} differs from float64")


# ---------------------------------------------------------------------- SO3: q and -q are one rotation
SO3_NAMES = [n for n, M in MANIFOLDS.items() if any(isinstance(f, SO3) for f, _ in factors_of(M))]


@pytest.mark.parametrize("name, seed, dtype", _params(SO3_NAMES))
def test_so3_quotient(name, seed, dtype):
    c = make_case(MANIFOLDS[name], seed, dtype)
    M, x, y, u, atol = c.M, c.x, c.y, c.u, ATOL[dtype]
    fx, fy = flip_so3(M, x), flip_so3(M, y)
    M.check_point(fx)
    assert_close(M.dist(x, fx), torch.zeros(x.shape[:-1], dtype=dtype), atol=atol, msg="dist(q, -q) != 0")
    assert_close(M.dist(x, fy), M.dist(x, y), atol=atol, msg="dist(q, -p) != dist(q, p)")
    assert_close(M.logmap(x, fy), M.logmap(x, y), atol=atol, msg="logmap(q, -p) != logmap(q, p)")
    assert_close(M.logmap(x, fx), torch.zeros_like(x), atol=atol, msg="logmap(q, -q) != 0")
    # a tangent vector w at p is the tangent vector -w at -p
    assert_close(M.transp(x, fy, u), flip_so3(M, M.transp(x, y, u)), atol=10 * atol,
                 msg="transp(q, -p, u) != -transp(q, p, u) on the SO3 columns")
    assert torch.isfinite(M.transp(x, fx, u)).all(), "transp(q, -q, u) not finite"
    for f, s in factors_of(M):
        if isinstance(f, SO3):
            assert (f.dist(x[..., s], y[..., s]) <= math.pi / 2 + atol).all(), "SO3 dist > pi/2"
            can = f.canonical(x[..., s])
            assert (can[..., 3] >= 0).all()
            assert_close(f.dist(can, x[..., s]), torch.zeros(x.shape[:-1], dtype=dtype), atol=atol)


# ---------------------------------------------------------------------- singular points
def _ulp_close(a, b, ulps=4):
    return ((a - b).abs() <= ulps * torch.finfo(a.dtype).eps).all()


def test_expmap_at_zero_is_x_with_finite_gradients(case):
    M, dtype = case.M, case.dtype
    x = case.x.clone().requires_grad_(True)
    zero = torch.zeros_like(case.u, requires_grad=True)
    out = M.expmap(x, zero)
    for f, s in factors_of(M):
        if isinstance(f, Sphere):
            # the result is renormalised: x / |x| can move a unit x by an ulp
            assert _ulp_close(out[..., s], case.x[..., s]), f"expmap(x, 0) != x on {f!r}"
        else:
            assert torch.equal(out[..., s], case.x[..., s]), f"expmap(x, 0) is not exactly x on {f!r}"
    w = case.raw
    (out * w).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(zero.grad).all()
    # d exp_x(u) / du at u = 0 is the projection onto the tangent space
    assert_close(zero.grad, M.proju(case.x, w), atol=ATOL[dtype] * 10, msg="d expmap / du at 0")


def test_logmap_and_dist_at_y_equal_x_are_zero_with_finite_gradients(case):
    M, atol = case.M, ATOL[case.dtype]
    x = case.x.clone().requires_grad_(True)
    y = case.x.clone().requires_grad_(True)
    out = M.logmap(x, y)
    assert_close(out, torch.zeros_like(out), atol=atol, msg="logmap(x, x) != 0")
    w = case.raw
    (out * w).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    # d log_x(y) / dy at y = x is the projection onto the tangent space
    assert_close(y.grad, M.proju(case.x, w), atol=10 * atol, msg="d logmap / dy at y = x")
    x.grad = y.grad = None
    d = M.dist(x, y)
    assert_close(d, torch.zeros_like(d), atol=atol)
    d.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all(), "dist gradient at x = y not finite"


def antipode(M, x):
    """A farthest point per factor and the expected distance: -x on spheres, an orthogonal quaternion on
    SO3 (half-turn), x + pi on tori; Euclidean factors are shifted by a unit vector."""
    out, sq = x.clone(), torch.zeros(x.shape[:-1], dtype=x.dtype)
    for f, s in factors_of(M):
        a = x[..., s]
        if isinstance(f, SO3):
            # (-a1, a0, -a3, a2) is orthogonal to a: the rotation a half-turn away
            out[..., s] = a[..., [1, 0, 3, 2]] * torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=x.dtype)
            sq = sq + (math.pi / 2) ** 2
        elif isinstance(f, Sphere):
            out[..., s] = -a
            sq = sq + math.pi ** 2
        elif isinstance(f, Torus):
            out[..., s] = wrap_angle(a + math.pi)
            sq = sq + f.dim * math.pi ** 2
        elif isinstance(f, Interval):  # complete, no antipode: one unit along the first chart coordinate
            z = f.to_chart(a)
            out[..., s] = f.from_chart(z + torch.nn.functional.one_hot(torch.tensor(0), f.dim).to(x.dtype))
            sq = sq + 1.0
        else:
            out[..., s] = a + torch.nn.functional.one_hot(torch.tensor(0), f.dim).to(x.dtype)
            sq = sq + 1.0
    return out, sq.sqrt()


def test_logmap_at_antipodes_is_finite_with_norm_pi(case):
    M, atol = case.M, ATOL[case.dtype]
    a, expected = antipode(M, case.x)
    M.check_point(a)
    x = case.x.clone().requires_grad_(True)
    y = a.clone().requires_grad_(True)
    u = M.logmap(x, y)
    assert torch.isfinite(u).all(), "logmap at the antipode not finite"
    assert_tangent(M, case.x, u, atol, "logmap at the antipode")
    assert_close(M.norm(case.x, u), expected, atol=10 * atol, msg="|logmap| at the antipode")
    assert_close(M.dist(case.x, a), expected, atol=10 * atol, msg="dist to the antipode")
    assert_points_close(M, M.expmap(case.x, u.detach()), a, 10 * atol, "expmap(x, logmap(x, -x))")
    (u * case.raw).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all(), "logmap gradient at antipode"
    x.grad = y.grad = None
    M.dist(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all(), "dist gradient at antipode"
    w = M.transp(case.x, a, case.v)
    assert torch.isfinite(w).all(), "transp to the antipode not finite"
    assert_close(M.norm(a, w), M.norm(case.x, case.v), atol=10 * atol, msg="transp to the antipode")
    assert_tangent(M, a, w, 10 * atol, "transp to the antipode")


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
def test_angles_at_the_wrap_are_close(dtype):
    T = Torus(1)
    a = torch.tensor([-math.pi], dtype=dtype)
    b = torch.tensor([math.pi - 1e-7], dtype=dtype)
    bound = 1e-7 + 4 * torch.finfo(dtype).eps * math.pi  # true gap plus the rounding of +-pi
    assert T.dist(a, b).item() <= bound and T.dist(b, a).item() <= bound
    assert T.logmap(a, b).abs().item() <= bound
    x_t, dx_t = T.geodesic(a, b, torch.tensor(0.5, dtype=dtype))
    assert dx_t.abs().item() <= bound and T.dist(x_t, a).item() <= bound
    T.check_point(x_t)


@HYPOTHESIS
@given(a=st.floats(0, 1e-2), b=st.floats(0, 1e-2), dtype=st.sampled_from(DTYPES))
def test_hypothesis_angles_across_the_wrap(a, b, dtype):
    T = Torus(1)
    x = torch.tensor([-math.pi + a], dtype=dtype)
    y = torch.tensor([math.pi - b], dtype=dtype)
    slack = 8 * torch.finfo(dtype).eps * math.pi  # storing +-pi +- a rounds to the grid near pi
    assert abs(T.dist(x, y).item() - (a + b)) <= slack
    assert abs(T.logmap(x, y).item() + (a + b)) <= slack  # the short way round is backwards
    T.check_point(T.expmap(x, torch.tensor([-(a + b)], dtype=dtype)))


@HYPOTHESIS
@given(theta=st.one_of(st.floats(-100, 100, width=32),
                       st.floats(-1e-5, 1e-5).map(lambda d: math.pi + d),
                       st.floats(-1e-5, 1e-5).map(lambda d: -math.pi + d),
                       st.sampled_from([math.pi, -math.pi, 3 * math.pi, -3 * math.pi, 2 * math.pi, -1e-30,
                                        math.pi - 1e-7, -math.pi + 1e-7, math.pi + 1e-7, -math.pi - 1e-7])),
       dtype=st.sampled_from(DTYPES))
def test_hypothesis_wrapped_angles_stay_in_range(theta, dtype):
    """wrap_angle lands in [-pi, pi) with pi as the dtype stores it (float32's pi is 9e-8 above pi)."""
    t = torch.tensor([theta], dtype=dtype)
    w = wrap_angle(t)
    pi = torch.tensor(math.pi, dtype=dtype)
    assert (-pi <= w).all() and (w < pi).all(), f"wrap_angle({theta!r}) = {w.item()!r} in {dtype}"
    Torus(1).check_point(w)
    Torus(1).check_point(Torus(1).expmap(w, t))
    # same angle modulo 2 pi, up to the rounding of |theta| + pi
    k = (t.double() - w.double()) / (2 * math.pi)
    assert abs(k.item() - round(k.item())) <= 4 * torch.finfo(dtype).eps * (abs(theta) + math.pi)
    if (-pi <= t).all() and (t < pi).all():
        assert torch.equal(w, t), "angles already in range must not move"


@HYPOTHESIS
@given(d=st.sampled_from([2, 3]), seed=st.integers(0, 2 ** 16),
       eps=st.one_of(st.just(0.0), st.floats(1e-300, 1e-2)), dtype=st.sampled_from(DTYPES))
def test_hypothesis_nearly_antipodal_points(d, seed, eps, dtype):
    S = Sphere(d)
    g = torch.Generator().manual_seed(seed)
    x = S.sample_base((4,), generator=g, dtype=dtype)
    y = S.projx(-x + eps * _unit_tangent(S, x, g))
    y_req = y.clone().requires_grad_(True)
    u = S.logmap(x, y_req)
    assert torch.isfinite(u).all()
    mach = torch.finfo(dtype).eps
    dist = S.dist(x, y)
    assert_close(S.norm(x, u.detach()), dist, atol=10 * mach)
    # log is ill-conditioned at the antipode: |d log / dy| ~ pi / sin(theta) ~ pi / gap amplifies the
    # roundoff of y, until the antipodal switch (gap < eps), where logmap keeps |u| = theta but picks a
    # fixed direction: exp then lands gap away from -x, within 2 gap of y.
    gap = math.pi - dist
    switch = tol(dtype, "eps")
    amplification = math.pi / gap.clamp_min(switch)
    assert ((u.detach() * x).sum(-1).abs() <= 10 * mach * amplification).all(), "logmap not tangent"
    bound = torch.where(gap < switch, 2 * gap, 20 * mach * amplification) + 10 * mach
    assert (S.dist(S.expmap(x, u.detach()), y) <= bound).all()
    (u * x).sum().backward()
    assert torch.isfinite(y_req.grad).all()
    v = S.random_tangent(x, generator=g)
    w = S.transp(x, y, v)
    assert torch.isfinite(w).all()
    assert_close(w.norm(dim=-1), v.norm(dim=-1), atol=10 * mach, rtol=10 * mach)
    assert (((w * y).sum(-1)).abs() <= 10 * mach * amplification * v.norm(dim=-1)).all()


@HYPOTHESIS
@given(seed=st.integers(0, 2 ** 16), c=st.floats(-1e-3, 1e-3), dtype=st.sampled_from(DTYPES))
def test_hypothesis_so3_near_half_turn(seed, c, dtype):
    """<q, p> near 0 is SO3's cut locus (a half-turn apart): both representatives are at pi / 2."""
    R = SO3()
    g = torch.Generator().manual_seed(seed)
    q = R.sample_base((4,), generator=g, dtype=dtype)
    w = _unit_tangent(R, q, g)
    p = R.projx(c * q + math.sqrt(1 - c * c) * w)
    u = R.logmap(q, p)
    assert torch.isfinite(u).all()
    mach = torch.finfo(dtype).eps
    d = R.dist(q, p)
    assert (d <= math.pi / 2 + 10 * mach).all()
    assert_close(d, torch.full_like(d, math.acos(abs(c))), atol=100 * mach)
    assert_close(R.norm(q, u), d, atol=10 * mach)
    assert_points_close(R, R.expmap(q, u), p, 100 * mach)


# ---------------------------------------------------------------------- gradients (float64)
@pytest.mark.parametrize("name", [pytest.param(n, id=_id(n)) for n in MANIFOLDS])
def test_gradcheck(name):
    M = MANIFOLDS[name]
    c = make_case(M, 0, torch.float64, shape=(3,))
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    inputs = {
        "expmap": (M.expmap, (c.x, c.u)),
        "logmap": (M.logmap, (c.x, c.y)),
        "dist": (M.dist, (c.x, c.y)),
        "transp": (M.transp, (c.x, c.y, c.u)),
        "geodesic": (lambda a, b, s: torch.cat(M.geodesic(a, b, s), -1), (c.x, c.y, t)),
    }
    for what, (fn, args) in inputs.items():
        args = tuple(a.clone().requires_grad_(True) for a in args)
        # products only slice and concatenate: the cheaper randomised check suffices for them
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5, fast_mode=isinstance(M, Product)), what


# ---------------------------------------------------------------------- base distribution
@pytest.mark.parametrize("name, dtype", [pytest.param(n, d, id=f"{_id(n)}-{_dtype_id(d)}")
                                         for n in MANIFOLDS for d in DTYPES])
def test_sample_base_is_on_manifold_and_matches_base_log_prob(name, dtype):
    M = MANIFOLDS[name]
    g = torch.Generator().manual_seed(7)
    x = M.sample_base((200,), generator=g, dtype=dtype)
    assert x.shape == (200, M.coord_dim) and x.dtype == dtype
    M.check_point(x)
    lp = M.base_log_prob(x)
    assert lp.shape == (200,) and lp.dtype == dtype and torch.isfinite(lp).all()
    expected = torch.zeros(200, dtype=torch.float64)
    for f, s in factors_of(M):
        lp_f = f.base_log_prob(x[..., s]).double()
        if f.compact:
            # uniform: the density times the volume is one
            assert_close((lp_f + f.log_volume).exp(), torch.ones(200, dtype=torch.float64), atol=ATOL[dtype])
        else:
            ref = torch.distributions.Normal(0.0, 1.0).log_prob(x[..., s].double()).sum(-1)
            assert_close(lp_f, ref, atol=10 * ATOL[dtype], rtol=ATOL[dtype])
        expected = expected + lp_f
    assert_close(lp.double(), expected, atol=10 * ATOL[dtype], msg="product log-densities do not add")
    if M.compact:
        assert_close(lp.double(), torch.full_like(expected, -M.log_volume), atol=10 * ATOL[dtype])


def _within_sigmas(est, expected, sigma, k=5.0, what=""):
    err = (est - expected).abs().max().item()
    assert err <= k * sigma, f"{what}: off by {err:.3g}, more than {k} sigma ({k * sigma:.3g})"


@pytest.mark.parametrize("name", [pytest.param(n, id=_id(n)) for n in MANIFOLDS])
def test_sample_base_moments(name):
    """Monte Carlo checks of the base distribution (fixed seed, 5-sigma bounds): N(0, I) moments on R^d,
    a flat histogram of every torus angle, E[x] = 0 and E[x x^T] = I / (d + 1) on S^d (and SO3)."""
    M = MANIFOLDS[name]
    n = 20000
    x = M.sample_base(n, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    for f, s in factors_of(M):
        a = x[..., s]
        k = a.shape[-1]
        if isinstance(f, Euclidean):
            _within_sigmas(a.mean(0), torch.zeros(k, dtype=a.dtype), math.sqrt(1 / n), what=f"{f} mean")
            _within_sigmas(a.T @ a / n, torch.eye(k, dtype=a.dtype), math.sqrt(2 / n), what=f"{f} cov")
        elif f.bounds is not None:  # tori and intervals: uniform on their box
            bins = 16
            box = f.bounds
            counts = torch.stack([torch.histc(a[:, i], bins, box[i, 0].item(), box[i, 1].item()) for i in range(k)])
            p = 1 / bins
            _within_sigmas(counts / n, torch.full_like(counts, p), math.sqrt(p * (1 - p) / n),
                           what=f"{f} angle histogram")
        else:
            m2 = 1 / k  # E[x_i^2] on S^(k-1)
            _within_sigmas(a.mean(0), torch.zeros(k, dtype=a.dtype), math.sqrt(m2 / n), what=f"{f} mean")
            # Var(x_i^2) = E[x_i^4] - m2^2 = 3 / (k (k + 2)) - 1 / k^2 <= 2 / k^2 (off-diagonal smaller)
            _within_sigmas(a.T @ a / n, torch.eye(k, dtype=a.dtype) * m2, math.sqrt(2 / n) / k,
                           what=f"{f} second moment")


def test_sample_base_on_s2_has_uniform_height():
    """Archimedes: on the uniform S^2 each coordinate is uniform on [-1, 1]."""
    x = Sphere(2).sample_base(20000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    bins, n = 10, x.shape[0]
    p = 1 / bins
    counts = torch.stack([torch.histc(x[:, i], bins, -1, 1) for i in range(3)]) / n
    _within_sigmas(counts, torch.full_like(counts, p), math.sqrt(p * (1 - p) / n), what="S2 heights")


@pytest.mark.parametrize("name", [pytest.param(n, id=_id(n)) for n in MANIFOLDS])
def test_sample_base_is_reproducible_with_a_seeded_generator(name):
    M = MANIFOLDS[name]
    a = M.sample_base((3, 5), generator=torch.Generator().manual_seed(42))
    b = M.sample_base((3, 5), generator=torch.Generator().manual_seed(42))
    c = M.sample_base((3, 5), generator=torch.Generator().manual_seed(43))
    assert a.shape == (3, 5, M.coord_dim) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = torch.Generator().manual_seed(42)
    assert not torch.equal(M.sample_base(4, generator=g), M.sample_base(4, generator=g))
    assert M.sample_base(0).shape == (0, M.coord_dim)
    with pytest.raises(ValueError, match="non-negative|>= 0"):
        M.sample_base(-1)


# ---------------------------------------------------------------------- volumes
@pytest.mark.parametrize("spec, volume", [
    ("T1", 2 * math.pi), ("T3", (2 * math.pi) ** 3), ("S2", 4 * math.pi), ("S3", 2 * math.pi ** 2),
    ("SO3", math.pi ** 2), ("S1", 2 * math.pi),
    ("T7 x S3", (2 * math.pi) ** 7 * 2 * math.pi ** 2), ("S2 x SO3^2", 4 * math.pi * math.pi ** 4),
])
def test_log_volume(spec, volume):
    M = parse(spec)
    assert M.log_volume == pytest.approx(math.log(volume), rel=1e-12)
    assert M.log_volume == pytest.approx(sum(f.log_volume for f in M.factors), rel=1e-12)


def test_log_volume_is_refused_for_non_compact_manifolds():
    for M in (Euclidean(3), parse("R3 x T7 x S3")):
        assert not M.compact
        with pytest.raises(ValueError, match="not compact"):
            M.log_volume


# ---------------------------------------------------------------------- parse
CANONICAL = ["R3", "T1", "T7", "S2", "S3", "SO3", "R3 x T7 x S3", "R1 x T1", "R3 x SO3", "R3 x T8 x S3^6",
             "T3 x S2^2 x R2", "SO3^2", "R3 x T6"]


@pytest.mark.parametrize("spec", CANONICAL)
def test_parse_round_trip(spec):
    M = parse(spec)
    assert isinstance(M, Product)
    assert repr(M) == spec
    assert parse(repr(M)) == M and hash(parse(repr(M))) == hash(M)


def test_parse_structure():
    assert parse("S1") == parse("T1") and repr(parse("S1")) == "T1"
    assert parse("R1 x S1") == parse("R1 x T1")
    six = parse("S3^6")
    assert len(six.factors) == 6 and all(f == Sphere(3) for f in six.factors)
    M = parse("R3 x T7 x S3")
    assert (M.dim, M.coord_dim) == (13, 14)
    assert [type(f) for f in M.factors] == [Euclidean, Torus, Sphere]
    assert [(s.start, s.stop) for s in M.slices] == [(0, 3), (3, 10), (10, 14)]
    assert M.euclidean_mask.tolist() == [True] * 3 + [False] * 11
    R = parse("R3 x T8 x S3^6")
    assert (R.dim, R.coord_dim) == (3 + 8 + 18, 3 + 8 + 24)
    assert parse("R3 × T7 × S3") == M == parse("R3*T7*S3") == parse("  R3 x T7 x S3 ")
    assert parse("SO3").factors == (SO3(),) and SO3() != Sphere(3)
    assert parse(M) is M
    assert parse(Sphere(2)) == parse("S2")
    assert Product(parse("R3"), parse("T7 x S3")) == M  # products flatten
    assert len(set(M.coord_names())) == M.coord_dim
    with pytest.raises(TypeError):
        parse(3)


@pytest.mark.parametrize("bad", ["Q3", "R0", "T0", "S0", "", "   ", "R3 x", "x R3", "R3 x x T2", "SO4",
                                 "r3", "S3^0", "R3 x T7 x"])
def test_parse_rejects_unknown_tokens_and_lists_the_accepted_ones(bad):
    with pytest.raises(ValueError, match=r"accepted factors: R<d> .*T<n> .*S<d> .*SO3"):
        parse(bad)


# ---------------------------------------------------------------------- check_point
def _points(spec, shape=(6,), dtype=torch.float64):
    M = parse(spec)
    return M, M.sample_base(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)


def test_check_point_accepts_points_on_the_manifold():
    M, x = _points("R3 x T7 x S3")
    assert M.check_point(x) is None
    assert M.check_point(x, explain=True) == (True, "")


@pytest.mark.parametrize("spec, col, row, value, match", [
    ("R3 x T7 x S3", 11, 3, float("nan"), r"factor 2 \(S3, columns 10:14\): non-finite .*rows \[3\]"),
    ("R3 x T7 x S3", 1, 1, float("inf"), r"factor 0 \(R3, columns 0:3\): non-finite .*rows \[1\]"),
    ("R3 x T7 x S3", 4, 5, -float("inf"), r"factor 1 \(T7, columns 3:10\): non-finite .*rows \[5\]"),
    ("R3 x SO3", 6, 2, 0.3, r"factor 1 \(SO3, columns 3:7\): norm differs from 1 .*rows \[2\]"),
    ("R3 x T8 x S3^6", 30, 4, 2.0, r"factor 6 \(S3, columns 27:31\): norm differs from 1 .*rows \[4\]"),
    ("R3 x T7 x S3", 5, 0, 4.0, r"factor 1 \(T7, columns 3:10\): angles outside \[-pi, pi\) .*rows \[0\]"),
    ("R3 x T7 x S3", 3, 2, 90.0, r"factor 1 .*rows \[2\].*degrees"),
])
def test_check_point_names_the_factor_and_the_rows(spec, col, row, value, match):
    M, x = _points(spec)
    x[row, col] = value
    with pytest.raises(ValueError, match=match):
        M.check_point(x)
    ok, reason = M.check_point(x, explain=True)  # no exception with explain=True
    assert ok is False and re.search(match, reason)


def test_check_point_reports_several_rows_and_batched_indices():
    M, x = _points("R3 x T7 x S3")
    x[[0, 4], 5] = 7.0
    with pytest.raises(ValueError, match=r"rows \[0, 4\]"):
        M.check_point(x)
    M, x = _points("T3", shape=(2, 3))
    x[1, 2, 0] = -4.0
    with pytest.raises(ValueError, match=r"rows \[\(1, 2\)\]"):
        M.check_point(x)
    M, x = _points("S2", shape=(12,))
    x[:, 0] = float("nan")
    with pytest.raises(ValueError, match=r"rows \[0, 1, 2, 3, 4\] and 7 more"):
        M.check_point(x)


def test_check_point_on_single_factors_and_unbatched_points():
    for M, bad, match in [(Sphere(2), torch.tensor([0.0, 0.0, 2.0]), "points are not on S2: norm differs"),
                          (SO3(), torch.tensor([float("nan"), 0, 0, 1.0]), "points are not on SO3: non-finite"),
                          (Torus(1), torch.tensor([3.5]), "points are not on T1: angles outside"),
                          (parse("S2"), torch.tensor([0.0, 0.0, 2.0]), "points are not on S2: norm differs")]:
        with pytest.raises(ValueError, match=match):
            M.check_point(bad)
        assert M.check_point(bad, explain=True)[0] is False
        assert M.check_point(M.projx(torch.tensor([0.1] * M.coord_dim))) is None


def test_check_point_rejects_bad_shapes_and_types():
    M, x = _points("R3 x T7 x S3")
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 14\) .*R3 x T7 x S3.*got \(6, 13\)"):
        M.check_point(x[:, :13])
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 3\) .*got \(6, 4\)"):
        Sphere(2).check_point(torch.zeros(6, 4))
    with pytest.raises(ValueError, match=r"got \(\)"):
        Sphere(2).check_point(torch.tensor(1.0))
    with pytest.raises(ValueError, match="floating-point"):
        Euclidean(3).check_point(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="torch.Tensor"):
        Euclidean(3).check_point([[0.0, 0.0, 0.0]])
    assert M.check_point(x[:, :13], explain=True)[0] is False


def test_check_point_tolerance_follows_the_dtype():
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0 + 5e-5]])
    assert SO3().check_point(q.float(), explain=True)[0] is True
    assert SO3().check_point(q.double(), explain=True)[0] is False
    assert SO3().check_point(q.double(), atol=1e-3) is None
    assert Torus(1).check_point(torch.tensor([[math.pi]])) is None  # pi itself is tolerated


# ---------------------------------------------------------------------- batch shapes
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)], ids=["unbatched", "5", "2x3"])
@pytest.mark.parametrize("name", [pytest.param(n, id=_id(n)) for n in MANIFOLDS])
def test_any_leading_batch_shape(name, shape):
    M = MANIFOLDS[name]
    c = make_case(M, 0, torch.float64, shape=shape)
    D = M.coord_dim
    f = {k: getattr(c, k).reshape(-1, D) for k in ("x", "y", "u", "raw")}  # the same points, one batch axis
    t = torch.full(shape, 0.3, dtype=torch.float64)
    results = {
        "projx": (M.projx(c.raw), M.projx(f["raw"])),
        "proju": (M.proju(c.x, c.raw), M.proju(f["x"], f["raw"])),
        "expmap": (M.expmap(c.x, c.u), M.expmap(f["x"], f["u"])),
        "logmap": (M.logmap(c.x, c.y), M.logmap(f["x"], f["y"])),
        "transp": (M.transp(c.x, c.y, c.u), M.transp(f["x"], f["y"], f["u"])),
        "x_t": (M.geodesic(c.x, c.y, t)[0], M.geodesic(f["x"], f["y"], t.reshape(-1))[0]),
        "dx_t": (M.geodesic(c.x, c.y, t)[1], M.geodesic(f["x"], f["y"], t.reshape(-1))[1]),
        "dist": (M.dist(c.x, c.y), M.dist(f["x"], f["y"])),
        "inner": (M.inner(c.x, c.u), M.inner(f["x"], f["u"])),
        "norm": (M.norm(c.x, c.u), M.norm(f["x"], f["u"])),
        "base_log_prob": (M.base_log_prob(c.x), M.base_log_prob(f["x"])),
    }
    for what, (batched, flat_result) in results.items():
        expected_shape = shape + (D,) if flat_result.dim() == 2 else shape
        assert batched.shape == expected_shape, f"{what}: shape {tuple(batched.shape)} != {expected_shape}"
        assert_close(batched.reshape(flat_result.shape), flat_result, atol=1e-14, msg=what)
    M.check_point(c.x)
    assert M.sample_base(shape).shape == shape + (D,)
    # a single time for the whole batch broadcasts too
    x_t, dx_t = M.geodesic(c.x, c.y, torch.tensor(0.3, dtype=torch.float64))
    assert x_t.shape == dx_t.shape == shape + (D,)


# ---------------------------------------------------------------------- products act factor by factor
@pytest.mark.parametrize("name", [pytest.param(n, id=_id(n)) for n in MANIFOLDS if " x " in n])
def test_product_acts_factor_by_factor(name):
    M = MANIFOLDS[name]
    c = make_case(M, 1, torch.float64)
    t = torch.full(c.x.shape[:-1], 0.4, dtype=torch.float64)
    for f, s in factors_of(M):
        x, y, u = c.x[..., s], c.y[..., s], c.u[..., s]
        assert torch.equal(M.expmap(c.x, c.u)[..., s], f.expmap(x, u))
        assert torch.equal(M.logmap(c.x, c.y)[..., s], f.logmap(x, y))
        assert torch.equal(M.transp(c.x, c.y, c.u)[..., s], f.transp(x, y, u))
        assert torch.equal(M.geodesic(c.x, c.y, t)[1][..., s], f.geodesic(x, y, t)[1])
    sq = sum(f.dist(c.x[..., s], c.y[..., s]) ** 2 for f, s in factors_of(M))
    assert_close(M.dist(c.x, c.y), sq.sqrt(), atol=1e-14, msg="squared distances add")


# ---------------------------------------------------------------------- small tangent vectors
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("name", ["S2", "S3", "SO3"])
def test_small_tangent_vectors_keep_full_precision(name, dtype):
    """|u| log-uniform in [1e-9, 0.3] crosses the Taylor switches of expmap (sinc) and logmap
    (theta / sin theta): both stay within a few ulp of the closed forms on either side."""
    S = MANIFOLDS[name]
    g = torch.Generator().manual_seed(5)
    x = S.sample_base(2000, generator=g, dtype=torch.float64)
    w = _unit_tangent(S, x, g)
    scale = 10 ** (-9 + 8.5 * torch.rand(2000, 1, generator=g, dtype=torch.float64))
    x = x.to(dtype)
    u = S.proju(x, (w * scale).to(dtype))
    n = u.double().norm(dim=-1, keepdim=True)
    reference = torch.cos(n) * x.double() + torch.sin(n) / n * u.double()  # accurate for |u| >= 1e-9
    mach = torch.finfo(dtype).eps
    y = S.expmap(x, u)
    assert (y.double() - reference).abs().max().item() <= 4 * mach, "expmap off near u = 0"
    assert (S.logmap(x, y) - u).abs().max().item() <= 4 * mach, "logmap(x, expmap(x, u)) off near u = 0"


# ---------------------------------------------------------------------- Fourier features of a sphere factor
def test_sphere_fourier_features_shape_values_and_name():
    plain, four = Sphere(2), Sphere(2, fourier=3)
    x = plain.sample_base(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert plain.feature_dim == 3 and torch.equal(plain.features(x), x)  # the default is unchanged
    f = four.features(x)
    assert four.feature_dim == 3 * 7 == f.shape[-1]
    assert torch.equal(f[..., :3], x)
    k = torch.arange(3, dtype=torch.float64)
    a = (x.unsqueeze(-1) * math.pi * 2.0 ** k).flatten(-2)
    assert torch.allclose(f[..., 3:12], torch.sin(a)) and torch.allclose(f[..., 12:], torch.cos(a))
    assert four.spec == "S2[fourier=3]" and four != plain and Sphere(2, fourier=3) == four
    assert SO3().feature_dim == 10  # SO3 keeps its own features
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="fourier"):
            Sphere(2, fourier=bad)


def test_flow_with_fourier_features_has_exact_divergence_and_a_normalised_density():
    """The network sees the features through projx, so the divergence through them is exact (against
    autograd's Jacobian trace) and the density still integrates to 1 on S2."""
    from posegen import PoseFlow

    torch.manual_seed(0)
    flow = PoseFlow(Product(Sphere(2, fourier=4)), hidden=32, depth=2).double()
    for p in flow.net.out.parameters():
        torch.nn.init.normal_(p, std=0.3)
    M = flow.manifold
    x = M.sample_base(16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.full((16,), 0.3, dtype=torch.float64)
    v, div = flow.net.forward_and_div(t, x)
    jac = torch.func.vmap(torch.func.jacrev(lambda y, s: flow.net(s, y)))(x, t)
    assert torch.allclose(div, jac.diagonal(dim1=-2, dim2=-1).sum(-1), atol=1e-10)
    # integral of exp(log_prob) over S2 by Monte Carlo with the uniform proposal
    z = M.sample_base(4000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = (flow.log_prob(z, method="rk4", steps=16) + M.log_volume).exp()
    assert abs(float(w.mean()) - 1) < 4 * float(w.std()) / 4000 ** 0.5 + 0.02
