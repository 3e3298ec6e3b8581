"""posegen.paths.proposal: importance-sampled integrals over manifolds, base-law points (uniform on compact ones)
mixed with kernels around data (Moser Flow's near-data penalty points, its benchmark's mass check and the
benchmarks' defensive normalisation estimate)."""

from __future__ import annotations

import math

import pytest
import torch

import posegen.manifolds as pm
from posegen.objectives import Moser
from posegen.paths import Schedule, log_kernel
from posegen.paths.proposal import near_data_points

F64 = torch.float64
COMPACT = ["S2", "T2", "S3", "SO3", "I2[-1:2,0:1]", "S2 x T1"]
ANY = COMPACT + ["R2", "R3 x SO3"]   # non-compact: the base law is a standard normal on the R^d factors


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def centres(M, n=6, seed=1):
    """A tight cluster of points (where a uniform estimate would rarely look) and one far point."""
    c = M.sample_base(1, generator=gen(seed), dtype=F64)
    near = M.projx(c + 0.02 * torch.randn(n - 1, M.coord_dim, generator=gen(seed + 1), dtype=F64))
    return torch.cat([near, M.sample_base(1, generator=gen(seed + 2), dtype=F64)])


def estimate(M, f, c, near, scales, n=4000, reps=40, seed=3):
    """Mean and standard error over ``reps`` independent estimates of ``integral f dV``."""
    g = gen(seed)
    est = []
    for _ in range(reps):
        y, w = near_data_points(M, c, n, near, scales, generator=g)
        est.append(float((w * f(y)).mean()))
    est = torch.tensor(est, dtype=F64)
    return float(est.mean()), float(est.std() / math.sqrt(reps))


@pytest.mark.parametrize("spec", ANY)
def test_base_share_alone_weighs_every_point_by_the_inverse_base_density(spec):
    M = pm.parse(spec)
    y, w = near_data_points(M, centres(M), 500, 0.0, (), generator=gen())
    assert y.shape == (500, M.coord_dim)
    torch.testing.assert_close(w, torch.exp(-M.base_log_prob(y)))
    if M.compact:  # the uniform law: every weight is the volume
        assert torch.allclose(w, torch.full_like(w, math.exp(M.log_volume)))
    torch.testing.assert_close(M.projx(y), y)


@pytest.mark.parametrize("spec", ANY)
def test_the_estimate_is_unbiased(spec):
    """The volume where there is one (every weight right, kernel normalisers included) and the integral of a
    narrow kernel that sits on the cluster (1: the region a base-law estimate would miss), within 4 standard
    errors."""
    M = pm.parse(spec)
    c = centres(M)
    if M.compact:
        vol = math.exp(M.log_volume)
        mean, sem = estimate(M, lambda y: torch.ones(y.shape[0], dtype=F64), c, 0.6, (0.01, 0.05))
        assert abs(mean - vol) <= 4 * sem + 1e-9 * vol, (mean, sem, vol)
    bump = Schedule(sigma_min=0.03)
    f = (lambda y: log_kernel(M, y, c[:1].expand_as(y), y.new_ones(y.shape[0]), bump).exp())
    mean, sem = estimate(M, f, c, 0.6, (0.01, 0.05))
    assert abs(mean - 1) <= 4 * sem and sem < 0.05, (mean, sem)
    # and the near-data points are what makes it precise: base-law points alone see the bump far less well
    # (on R3 x SO3 they miss it altogether: every estimate reads 0), so their root mean square error is larger
    mean_base, sem_base = estimate(M, f, c, 0.0, ())
    assert (mean_base - 1) ** 2 + sem_base ** 2 > (mean - 1) ** 2 + sem ** 2
    if M.compact:  # where uniform points do see the bump, their standard error is the larger one
        assert sem < sem_base


def test_draws_land_near_the_centres_in_their_shares():
    M = pm.parse("S2")
    c = centres(M)
    y, _ = near_data_points(M, c, 1000, 0.75, (0.003, 0.01, 0.03), generator=gen())
    d = torch.acos((y @ c.T).clamp(-1, 1)).min(-1).values
    assert (d[:250] > 0.15).float().mean() > 0.5       # the uniform quarter, mostly far from 6 points
    assert (d[250:] < 0.15).all()                      # the kernels' three quarters, close


def test_bad_arguments_are_named():
    S2 = pm.parse("S2")
    c = centres(S2)
    for kw, msg in [(dict(near=1.0, scales=(0.1,)), "near must lie in"), (dict(near=0.5, scales=()), "scales"),
                    (dict(near=0.5, scales=(1.5,)), "scales"), (dict(near=0.5, scales=(0.1,), n=0), "n must")]:
        with pytest.raises(ValueError, match=msg):
            near_data_points(S2, c, kw.pop("n", 10), generator=gen(), **kw)
    for kw, msg in [(dict(near=1), "near must be a share"), (dict(near_scales=()), "near_scales"),
                    (dict(near_scales=(0.0,)), "near_scales")]:
        with pytest.raises(ValueError, match=msg):
            Moser(**kw)


def test_moser_near_penalty_is_the_weighted_negative_part():
    """With ``near`` the penalty is lam mean(w (eps - mu)_+) at the proposal's points, drawn from the same generator
    as the loss draws them; a conditional flow is refused (the weights are those of one density)."""
    from posegen.flow import PoseFlow
    torch.manual_seed(0)
    flow = PoseFlow("S2", hidden=16, depth=2, parametrization="moser").to(F64)
    torch.nn.init.normal_(flow.net.out.weight, std=1.0)
    x = centres(flow.manifold, 16)
    obj = Moser(eps=1e-2, lam=3.0, n_uniform=40, near=0.5, near_scales=(0.05,))
    y, w = near_data_points(flow.manifold, x, 40, 0.5, (0.05,), generator=gen(7))
    mu = flow.moser_density(torch.cat([x, y]))[0]
    want = -mu[:16].clamp_min(1e-2).log().mean() + 3.0 * (w * (1e-2 - mu[16:]).clamp_min(0)).mean()
    loss = obj.loss(flow, x, generator=gen(7))
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
    assert Moser(near=0.5, near_scales=[0.01, 0.1]).options["near_scales"] == [0.01, 0.1]
    cond = PoseFlow("S2", hidden=8, depth=1, cond_dim=2, parametrization="moser").to(F64)
    with pytest.raises(ValueError, match="near > 0 needs an unconditional flow"):
        Moser(near=0.5).loss(cond, x, torch.zeros(16, 2, dtype=F64))
