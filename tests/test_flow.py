"""Tests for :class:`posegen.PoseFlow`: normalisation of the likelihood, sampling, conditions,
reproducibility, checkpoints and input errors.

Normalisation is the core correctness check: a flow with a random, non-trivial field (its zero-initialised
output layer replaced by a random one, scaled until the density peaks above 5x the uniform) must have
``exp(log_prob)`` integrating to 1 w.r.t. the Riemannian volume:

* S^2: Gauss-Legendre in ``z = cos(theta)`` (so the ``sin(theta)`` weight is exact) times the periodic
  trapezoid rule in ``phi``; spectrally accurate for smooth densities;
* T^2: the periodic trapezoid rule;
* S^3 and SO3: Monte Carlo with uniform samples, ``mean(exp(lp)) * volume``, tolerance from the standard
  error. The uniform samples are randomised quasi-Monte Carlo (scrambled Sobol points pushed through Hopf
  coordinates, which map the unit cube to S^3 with constant Jacobian): each replicate is an unbiased
  estimate, the standard error comes from independent replicates, and it is ~30x smaller than i.i.d.
  sampling at the same cost;
* R^1 x S^1: trapezoid rule on a box many standard deviations wide, after ``fit_standardization`` with
  ``loc != 0`` and ``scale != 1`` (tests the change of variables);
* Moser Flow on S^2: ``max(eps, nu - div u)`` integrates to 1 by the divergence theorem when it stays
  positive.

The ODE is integrated with RK4 (16 steps) in float64; its error is measured against dopri5 at tight
tolerance on a subset, and the allowed deviation from 1 is that error plus the quadrature's.
"""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import posegen
from posegen import PoseFlow
from posegen.checkpoint import FORMAT, FORMAT_VERSION
from posegen.manifolds import SO3, parse

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
STEPS = 16


def make_flow(spec, std=0.0, seed=0, hidden=16, depth=2, steps=STEPS, dtype=torch.float64, std_in=None, **kw):
    """A tiny flow whose output layer is random with scale ``std`` (0: the identity flow); ``std_in``
    rescales the first layer too (sharper features in the input, e.g. for the torus)."""
    torch.manual_seed(seed)
    flow = PoseFlow(spec, hidden=hidden, depth=depth, solver=dict(method="rk4", steps=steps), **kw)
    if std:
        nn.init.normal_(flow.net.out.weight, std=std)
    if std_in:
        nn.init.normal_(flow.net.layers[0].weight, std=std_in)
    return flow.to(dtype)


# ---------------------------------------------------------------------- quadrature
def s2_grid(nz=32, nphi=64, dtype=torch.float64):
    """Nodes ``(nz * nphi, 3)`` and weights summing to 4 pi: Gauss-Legendre in z, trapezoid in phi."""
    z, wz = np.polynomial.legendre.leggauss(nz)
    z, wz = torch.tensor(z, dtype=dtype), torch.tensor(wz, dtype=dtype)
    phi = torch.arange(nphi, dtype=dtype) * (2 * math.pi / nphi)
    Z, P = torch.meshgrid(z, phi, indexing="ij")
    r = (1 - Z * Z).sqrt()
    x = torch.stack([r * P.cos(), r * P.sin(), Z], -1).reshape(-1, 3)
    w = (wz[:, None] * (2 * math.pi / nphi)).expand(nz, nphi).reshape(-1)
    return x, w


def torus_grid(n=36, dtype=torch.float64):
    """Cell centres ``(n * n, 2)`` of an n x n grid on [-pi, pi)^2 and their area (2 pi / n)^2."""
    a = -math.pi + (torch.arange(n, dtype=dtype) + 0.5) * (2 * math.pi / n)
    A, B = torch.meshgrid(a, a, indexing="ij")
    return torch.stack([A, B], -1).reshape(-1, 2), (2 * math.pi / n) ** 2


