"""Tests for ``posegen.solvers.divergence``: exact and Hutchinson divergence on product manifolds.

The reference divergence is computed independently of the torch.func code under test: the ambient Jacobian
``J`` of the field at one point from ``torch.autograd.functional.jacobian``, then per factor the plain trace
of its block (R^d, tori: flat coordinates) or ``tr(P J P)`` with ``P = I - x x^T`` (spheres and SO3), summed
over the factors. ``tr(P J P)`` is the Riemannian divergence of a tangent field for any smooth extension
off the sphere, so the comparison does not rely on the "field constant along rays" argument of the module.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from posegen.manifolds import Sphere, parse
from posegen.models import VelocityMLP
from posegen.solvers import divergence
from posegen.solvers.divergence import METHODS

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
DTYPES = (torch.float64, torch.float32)
# Traces of 3x3 .. 35x35 Jacobians of O(1) entries, forward mode vs reverse mode.
ATOL = {torch.float64: 1e-10, torch.float32: 2e-4}
SPECS = ("S2", "S3", "SO3", "T2", "R3", "R2 x S2 x T1", "R3 x SO3", "R3 x T7 x S3")


def _dtype_id(dtype):
    return {torch.float64: "f64", torch.float32: "f32"}[dtype]


def _net(spec, dtype=torch.float64, device="cpu", seed=0, std=1.0, cond_dim=0, conditioning="concat"):
    """A small VelocityMLP whose zero-initialised output layer is replaced by a random one (non-trivial field)."""
    torch.manual_seed(seed)
    M = parse(spec)
    net = VelocityMLP(M, hidden=24, depth=2, cond_dim=cond_dim, conditioning=conditioning)
    nn.init.normal_(net.out.weight, std=std)
    nn.init.normal_(net.out.bias, std=std)
    if net.film is not None:
        nn.init.normal_(net.film.weight, std=0.3)
    return net.to(device=device, dtype=dtype)


def _points(M, n, dtype=torch.float64, device="cpu", seed=1):
    g = torch.Generator().manual_seed(seed)
    return M.sample_base(n, generator=g, dtype=dtype).to(device)


def reference_divergence(fn, M, x, *args):
    """Riemannian divergence of ``fn`` at each row of ``x (B, D)``, one ambient Jacobian per point."""
    out = []
    for i in range(x.shape[0]):
        a_i = [a[i] for a in args]
        J = torch.autograd.functional.jacobian(lambda y: fn(y, *a_i), x[i], create_graph=True)
        d = x.new_zeros(())
        for f, s in zip(M.factors, M.slices):
            Jf = J[s, s]
            if isinstance(f, Sphere):  # SO3 is a Sphere: same embedded metric
                xf = x[i, s]
                P = torch.eye(f.coord_dim, dtype=x.dtype, device=x.device) - torch.outer(xf, xf)
                Jf = P @ Jf @ P
            d = d + torch.diagonal(Jf).sum()
        out.append(d)
    return torch.stack(out)


# ---------------------------------------------------------------------- exact = Riemannian divergence
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("spec", SPECS)
def test_exact_matches_riemannian_divergence(spec, dtype, device):
    net = _net(spec, dtype, device)
    M = net.manifold
    x = _points(M, 6, dtype, device)
    t = torch.linspace(0.1, 0.9, 6, dtype=dtype, device=device)
    v, div = divergence(lambda y, s: net(s, y), x, t)
    assert v.shape == x.shape and div.shape == (6,)
    torch.testing.assert_close(v, net(t, x), atol=ATOL[dtype], rtol=0)
    ref = reference_divergence(lambda y, s: net(s, y), M, x, t)
    assert ref.abs().max() > 0.1, "the test field should have a non-trivial divergence"
    torch.testing.assert_close(div, ref.detach(), atol=ATOL[dtype] * 10, rtol=ATOL[dtype])


@pytest.mark.parametrize("conditioning", ["concat", "film"])
def test_exact_with_condition_matches_reference(conditioning):
    net = _net("R2 x S2", cond_dim=3, conditioning=conditioning)
    M = net.manifold
    x = _points(M, 5)
    t = torch.full((5,), 0.4, dtype=torch.float64)
    c = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    v, div = divergence(lambda y, s, ci: net(s, y, ci), x, t, c)
    ref = reference_divergence(lambda y, s, ci: net(s, y, ci), M, x, t, c)
    torch.testing.assert_close(div, ref.detach(), atol=1e-10, rtol=1e-10)
    # The condition matters (otherwise the per-row condition would be untested).
    _, div0 = divergence(lambda y, s, ci: net(s, y, ci), x, t, torch.zeros_like(c))
    assert (div - div0).abs().max() > 1e-3


@pytest.mark.parametrize("d", [2, 3])
def test_gradient_field_on_sphere_closed_form(d):
    """``v = proju(x, a)`` (the gradient of ``<a, x>``) on S^d has divergence ``-d <a, x>``."""
    S = Sphere(d)
    M = parse(f"S{d}")
    a = torch.linspace(-1.0, 2.0, d + 1, dtype=torch.float64)
    x = _points(M, 10)
    _, div = divergence(lambda y: S.proju(S.projx(y), a), x)
    torch.testing.assert_close(div, -d * (x @ a), atol=1e-12, rtol=0)


# ---------------------------------------------------------------------- divergence-free fields
def test_rotation_on_s2_is_divergence_free():
    w = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    x = _points(parse("S2"), 50)
    v, div = divergence(lambda y: torch.linalg.cross(w, Sphere(2).projx(y)), x)
    assert v.abs().max() > 0.1
    torch.testing.assert_close(div, torch.zeros_like(div), atol=1e-12, rtol=0)


def test_killing_field_on_s3_is_divergence_free():
    """``v = A q`` with ``A`` antisymmetric (a one-parameter group of rotations of R^4) preserves volume."""
    B = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    A = B - B.T
    x = _points(parse("S3"), 50)
    _, div = divergence(lambda q: A @ Sphere(3).projx(q), x)
    torch.testing.assert_close(div, torch.zeros_like(div), atol=1e-12, rtol=0)


def test_hutchinson_on_rotation_field_averages_to_zero():
    """Through ``projx`` the ambient Jacobian of a rotation field is not antisymmetric, so single probes
    are not 0; their mean is (within 4 standard errors), as it must be for an unbiased estimator."""
    w = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    K = 4000
    x = _points(parse("S2"), 2).repeat(K, 1)
    g = torch.Generator().manual_seed(0)
    _, est = divergence(lambda y: torch.linalg.cross(w, Sphere(2).projx(y)), x, method="hutchinson",
                        generator=g)
    est = est.reshape(K, 2)
    se = est.std(0) / math.sqrt(K)
    assert (est.std(0) > 0.1).all()
    assert (est.mean(0).abs() < 4 * se).all(), (est.mean(0), se)


@pytest.mark.parametrize("method", METHODS)
def test_constant_field_on_torus_is_divergence_free(method):
    c = torch.tensor([0.7, -2.0], dtype=torch.float64)
    x = _points(parse("T2"), 50)
    g = torch.Generator().manual_seed(0)
    v, div = divergence(lambda y: c + 0 * y, x, method=method, generator=g)
    torch.testing.assert_close(v, c.expand(50, 2))
    assert torch.equal(div, torch.zeros_like(div))


def test_flat_field_trace():
    """On R^d the divergence of ``v = A x + b`` is ``tr A``."""
    A = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x = _points(parse("R3"), 7)
    _, div = divergence(lambda y: A @ y + 1.0, x)
    torch.testing.assert_close(div, torch.full((7,), torch.trace(A).item(), dtype=torch.float64))


# ---------------------------------------------------------------------- Hutchinson
@pytest.mark.parametrize("spec", ["S2", "R3 x T2 x SO3"])
def test_hutchinson_is_unbiased(spec):
    """Mean of K single-probe estimates at one point is within 4 standard errors of the exact value."""
    net = _net(spec, seed=4)
    M = net.manifold
    x0 = _points(M, 3, seed=7)
    K = 4000
    fn = lambda y, s: net(s, y)  # noqa: E731
    t = torch.full((3,), 0.5, dtype=torch.float64)
    _, exact = divergence(fn, x0, t)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        _, est = divergence(fn, x0.repeat(K, 1), t.repeat(K), method="hutchinson", generator=g)
    est = est.reshape(K, 3)
    mean, se = est.mean(0), est.std(0) / math.sqrt(K)
    assert (est.std(0) > 1e-3).all(), "Rademacher probes on a non-diagonal Jacobian must have variance"
    assert ((mean - exact.detach()).abs() < 4 * se + 1e-12).all(), (mean, exact, se)


def test_hutchinson_probes_reduce_variance_and_seed_reproduces():
    net = _net("R3 x S2", seed=2)
    x = _points(net.manifold, 1).repeat(2000, 1)
    fn = lambda y: net(0.3, y)  # noqa: E731
    with torch.no_grad():
        _, e1 = divergence(fn, x, method="hutchinson", generator=torch.Generator().manual_seed(0))
        _, e1b = divergence(fn, x, method="hutchinson", generator=torch.Generator().manual_seed(0))
        _, e8 = divergence(fn, x, method="hutchinson", generator=torch.Generator().manual_seed(0), probes=8)
    assert torch.equal(e1, e1b)
    # Averaging 8 independent probes divides the variance by 8 (allow sampling noise in the variances).
    ratio = e1.var() / e8.var()
    assert 5.0 < ratio < 12.0, ratio


def test_hutchinson_exact_for_diagonal_jacobian():
    """Rademacher probes have e_i^2 = 1, so a diagonal Jacobian is traced exactly by every probe."""
    a = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    x = _points(parse("R3"), 20)
    _, div = divergence(lambda y: a * y, x, method="hutchinson", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(div, torch.full((20,), a.sum().item(), dtype=torch.float64))


# ---------------------------------------------------------------------- gradients w.r.t. parameters
def test_exact_gradient_matches_reference_gradient():
    net = _net("R1 x S2 x T1", seed=6)
    M = net.manifold
    x = _points(M, 4)
    t = torch.full((4,), 0.2, dtype=torch.float64)
    fn = lambda y, s: net(s, y)  # noqa: E731
    params = [p for p in net.parameters()]
    _, div = divergence(fn, x, t)
    g_exact = torch.autograd.grad((div ** 2).sum(), params)
    ref = reference_divergence(fn, M, x, t)
    g_ref = torch.autograd.grad((ref ** 2).sum(), params)
    for a, b in zip(g_exact, g_ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
    assert sum(a.abs().sum() for a in g_exact) > 0


def test_hutchinson_gradient_flows_and_is_unbiased():
    """The gradient of the Hutchinson estimate averaged over many probes approaches the exact gradient."""
    net = _net("S2", seed=8)
    x = _points(net.manifold, 1)
    fn = lambda y: net(0.5, y)  # noqa: E731
    w = net.out.weight
    _, exact = divergence(fn, x)
    (g_exact,) = torch.autograd.grad(exact.sum(), [w])
    K = 3000
    _, est = divergence(fn, x.repeat(K, 1), method="hutchinson", generator=torch.Generator().manual_seed(1))
    (g_hutch,) = torch.autograd.grad(est.mean(), [w])
    assert torch.isfinite(g_hutch).all() and g_hutch.abs().sum() > 0
    rel = (g_hutch - g_exact).norm() / g_exact.norm()
    assert rel < 0.1, rel


# ---------------------------------------------------------------------- VelocityMLP.forward_and_div
# The network's own forward mode (one product per layer for the point and its tangents; for SiLU, tanh and
# GELU without FiLM a backward by hand, else plain autograd) against autograd's Jacobian, in float64.
FAD_CASES = [("S2", "silu", "concat"), ("S2", "tanh", "concat"), ("S2", "gelu", "concat"),
             ("S2", "softplus", "concat"), ("R2 x S2 x T1", "silu", "concat"), ("R2 x S2 x T1", "silu", "film"),
             ("R3 x SO3", "gelu", "concat"), ("R3 x T7 x S3", "tanh", "film")]


def _fad_net(spec, activation, conditioning, seed=12):
    torch.manual_seed(seed)
    net = VelocityMLP(parse(spec), hidden=16, depth=3, cond_dim=2, conditioning=conditioning,
                      activation=activation).double()
    for p in list(net.out.parameters()) + (list(net.film.parameters()) if net.film is not None else []):
        nn.init.normal_(p, std=0.5)
    return net


def _directions(kind, M, x):
    from posegen.solvers.divergence import rademacher, tangent_directions

    if kind == "frame":
        return tangent_directions(M, x)
    if kind == "axes":
        return None
    return rademacher(x, torch.Generator().manual_seed(4)).unsqueeze(0)


def _reference_quadratic(net, x, t, c, e):
    """``sum_k <e_k, J e_k>`` with ``J`` the ambient Jacobian of ``net(t, ., c)`` at each row (autograd)."""
    out = []
    for i in range(x.shape[0]):
        J = torch.autograd.functional.jacobian(lambda y: net(t[i], y, c[i]), x[i], create_graph=True)
        out.append(torch.einsum("kd,de,ke->", e[:, i], J, e[:, i]))
    return torch.stack(out)


@pytest.mark.parametrize("kind", ["frame", "axes", "probe"])
@pytest.mark.parametrize("spec,activation,conditioning", FAD_CASES)
def test_forward_and_div_values_and_gradients_match_autograd(spec, activation, conditioning, kind):
    net = _fad_net(spec, activation, conditioning)
    M = net.manifold
    x = _points(M, 5, seed=3).requires_grad_(True)
    t = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)
    c = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    e = _directions(kind, M, x.detach())
    v, div = net.forward_and_div(t, x, c, e)
    e_ref = e if e is not None else torch.eye(x.shape[1], dtype=x.dtype).unsqueeze(1).expand(-1, 5, -1)
    ref = _reference_quadratic(net, x, t, c, e_ref)
    assert ref.abs().max() > 0.1, "the test field should have a non-trivial divergence"
    torch.testing.assert_close(v, net(t, x, c), atol=1e-12, rtol=0)
    torch.testing.assert_close(div, ref, atol=1e-11, rtol=1e-11)
    if kind == "frame":  # the frame's trace is the Riemannian divergence
        torch.testing.assert_close(div, reference_divergence(lambda y, s, ci: net(s, y, ci), M, x, t, c),
                                   atol=1e-11, rtol=1e-11)
    # gradients w.r.t. every parameter and the points, through v and div together
    w = torch.randn(v.shape, dtype=v.dtype, generator=torch.Generator().manual_seed(6))
    params = [x] + list(net.parameters())
    loss = (w * v).sum() + (div ** 2).sum()
    ref_loss = (w * net(t, x, c)).sum() + (ref ** 2).sum()
    for a, b in zip(torch.autograd.grad(loss, params), torch.autograd.grad(ref_loss, params)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    # without autograd (the forward that saves nothing) the same numbers
    with torch.no_grad():
        v0, div0 = net.forward_and_div(t, x, c, e)
    torch.testing.assert_close(v0, v.detach(), atol=0, rtol=0)
    torch.testing.assert_close(div0, div.detach(), atol=0, rtol=0)


def test_forward_and_div_float32_agrees_with_float64():
    net = _fad_net("R2 x S2 x T1", "silu", "concat")
    x = _points(net.manifold, 6, seed=8)
    t = torch.full((6,), 0.3, dtype=torch.float64)
    c = torch.zeros(6, 2, dtype=torch.float64)
    v, div = net.forward_and_div(t, x, c)
    v32, div32 = net.float().forward_and_div(t.float(), x.float(), c.float())
    assert v32.dtype == div32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), v, atol=ATOL[torch.float32], rtol=0)
    torch.testing.assert_close(div32.double(), div, atol=ATOL[torch.float32] * 10, rtol=ATOL[torch.float32])


# ---------------------------------------------------------------------- SO3 symmetry
@pytest.mark.parametrize("spec", ["SO3", "R3 x SO3", "SO3 x T1 x SO3"])
def test_so3_head_is_odd_and_divergence_even(spec):
    net = _net(spec, seed=9)
    M = net.manifold
    x = _points(M, 16)
    flip = torch.cat([(-torch.ones(f.coord_dim) if f.spec == "SO3" else torch.ones(f.coord_dim))
                      for f in M.factors]).to(x)
    t = torch.full((16,), 0.6, dtype=torch.float64)
    fn = lambda y, s: net(s, y)  # noqa: E731
    v, div = divergence(fn, x, t)
    v_f, div_f = divergence(fn, x * flip, t)
    torch.testing.assert_close(v_f, v * flip, atol=1e-12, rtol=0)
    torch.testing.assert_close(div_f, div, atol=1e-10, rtol=0)
    assert v.abs().max() > 0.1 and div.abs().max() > 0.1


# ---------------------------------------------------------------------- errors
def test_unknown_method_lists_valid_ones():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r'Invalid divergence method "exactly".*exact.*hutchinson|'
                                         r'Invalid divergence method "exactly".*hutchinson.*exact'):
        divergence(lambda y: y, x, method="exactly")


def test_points_must_be_a_batch():
    with pytest.raises(ValueError, match=r"\(B, D\), got \(3,\)"):
        divergence(lambda y: y, torch.zeros(3))


@pytest.mark.parametrize("probes", [0, -1, 1.5])
def test_probes_must_be_a_positive_integer(probes):
    with pytest.raises(ValueError, match=f"probes must be a positive integer, got {probes}"):
        divergence(lambda y: y, torch.zeros(2, 3), method="hutchinson", probes=probes)