def s3_uniform_rqmc(replicates=8, n=512, seed=0, dtype=torch.float64):
    """``(replicates, n, 4)`` uniform points on S^3: scrambled Sobol points in Hopf coordinates
    ``x = (sqrt(s) cos a, sqrt(s) sin a, sqrt(1-s) cos b, sqrt(1-s) sin b)``, whose volume element is
    ``ds da db / 2`` (constant), so each point is uniformly distributed on S^3."""
    out = []
    for r in range(replicates):
        u = torch.quasirandom.SobolEngine(3, scramble=True, seed=seed + r).draw(n, dtype=dtype)
        s, a, b = u[:, 0], 2 * math.pi * u[:, 1], 2 * math.pi * u[:, 2]
        out.append(torch.stack([s.sqrt() * a.cos(), s.sqrt() * a.sin(),
                                (1 - s).sqrt() * b.cos(), (1 - s).sqrt() * b.sin()], -1))
    return torch.stack(out)


def ode_error(flow, x, n=48):
    """Max |log_prob| difference between the flow's RK4 and dopri5 at 1e-7 on n points spread over x."""
    xs = x[torch.linspace(0, x.shape[0] - 1, n).long()]
    return (flow.log_prob(xs) - flow.log_prob(xs, method="dopri5", atol=1e-7, rtol=1e-7)).abs().max().item()


# ---------------------------------------------------------------------- normalisation
@pytest.fixture(scope="module")
def s2_flow():
    flow = make_flow("S2", std=3.0)
    x, w = s2_grid()
    return flow, x, w, flow.log_prob(x).exp()


@pytest.fixture(scope="module")
def t2_flow():
    flow = make_flow("T2", std=1.5, std_in=1.0, seed=1)
    x, w = torus_grid()
    return flow, x, w, flow.log_prob(x).exp()


def test_normalisation_s2(s2_flow):
    flow, x, w, p = s2_flow
    assert p.max() * 4 * math.pi > 5, "the test flow should be far from uniform"
    # RK4 against dopri5 at tight tolerance, and its 4th order: ~16x smaller error for twice the steps.
    idx = torch.linspace(0, x.shape[0] - 1, 24).long()
    xs = x[idx]
    ref = flow.log_prob(xs, method="dopri5", atol=1e-9, rtol=1e-9)
    e16 = (p[idx].log() - ref).abs().max().item()
    e8 = (flow.log_prob(xs, steps=8) - ref).abs().max().item()
    assert e16 < 2e-3 and e8 / e16 > 8, (e8, e16)
    total = (p * w).sum().item()
    assert abs(total - 1) < 2e-3, total


def test_normalisation_t2(t2_flow):
    flow, x, w, p = t2_flow
    assert p.max() * (2 * math.pi) ** 2 > 5
    assert ode_error(flow, x) < 0.05
    total = (p * w).sum().item()
    assert abs(total - 1) < 5e-3, total


@pytest.mark.parametrize("spec,std,volume", [("S3", 0.8, 2 * math.pi ** 2), ("SO3", 0.9, math.pi ** 2)])
def test_normalisation_s3_and_so3_monte_carlo(spec, std, volume):
    flow = make_flow(spec, std=std, seed=2)
    X = s3_uniform_rqmc()
    R, n = X.shape[:2]
    ratio = (flow.log_prob(X.reshape(-1, 4)).exp() * volume).reshape(R, n)
    assert ratio.max() > 5
    estimates = ratio.mean(1)
    total, se = estimates.mean().item(), (estimates.std() / math.sqrt(R)).item()
    assert se < 5e-3 and ode_error(flow, X.reshape(-1, 4)) < 0.05
    assert abs(total - 1) < 4 * se + 5e-3, (total, se)


def test_hopf_points_are_uniform_on_s3():
    """The quadrature helper itself: unit norm, and the first two moments of the uniform law on S^3."""
    X = s3_uniform_rqmc().reshape(-1, 4)
    torch.testing.assert_close(X.norm(dim=-1), torch.ones(X.shape[0], dtype=torch.float64))
    torch.testing.assert_close(X.mean(0), torch.zeros(4, dtype=torch.float64), atol=5e-3, rtol=0)
    torch.testing.assert_close(X.T @ X / X.shape[0], torch.eye(4, dtype=torch.float64) / 4, atol=5e-3, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("spec,std,volume", [("S3", 0.8, 2 * math.pi ** 2), ("SO3", 0.9, math.pi ** 2)])
def test_normalisation_s3_and_so3_iid_monte_carlo(spec, std, volume):
    """Plain i.i.d. Monte Carlo with the manifold's own uniform sampler (independent of the Hopf helper)."""
    flow = make_flow(spec, std=std, seed=2)
    x = flow.manifold.sample_base(40000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ratio = flow.log_prob(x).exp() * volume
    total, se = ratio.mean().item(), (ratio.std() / math.sqrt(x.shape[0])).item()
    assert se < 1e-2 and abs(total - 1) < 4 * se + 5e-3, (total, se)


def test_so3_density_is_even():
    """The SO3 flow commutes with q -> -q, so both representatives get the same density."""
    flow = make_flow("R1 x SO3", std=0.5, seed=3, steps=4)
    x = flow.manifold.sample_base(32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    flip = torch.tensor([1.0, -1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x * flip), flow.log_prob(x), atol=1e-10, rtol=0)


def test_normalisation_r1_x_s1_with_standardisation():
    flow = make_flow("R1 x S1", std=2.0, seed=4)
    g = torch.Generator().manual_seed(0)
    data = torch.cat([2.0 + 0.5 * torch.randn(500, 1, generator=g, dtype=torch.float64),
                      parse("T1").sample_base(500, generator=g, dtype=torch.float64)], -1)
    flow.fit_standardization(data)
    loc, scale = flow.loc[0].item(), flow.scale[0].item()
    assert abs(loc - 2.0) < 0.1 and abs(scale - 0.5) < 0.05
    assert flow.loc[1] == 0 and flow.scale[1] == 1, "angles are not standardised"
    # Box of +-12 internal standard deviations; check below that the density vanishes at its edges.
    nr, na = 160, 32
    r = torch.linspace(loc - 12 * scale, loc + 12 * scale, nr, dtype=torch.float64)
    a = -math.pi + (torch.arange(na, dtype=torch.float64) + 0.5) * (2 * math.pi / na)
    R, A = torch.meshgrid(r, a, indexing="ij")
    x = torch.stack([R, A], -1).reshape(-1, 2)
    p = flow.log_prob(x).exp().reshape(nr, na)
    w_r = torch.full((nr,), (r[1] - r[0]).item(), dtype=torch.float64)
    w_r[[0, -1]] /= 2
    total = (p * w_r[:, None]).sum().item() * (2 * math.pi / na)
    assert p[[0, -1]].max() < 1e-8 * p.max()
    base = (flow.manifold.base_log_prob(flow.to_internal(x)) - flow.scale.log().sum()).exp().reshape(nr, na)
    assert (p - base).abs().max() > 0.3 * base.max(), "the test flow should differ from the base"
    assert ode_error(flow, x[nr * na // 2 - 16 * na: nr * na // 2 + 16 * na]) < 0.05
    assert abs(total - 1) < 5e-3, total
    # Without the change of variables the total would be 1 / scale = 2, not 1.
    assert abs(total * scale - 1) > 0.4


def test_normalisation_moser_s2():
    flow = make_flow("S2", std=0.05, parametrization="moser", moser_eps=1e-5)
    x, w = s2_grid()
    nu = 1 / (4 * math.pi)
    mu, _ = flow.moser_density(x)
    mu = mu.detach()
    assert mu.min() > 0.2 * nu, "keep the field small enough that mu stays positive"
    assert mu.max() > 1.5 * nu, "the test field should be non-trivial"
    p = flow.log_prob(x).exp()
    torch.testing.assert_close(p, mu, rtol=1e-12, atol=0)
    assert abs((p * w).sum().item() - 1) < 1e-8


# ---------------------------------------------------------------------- sampling
def _chi_square(counts, probs):
    n = counts.sum()
    expected = n * probs
    return (((counts - expected) ** 2) / expected).sum().item()


def test_samples_follow_log_prob_torus(t2_flow):
    """Histogram of 20000 samples on a 6 x 6 grid of bins vs the bins' probabilities from log_prob."""
    from scipy.stats import chi2

    flow, x, w, p = t2_flow
    n_grid, k = 36, 6
    probs = (p * w).reshape(k, n_grid // k, k, n_grid // k).sum((1, 3)).reshape(-1)
    probs = probs / probs.sum()
    s = flow.sample(20000, seed=5)
    idx = ((s + math.pi) // (2 * math.pi / k)).long().clamp(0, k - 1)
    counts = torch.bincount(idx[:, 0] * k + idx[:, 1], minlength=k * k).to(torch.float64)
    stat = _chi_square(counts, probs)
    assert chi2.sf(stat, k * k - 1) > 1e-3, stat
    # The test has power: the same histogram is incompatible with the uniform density.
    assert chi2.sf(_chi_square(counts, torch.full_like(probs, 1 / k ** 2)), k * k - 1) < 1e-12


def test_moser_samples_follow_its_density():
    """Moser sampling integrates v_t = u / ((1 - t) nu + t mu); its samples must follow mu."""
    from scipy.stats import chi2

    flow = make_flow("S2", std=0.05, parametrization="moser", steps=8)
    # Bins: 3 equal-area bands in z times 4 sectors in phi; probabilities by Gauss-Legendre per band.
    z_edges, k_phi = [-1.0, -1 / 3, 1 / 3, 1.0], 4
    probs = []
    for za, zb in zip(z_edges[:-1], z_edges[1:]):
        z, wz = np.polynomial.legendre.leggauss(16)
        z = torch.tensor((zb - za) / 2 * z + (za + zb) / 2)
        wz = torch.tensor(wz * (zb - za) / 2)
        phi = -math.pi + (torch.arange(64, dtype=torch.float64) + 0.5) * (2 * math.pi / 64)
        Z, P = torch.meshgrid(z, phi, indexing="ij")
        r = (1 - Z * Z).sqrt()
        x = torch.stack([r * P.cos(), r * P.sin(), Z], -1).reshape(-1, 3)
        p = flow.log_prob(x).exp().reshape(16, 64) * wz[:, None] * (2 * math.pi / 64)
        probs.append(p.reshape(16, k_phi, 64 // k_phi).sum((0, 2)))
    probs = torch.cat(probs)
    assert abs(probs.sum().item() - 1) < 1e-8
    s = flow.sample(6000, seed=0)
    zi = torch.bucketize(s[:, 2].contiguous(), torch.tensor(z_edges[1:-1], dtype=torch.float64))
    pi = ((torch.atan2(s[:, 1], s[:, 0]) + math.pi) // (2 * math.pi / k_phi)).long().clamp(0, k_phi - 1)
    counts = torch.bincount(zi * k_phi + pi, minlength=3 * k_phi).to(torch.float64)
    assert chi2.sf(_chi_square(counts, probs), 3 * k_phi - 1) > 1e-3
    assert chi2.sf(_chi_square(counts, torch.full_like(probs, 1 / 12)), 11) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_samples_lie_on_the_manifold(dtype, device):
    flow = make_flow("R3 x T2 x S2 x SO3 x S3", std=1.0, steps=4, dtype=dtype).to(device)
    x = flow.sample(500, seed=0)
    assert x.shape == (500, 3 + 2 + 3 + 4 + 4) and x.dtype == dtype and x.device.type == device
    M = flow.manifold
    _, th, s2, q, s3 = M.split(x)
    assert ((th >= -math.pi) & (th < math.pi)).all()
    for u in (s2, q, s3):
        torch.testing.assert_close(u.norm(dim=-1), torch.ones(500, dtype=dtype, device=device),
                                   atol=1e-5, rtol=0)
    assert (q[:, 3] >= 0).all(), "SO3 samples are canonical (w >= 0) by default"
    M.check_point(x)
    # The flow moved the base samples (otherwise the test would pass for the identity).
    z0 = M.sample_base(500, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    assert (x[:, :3] - z0[:, :3]).abs().max() > 0.1


def test_canonical_false_keeps_both_hemispheres():
    flow = make_flow("SO3", std=0.5, steps=2)
    q = flow.sample(400, seed=1, canonical=False)
    assert (q[:, 3] < 0).any() and (q[:, 3] > 0).any()
    torch.testing.assert_close(SO3.canonical(q), flow.sample(400, seed=1))


# ---------------------------------------------------------------------- conditions
@pytest.fixture(scope="module")
def cond_flow():
    flow = make_flow("R2 x S2", std=1.0, seed=6, steps=4, cond_dim=3, conditioning="film")
    nn.init.normal_(flow.net.film.weight, std=0.5)
    return flow


def test_condition_row_broadcasts(cond_flow):
    c = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    a = cond_flow.sample(50, condition=c, seed=0)
    b = cond_flow.sample(50, condition=c.expand(50, 3), seed=0)
    c1 = cond_flow.sample(50, condition=c[None], seed=0)
    assert torch.equal(a, b) and torch.equal(a, c1)
    lp_a = cond_flow.log_prob(a, condition=c)
    torch.testing.assert_close(lp_a, cond_flow.log_prob(a, condition=c.expand(50, 3)), rtol=0, atol=0)
    # The condition matters.
    other = cond_flow.sample(50, condition=torch.zeros(3, dtype=torch.float64), seed=0)
    assert (a - other).abs().max() > 1e-3
    assert (lp_a - cond_flow.log_prob(a, condition=torch.zeros(3))).abs().max() > 1e-3


def test_per_row_conditions_match_one_row_at_a_time(cond_flow):
    c = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = cond_flow.sample(6, condition=c, seed=1)
    lp = cond_flow.log_prob(x, condition=c)
    for i in range(6):
        torch.testing.assert_close(cond_flow.log_prob(x[i:i + 1], condition=c[i]), lp[i:i + 1],
                                   atol=1e-12, rtol=0)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(7, 3), r"condition must have shape \(5, 3\) or \(3,\), got \(7, 3\)"),
    (torch.zeros(5, 2), r"condition must have shape \(5, 3\) or \(3,\), got \(5, 2\)"),
    (torch.zeros(5, 1, 3), r"got \(5, 1, 3\)"),
    (None, r"conditional \(cond_dim=3\): pass condition= with shape \(5, 3\)"),
    (torch.tensor([0.0, float("nan"), 1.0]), "NaN or inf"),
])
def test_bad_conditions_raise(cond_flow, bad, match):
    x = cond_flow.sample(5, condition=torch.zeros(3), seed=0)
    with pytest.raises(ValueError, match=match):
        cond_flow.sample(5, condition=bad)
    with pytest.raises(ValueError, match=match):
        cond_flow.log_prob(x, condition=bad)


def test_condition_for_unconditional_flow_raises():
    flow = make_flow("S2", steps=2)
    with pytest.raises(ValueError, match=r"unconditional \(cond_dim=0\) but condition= was given"):
        flow.sample(3, condition=torch.zeros(3))
    with pytest.raises(ValueError, match="unconditional"):
        flow.log_prob(flow.sample(3, seed=0), condition=torch.zeros(3, 2))


# ---------------------------------------------------------------------- reproducibility
@pytest.fixture(scope="module")
def small_flow():
    return make_flow("R2 x T1 x S2", std=1.0, seed=7, steps=4)


def test_same_seed_same_samples(small_flow):
    a = small_flow.sample(100, seed=3)
    assert torch.equal(a, small_flow.sample(100, seed=3))
    assert torch.equal(a, small_flow.sample(100, generator=torch.Generator().manual_seed(3)))
    b = small_flow.sample(100, seed=4)
    assert (a - b).abs().min(0).values.max() > 0 and (a - b).abs().max() > 0.1
    with pytest.raises(ValueError, match="either generator= or seed="):
        small_flow.sample(3, seed=1, generator=torch.Generator())


@pytest.mark.parametrize("chunk_size", [7, None])
def test_chunk_size_does_not_change_results(small_flow, chunk_size):
    a = small_flow.sample(30, seed=0, chunk_size=1000)
    b = small_flow.sample(30, seed=0, chunk_size=chunk_size)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    torch.testing.assert_close(small_flow.log_prob(a, chunk_size=chunk_size),
                               small_flow.log_prob(a, chunk_size=1000), atol=1e-12, rtol=0)


def test_batch_size_is_a_deprecated_alias_of_chunk_size(small_flow):
    a = small_flow.sample(30, seed=0, chunk_size=7)
    with pytest.warns(DeprecationWarning, match=r"sample\(batch_size=\.\.\.\) is deprecated: use chunk_size="):
        b = small_flow.sample(30, seed=0, batch_size=7)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.warns(DeprecationWarning, match=r"log_prob\(batch_size=\.\.\.\) is deprecated"):
        lp = small_flow.log_prob(a, batch_size=None)
    torch.testing.assert_close(lp, small_flow.log_prob(a, chunk_size=7), atol=1e-12, rtol=0)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        small_flow.sample(3, batch_size=0)
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="both chunk_size= and"):
        small_flow.sample(3, chunk_size=5, batch_size=7)


def test_empty_inputs(small_flow):
    assert small_flow.sample(0, seed=0).shape == (0, 6)
    assert small_flow.sample(0, seed=0, chunk_size=None).shape == (0, 6)
    assert small_flow.log_prob(torch.zeros(0, 6, dtype=torch.float64)).shape == (0,)
    assert small_flow.log_prob(torch.zeros(0, 6, dtype=torch.float64), chunk_size=None).shape == (0,)
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        small_flow.sample(3, chunk_size=0)
    with pytest.raises(ValueError, match="n must be a non-negative integer, got -1"):
        small_flow.sample(-1)


def test_log_prob_keeps_leading_shape(small_flow):
    x = small_flow.sample(12, seed=0)
    lp = small_flow.log_prob(x)
    assert torch.equal(small_flow.log_prob(x.reshape(3, 4, 6)), lp.reshape(3, 4))


def test_hutchinson_log_prob_seeded_and_unbiased(small_flow):
    x = small_flow.sample(3, seed=0)
    exact = small_flow.log_prob(x)
    K = 400
    xs = x.repeat(K, 1)
    h1 = small_flow.log_prob(xs, divergence="hutchinson", seed=1)
    assert torch.equal(h1, small_flow.log_prob(xs, divergence="hutchinson", seed=1))
    assert not torch.equal(h1, small_flow.log_prob(xs, divergence="hutchinson", seed=2))
    h = h1.reshape(K, 3)
    se = h.std(0) / math.sqrt(K)
    assert (h.std(0) > 1e-3).all()
    assert ((h.mean(0) - exact).abs() < 4 * se).all(), (h.mean(0), exact, se)


def test_unknown_divergence_method_raises(small_flow):
    x = small_flow.sample(2, seed=0)
    with pytest.raises(ValueError, match=r'Invalid divergence method "trace"\. Must be one of'):
        small_flow.log_prob(x, divergence="trace")


def test_unknown_solver_settings_raise(small_flow):
    with pytest.raises(ValueError, match=r'Invalid method "rk45"'):
        small_flow.sample(2, method="rk45")
    with pytest.raises(ValueError, match=r'Invalid step "geodesic"'):
        PoseFlow("S2", hidden=8, depth=1, solver=dict(step="geodesic"))
    with pytest.raises(ValueError, match=r'Invalid parametrization "ot"'):
        PoseFlow("S2", parametrization="ot")
    with pytest.raises(ValueError, match="Moser Flow needs a compact manifold"):
        PoseFlow("R2 x S2", parametrization="moser")
    with pytest.raises(ValueError, match=r"unknown solver settings \['step_count'\]; valid: \['method', 'steps'"):
        PoseFlow("S2", hidden=8, depth=1, solver=dict(step_count=8))


# ---------------------------------------------------------------------- log_prob input errors
@pytest.mark.parametrize("spec,x,match", [
    ("R3 x SO3", torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]]), r"factor 1 \(SO3.*norm differs from 1"),
    ("R3 x SO3", torch.tensor([[0.0, float("nan"), 0.0, 0.0, 0.0, 0.0, 1.0]]), r"non-finite values"),
    ("R3 x SO3", torch.zeros(2, 6), r"expected shape \(\.\.\., 7\).*got \(2, 6\)"),
    ("T2", torch.tensor([[0.0, 4.0]]), r"angles outside \[-pi, pi\)"),
    ("S2", torch.tensor([[1.0, 0.0, float("inf")]]), r"non-finite"),
])
def test_log_prob_refuses_points_off_the_manifold(spec, x, match):
    flow = make_flow(spec, steps=1)
    with pytest.raises(ValueError, match=match):
        flow.log_prob(x.to(torch.float64))


def test_log_prob_tolerance_follows_the_flow_dtype():
    """A float32 flow's own samples, cast to float64, are on the manifold to float32 precision: accepted."""
    flow = make_flow("R3 x SO3", std=0.5, steps=2, dtype=torch.float32)
    x = flow.sample(200, seed=0)
    torch.testing.assert_close(flow.log_prob(x.double()), flow.log_prob(x), atol=1e-5, rtol=0)
    x[0, 6] += 1e-2
    with pytest.raises(ValueError, match=r"norm differs from 1 by up to .* \(tolerance 0.0001\) in rows \[0\]"):
        flow.log_prob(x.double())
    # A float64 flow keeps float64's tolerance.
    x32 = flow.sample(200, seed=0).double()
    flow.double()
    with pytest.raises(ValueError, match=r"norm differs from 1 .*\(tolerance 1e-08\)"):
        flow.log_prob(x32)


# ---------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    flow = make_flow("R2 x S2 x SO3", std=1.0, seed=8, steps=4, cond_dim=2)
    g = torch.Generator().manual_seed(0)
    pts = flow.manifold.sample_base(50, generator=g, dtype=torch.float64)
    pts[:, :2] = 3.0 + 2.0 * pts[:, :2]
    flow.fit_standardization(pts, conditions=torch.randn(50, 2, generator=g, dtype=torch.float64) + 5)
    path = tmp_path_factory.mktemp("ckpt") / "flow.pt"
    flow.save(path, extra={"note": "test", "epochs": 3})
    return flow, path


def test_save_load_round_trip(saved):
    flow, path = saved
    loaded = PoseFlow.load(path)
    assert loaded.dtype == flow.dtype == torch.float64
    assert loaded.config == flow.config and loaded.manifold == flow.manifold
    for k, v in flow.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    c = torch.tensor([4.0, 6.0], dtype=torch.float64)
    a = flow.sample(40, condition=c, seed=9)
    assert torch.equal(loaded.sample(40, condition=c, seed=9), a)
    assert torch.equal(loaded.log_prob(a, condition=c), flow.log_prob(a, condition=c))


def test_checkpoint_contents(saved):
    _, path = saved
    ck = torch.load(path, weights_only=True)
    assert ck["format"] == FORMAT and ck["format_version"] == FORMAT_VERSION
    assert ck["manifold"] == "R2 x S2 x SO3" and ck["posegen_version"] == posegen.__version__
    assert ck["config"]["cond_dim"] == 2 and ck["config"]["hidden"] == 16
    assert ck["extra"] == {"note": "test", "epochs": 3}
    assert {"loc", "scale", "cond_loc", "cond_scale"} <= set(ck["state_dict"])


def test_load_checks_manifold(saved):
    _, path = saved
    assert PoseFlow.load(path, manifold="R2 x S2 x SO3").manifold == parse("R2 x S2 x SO3")
    with pytest.raises(ValueError, match=r"holds a flow on R2 x S2 x SO3, not on R2 x S2 x S3"):
        PoseFlow.load(path, manifold="R2 x S2 x S3")


def _write_junk(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _write_text(path):
    path.write_text("x,y,z\n1,2,3\n")


def _write_list(path):
    torch.save([1, 2, torch.zeros(3)], path)


def _write_headerless_dict(path):
    torch.save({"state_dict": {}, "config": {}}, path)


def _write_hdf5(path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f["points"] = np.zeros((3, 4))


@pytest.mark.parametrize("writer,match", [
    (_write_junk, r"not a readable posegen checkpoint \(not a torch.save file of plain data"),
    (_write_text, "not a readable posegen checkpoint"),
    (_write_list, "not a posegen checkpoint \\(no 'posegen-checkpoint' header\\)"),
    (_write_headerless_dict, "no 'posegen-checkpoint' header"),
    (_write_hdf5, "not a posegen checkpoint: it is an HDF5 file"),
])
def test_load_refuses_files_that_are_not_checkpoints(tmp_path, writer, match):
    path = tmp_path / "file.pt"
    writer(path)
    with pytest.raises(ValueError, match=match):
        PoseFlow.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PoseFlow.load(tmp_path / "missing.pt")


class _Payload:
    """Unpickling this runs ``os.system("touch <marker>")``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["pickle", "torch_save", "inside_header"])
def test_load_refuses_pickled_code_without_running_it(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = _Payload(marker)
    if writer == "pickle":
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    elif writer == "torch_save":
        torch.save(payload, path, pickle_module=pickle)
    else:  # a well-formed header around the payload
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "model",
                    "config": payload, "state_dict": {}}, path)
    match = "not a readable posegen checkpoint" if writer == "pickle" else "refuses to unpickle them"
    with pytest.raises(ValueError, match=match):
        PoseFlow.load(path)
    assert not marker.exists()
    # The payload is live: a plain unpickle of the same object does create its marker.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists(), "the payload should be a working exploit, or this test proves nothing"


def test_load_refuses_newer_format(tmp_path, saved):
    _, path = saved
    ck = torch.load(path, weights_only=True)
    ck["format_version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.pt"
    torch.save(ck, newer)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*upgrade posegen"):
        PoseFlow.load(newer)


def test_load_refuses_mismatched_state(tmp_path, saved):
    _, path = saved
    ck = torch.load(path, weights_only=True)
    ck["config"]["hidden"] = 8
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    with pytest.raises(ValueError, match="does not match"):
        PoseFlow.load(bad)


@pytest.mark.gpu
def test_load_to_cuda_and_same_seed_across_devices(saved):
    flow, path = saved
    loaded = PoseFlow.load(path, map_location="cuda")
    assert loaded.device.type == "cuda"
    c = torch.tensor([4.0, 6.0], dtype=torch.float64)
    a = flow.sample(40, condition=c, seed=9)
    b = loaded.sample(40, condition=c, seed=9)
    torch.testing.assert_close(b.cpu(), a, atol=1e-9, rtol=0)
    torch.testing.assert_close(loaded.log_prob(a.cuda(), condition=c).cpu(), flow.log_prob(a, condition=c),
                               atol=1e-9, rtol=0)


@pytest.mark.gpu
def test_normalisation_s2_cuda():
    flow = make_flow("S2", std=3.0).to("cuda")
    x, w = s2_grid()
    p = flow.log_prob(x.cuda()).exp().cpu()
    assert p.max() * 4 * math.pi > 5
    assert abs((p * w).sum().item() - 1) < 5e-3


# ---------------------------------------------------------------------- every product end to end
@pytest.mark.parametrize("spec,coord_dim", [("R3 x T7 x S3", 14), ("R3 x SO3", 7), ("R3 x T8 x S3^6", 35),
                                            ("S1", 1), ("R2", 2)])
def test_products_end_to_end(spec, coord_dim):
    flow = make_flow(spec, std=0.5, steps=2, dtype=torch.float32)
    assert repr(flow.manifold) == spec.replace("S1", "T1")
    x = flow.sample(16, seed=0)
    assert x.shape == (16, coord_dim) and x.dtype == torch.float32
    flow.manifold.check_point(x)
    lp = flow.log_prob(x)
    assert lp.shape == (16,) and torch.isfinite(lp).all()
    hl = flow.log_prob(x, divergence="hutchinson", seed=0)
    assert torch.isfinite(hl).all()
