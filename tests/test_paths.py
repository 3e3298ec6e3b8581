"""posegen.paths: schedules, kernel normalisation, samplers, and the mixture path's targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

import posegen.manifolds as pm
from posegen.paths import vmf
from posegen.paths import (MixturePath, Schedule, log_kernel, log_vmf_normalizer, log_von_mises_normalizer,
                           make_schedule, pairwise_log_kernel, sample_kernel, sample_vmf, sample_von_mises)

F64 = torch.float64
SCHEDULES = [Schedule("linear", sigma_min=0.1), Schedule("cosine", sigma_min=0.1),
             Schedule("linear", sigma_min=0.1, kappa_max=30.0)]
TIMES = [0.0, 1e-3, 0.3, 0.7, 1.0]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def unit(v):
    v = torch.as_tensor(v, dtype=F64)
    return v / v.norm()


# ---------------------------------------------------------------------- schedules
@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("kappa_max", [None, 50.0])
def test_schedule_boundaries(kind, kappa_max):
    s = Schedule(kind, sigma_min=0.02, kappa_max=kappa_max)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    assert s.alpha(t).tolist() == pytest.approx([0.0, 1.0], abs=1e-15)
    assert s.sigma(t).tolist() == pytest.approx([1.0, 0.02], abs=1e-15)
    k1 = 1 / 0.02 ** 2 if kappa_max is None else kappa_max
    assert s.kappa(t).tolist() == pytest.approx([0.0, k1], rel=1e-12, abs=1e-15)
    # one signal-to-noise curve: kappa_t = (alpha_t / sigma_t)^2 when kappa_max is not set
    tt = torch.linspace(0.05, 1, 7, dtype=F64)
    if kappa_max is None:
        torch.testing.assert_close(s.kappa(tt), (s.alpha(tt) / s.sigma(tt)) ** 2)
    assert (s.kappa(tt).diff() > 0).all() and (s.sigma(tt).diff() < 0).all()


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
def test_schedule_autograd_dt(s):
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64, requires_grad=True)
    h = 1e-6
    for fn in (s.alpha, s.sigma, s.kappa):
        (d,) = torch.autograd.grad(fn(t).sum(), t)
        fd = (fn(t.detach() + h) - fn(t.detach() - h)) / (2 * h)
        torch.testing.assert_close(d, fd, rtol=1e-7, atol=1e-8)


def test_schedule_errors_and_make():
    with pytest.raises(ValueError, match='Invalid schedule kind "cubic". Must be one of'):
        Schedule("cubic")
    with pytest.raises(ValueError, match=r"sigma_min must lie in \(0, 1\), got 1.5"):
        Schedule(sigma_min=1.5)
    with pytest.raises(ValueError, match="kappa_max must be positive"):
        Schedule(kappa_max=-1)
    with pytest.raises(TypeError, match="schedule must be None"):
        make_schedule(3)
    assert make_schedule(None).kind == "linear"
    assert make_schedule("cosine").kind == "cosine"
    assert make_schedule({"sigma_min": 0.05}).sigma_min == 0.05
    s = Schedule()
    assert make_schedule(s) is s


# ---------------------------------------------------------------------- normalisers
@pytest.mark.parametrize("p", [2, 3, 4])
def test_vmf_normalizer_matches_bessel(p):
    k = np.array([1e-6, 1e-3, 0.05, 0.3, 1.0, 7.0, 80.0, 1e4])
    ref = (p / 2 - 1) * np.log(k) - (p / 2) * np.log(2 * np.pi) - np.log(special.ive(p / 2 - 1, k)) - k
    got = log_vmf_normalizer(torch.tensor(k, dtype=F64), p).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # float32: same maths, honest float32 tolerance
    got32 = log_vmf_normalizer(torch.tensor(k, dtype=torch.float32), p).numpy()
    np.testing.assert_allclose(got32, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("p,vol", [(2, 2 * math.pi), (3, 4 * math.pi), (4, 2 * math.pi ** 2)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_vmf_normalizer_at_zero_is_uniform_with_finite_slope(p, vol, dtype):
    k = torch.tensor([0.0, 1e-8, 1e-4], dtype=dtype, requires_grad=True)
    logc = log_vmf_normalizer(k, p)
    torch.testing.assert_close(logc, torch.full_like(logc, -math.log(vol)), rtol=0, atol=1e-6)
    (d,) = torch.autograd.grad(logc.sum(), k)
    # d/dk log C_p = -A_p(k), A_p(k) ~ k / p near 0; finite (not NaN) at k = 0
    assert torch.isfinite(d).all()
    torch.testing.assert_close(d, -k.detach() / p, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("p", [3, 4])
def test_vmf_normalizer_continuous_across_taylor_branch(p):
    k0 = 10 * 1e-7 ** 0.5  # the float64 switch point
    k = torch.tensor([k0 * (1 - 1e-9), k0 * (1 + 1e-9)], dtype=F64, requires_grad=True)
    logc = log_vmf_normalizer(k, p)
    (d,) = torch.autograd.grad(logc.sum(), k)
    assert abs(logc[1] - logc[0]).item() < 1e-14
    assert abs(d[1] - d[0]).item() < 1e-10


def test_von_mises_normalizer():
    k = torch.tensor([0.0, 0.5, 20.0], dtype=F64)
    ref = -np.log(2 * np.pi * special.ive(0, k.numpy())) - k.numpy()
    np.testing.assert_allclose(log_von_mises_normalizer(k).numpy(), ref, rtol=1e-13)


# ---------------------------------------------------------------------- kernels integrate to 1
def _trapz_grid(a, b, n):
    x = torch.linspace(a, b, n, dtype=F64)
    w = torch.full((n,), (b - a) / (n - 1), dtype=F64)
    w[[0, -1]] /= 2
    return x, w


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@pytest.mark.parametrize("t", TIMES)
def test_gaussian_kernel_integrates_to_one(s, t):
    y = torch.tensor([[1.3], [-0.4]], dtype=F64)
    x, w = _trapz_grid(-12, 12, 4001)
    tt = torch.full((x.shape[0],), t, dtype=F64)
    k = pairwise_log_kernel(pm.Euclidean(1), x[:, None], y, tt, s).exp()
    torch.testing.assert_close(w @ k, torch.ones(2, dtype=F64), rtol=0, atol=1e-9)


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@pytest.mark.parametrize("t", TIMES)
def test_torus_kernel_integrates_to_one(s, t):
    n = 200  # midpoint rule: spectrally accurate for periodic integrands
    a = (torch.arange(n, dtype=F64) + 0.5) / n * 2 * math.pi - math.pi
    T1 = pm.Torus(1)
    y1 = torch.tensor([[0.3], [-3.0]], dtype=F64)
    k1 = pairwise_log_kernel(T1, a[:, None], y1, torch.full((n,), t, dtype=F64), s).exp()
    torch.testing.assert_close(k1.sum(0) * (2 * math.pi / n), torch.ones(2, dtype=F64), rtol=0, atol=1e-10)
    T2 = pm.Torus(2)
    g = torch.stack(torch.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    y2 = torch.tensor([[0.3, -2.9], [3.1, 1.0]], dtype=F64)
    k2 = pairwise_log_kernel(T2, g, y2, torch.full((g.shape[0],), t, dtype=F64), s).exp()
    torch.testing.assert_close(k2.sum(0) * (2 * math.pi / n) ** 2, torch.ones(2, dtype=F64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@pytest.mark.parametrize("t", TIMES)
def test_s2_kernel_integrates_to_one(s, t):
    nth, nph = 300, 120  # midpoint rule in theta (with sin theta), periodic in phi
    th = (torch.arange(nth, dtype=F64) + 0.5) * math.pi / nth
    ph = (torch.arange(nph, dtype=F64) + 0.5) * 2 * math.pi / nph
    TH, PH = torch.meshgrid(th, ph, indexing="ij")
    x = torch.stack([TH.sin() * PH.cos(), TH.sin() * PH.sin(), TH.cos()], -1).reshape(-1, 3)
    w = (TH.sin() * (math.pi / nth) * (2 * math.pi / nph)).reshape(-1)
    y = torch.stack([unit([0.3, -0.5, 0.8]), unit([1.0, 0.2, -0.1])])
    k = pairwise_log_kernel(pm.Sphere(2), x, y, torch.full((x.shape[0],), t, dtype=F64), s).exp()
    torch.testing.assert_close(w @ k, torch.ones(2, dtype=F64), rtol=0, atol=2e-5)


def _radial_integral_s3(logk_of_cos, n=20001):
    """Integral over S^3 of a function of <mu, x> = cos(psi): 4 pi int_0^pi f(cos psi) sin^2 psi dpsi."""
    psi, w = _trapz_grid(0.0, math.pi, n)
    return 4 * math.pi * (w * psi.sin() ** 2 * logk_of_cos(psi.cos()).exp()).sum()


@pytest.mark.parametrize("factor,vol_factor", [(pm.Sphere(3), 1.0), (pm.SO3(), 0.5)], ids=["S3", "SO3"])
@pytest.mark.parametrize("t", TIMES)
def test_s3_so3_kernel_integrates_to_one_radially(factor, vol_factor, t):
    """Exact for any kappa (including the default schedule's 1e4 at t = 1): the kernel depends on x only
    through <y, x>. On SO3 the integral over rotations is half the one over S^3 (q and -q are one point)."""
    y = unit([0.1, -0.7, 0.2, 0.4])[None]
    e = torch.linalg.qr(torch.cat([y.T, torch.eye(4, dtype=F64)[:, :3]], 1))[0][:, 1]  # unit, orthogonal to y
    for s in [Schedule(), *SCHEDULES]:
        def logk(c):
            x = c[:, None] * y + (1 - c * c).clamp_min(0).sqrt()[:, None] * e
            return pairwise_log_kernel(factor, x, y, torch.full((c.shape[0],), t, dtype=F64), s)[:, 0]
        assert vol_factor * _radial_integral_s3(logk).item() == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("factor,vol", [(pm.Sphere(3), 2 * math.pi ** 2), (pm.SO3(), math.pi ** 2)],
                         ids=["S3", "SO3"])
@pytest.mark.parametrize("t", [0.0, 0.4, 0.6])
def test_s3_so3_kernel_integrates_to_one_monte_carlo(factor, vol, t):
    s = Schedule(sigma_min=0.1)
    x = factor.sample_base(100_000, generator=gen(1), dtype=F64)
    y = torch.stack([unit([0.1, -0.7, 0.2, 0.4]), unit([1.0, 0.0, 0.0, 0.0])])
    k = pairwise_log_kernel(factor, x, y, torch.full((x.shape[0],), t, dtype=F64), s).exp() * vol
    mean, se = k.mean(0), k.std(0) / math.sqrt(x.shape[0])
    assert ((mean - 1).abs() <= 5 * se + 1e-12).all(), (mean, se)


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@pytest.mark.parametrize("t", TIMES)
def test_s1_sphere_kernel_integrates_to_one(s, t):
    n = 400
    a = (torch.arange(n, dtype=F64) + 0.5) / n * 2 * math.pi
    x = torch.stack([a.cos(), a.sin()], -1)
    y = torch.stack([unit([0.6, -0.8]), unit([-1.0, 0.01])])
    k = pairwise_log_kernel(pm.Sphere(1), x, y, torch.full((n,), t, dtype=F64), s).exp()
    torch.testing.assert_close(k.sum(0) * (2 * math.pi / n), torch.ones(2, dtype=F64), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- kernel bookkeeping
PRODUCT = "R2 x T2 x S1 x S2 x S3 x SO3"  # parse reads S1 as T1: built by hand for a true S^1 factor


def product():
    return pm.Product(pm.Euclidean(2), pm.Torus(2), pm.Sphere(1), pm.Sphere(2), pm.Sphere(3), pm.SO3())


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_pairwise_matches_rowwise(dtype):
    M = product()
    s = Schedule(sigma_min=0.05)
    x = M.sample_base(6, generator=gen(2), dtype=dtype)
    y = M.sample_base(5, generator=gen(3), dtype=dtype)
    t = torch.tensor([0.0, 0.2, 0.5, 0.8, 0.95, 1.0], dtype=dtype)
    pw = pairwise_log_kernel(M, x, y, t, s)
    rows = log_kernel(M, x[:, None, :].expand(6, 5, -1), y[None].expand(6, 5, -1), t[:, None].expand(6, 5), s)
    tol = dict(rtol=1e-10, atol=1e-8) if dtype == F64 else dict(rtol=1e-4, atol=0.5)  # sigma_1 = 0.05
    torch.testing.assert_close(pw, rows, **tol)


def test_p0_is_the_base_for_every_factor_and_product():
    for spec in ["R3", "T1", "T3", "S1", "S2", "S3", "SO3", PRODUCT]:
        M = {"S1": pm.Product(pm.Sphere(1)), PRODUCT: product()}.get(spec) or pm.parse(spec)
        data = M.sample_base(9, generator=gen(4), dtype=F64) * (3 if spec == "R3" else 1)
        x = M.sample_base(11, generator=gen(5), dtype=F64)
        for s in SCHEDULES:
            P = MixturePath(M, data, schedule=s, chunk_size=4)
            torch.testing.assert_close(P.log_prob(x, 0.0), M.base_log_prob(x), rtol=0, atol=1e-12)
            _, dt, grad = P.log_prob_dt_grad(x, torch.zeros(11, dtype=F64))
            base_grad = M.proju(x, torch.func.vmap(torch.func.grad(M.base_log_prob))(x))
            torch.testing.assert_close(grad, base_grad, rtol=0, atol=1e-12)
            assert torch.isfinite(dt).all()


def test_unsupported_factors_are_refused():
    with pytest.raises(ValueError, match="CNFM kernels support spheres S\\^1, S\\^2, S\\^3, got S4"):
        pairwise_log_kernel(pm.Sphere(4), torch.ones(1, 5), torch.ones(1, 5), torch.zeros(1))
    with pytest.raises(ValueError, match="CNFM kernels support spheres"):
        MixturePath("R1 x S4", torch.tensor([[0.0, 1.0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"y must have shape \(B, 3\) for S2"):
        sample_kernel(pm.Sphere(2), torch.ones(4, 4), torch.zeros(4))
    with pytest.raises(ValueError, match="one time per row"):
        pairwise_log_kernel(pm.Euclidean(2), torch.ones(3, 2), torch.ones(4, 2), torch.zeros(4))


# ---------------------------------------------------------------------- samplers
def _mc_close(values, target, n_se=5.0):
    mean, se = values.mean().item(), values.std().item() / math.sqrt(values.numel())
    assert abs(mean - target) <= n_se * se + 1e-12, (mean, target, se)


@pytest.fixture(params=["loop", "fixed"])
def rejection_mode(request, monkeypatch):
    """Both rejection modes on the CPU: the loop over pending entries, and the fixed rounds without host
    sync that devices run (``vmf._sync_free``)."""
    if request.param == "fixed":
        monkeypatch.setattr(vmf, "_sync_free", lambda device: True)
    return request.param


@pytest.mark.parametrize("kappa", [0.0, 0.3, 4.0, 250.0])
def test_von_mises_sampler(kappa, rejection_mode):
    n = 40_000
    th = sample_von_mises(torch.full((n,), kappa, dtype=F64), gen(6))
    assert th.abs().max() <= math.pi
    a1 = special.ive(1, kappa) / special.ive(0, kappa)
    _mc_close(th.cos(), a1)
    _mc_close(th.sin(), 0.0)
    if kappa == 0:  # exact uniform: Kolmogorov-Smirnov against U[-pi, pi]
        assert stats.kstest(th.numpy(), stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3
    else:
        assert stats.kstest(th.numpy(), stats.vonmises(kappa).cdf).pvalue > 1e-3


def _cosine_cdf(kappa, p):
    """CDF of w = <mu, x> under vMF_p(kappa): density prop. to exp(kappa (w - 1)) (1 - w^2)^((p-3)/2)."""
    w = np.linspace(-1, 1, 200001)
    dens = np.exp(kappa * (w - 1)) * np.clip(1 - w * w, 0, None) ** ((p - 3) / 2)
    cdf = integrate.cumulative_trapezoid(dens, w, initial=0)
    return lambda v: np.interp(v, w, cdf / cdf[-1])


@pytest.mark.parametrize("p", [3, 4])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 6.0, 300.0])
def test_vmf_sampler(p, kappa, rejection_mode):
    n = 40_000
    mu = unit([0.2, -0.9, 0.4, 0.1][:p]).expand(n, p)
    x = sample_vmf(mu, torch.full((n,), kappa, dtype=F64), gen(7))
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(n, dtype=F64))
    w = (x * mu).sum(-1)
    a_p = special.ive(p / 2, kappa) / special.ive(p / 2 - 1, kappa) if kappa > 0 else 0.0
    _mc_close(w, a_p)  # mean resultant length A_p(kappa)
    assert stats.kstest(w.numpy(), _cosine_cdf(kappa, p)).pvalue > 1e-3
    # the tangent part is isotropic around mu: its mean vanishes
    tang = x - w[:, None] * mu
    for i in range(p):
        _mc_close(tang[:, i], 0.0)
    if kappa == 0:  # exact uniform: second moments 1/p
        for i in range(p):
            _mc_close(x[:, i] ** 2, 1 / p)


def test_fixed_rejection_keeps_each_entry_s_first_accepted_candidate_and_checks_the_end(monkeypatch):
    monkeypatch.setattr(vmf, "_FIXED_REJECTION_BLOCK", 4)
    monkeypatch.setattr(vmf, "_FIXED_REJECTION_ROUNDS", 8)
    n = 5
    first = torch.tensor([0, 3, 4, 7, 2])  # the round in which each entry is first accepted
    calls = []

    def propose(idx):
        r = 4 * len(calls) + torch.arange(idx.shape[0]) // n  # round of each candidate
        calls.append(idx)
        accept = r >= first[idx]
        return accept, (100 * r + idx).to(F64).unsqueeze(-1)

    out = vmf._rejection_fixed(n, 1, propose, "cpu", "test")
    torch.testing.assert_close(out[:, 0], (100 * first + torch.arange(n)).to(F64))
    assert len(calls) == 2 and all(torch.equal(c, torch.arange(n).repeat(4)) for c in calls)
    with pytest.raises(RuntimeError, match="test: rejection sampler did not finish"):
        vmf._rejection_fixed(n, 1, lambda idx: (torch.zeros(idx.shape, dtype=torch.bool),
                                                   torch.zeros(idx.shape[0], 1, dtype=F64)), "cpu", "test")


def test_vmf_sampler_concentrated_float32_stays_on_sphere():
    mu = unit([1.0, 0.0, 0.0, 1e-9]).to(torch.float32).expand(1000, 4)
    x = sample_vmf(mu, torch.full((1000,), 1e8), gen(8))
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(1000), rtol=0, atol=1e-6)
    ang = (x.double() - mu.double()).norm(dim=-1)
    assert ang.mean().item() == pytest.approx(math.sqrt(3e-8) * 0.92, rel=0.1)  # E|chi_3| / sqrt(kappa)


def test_kernel_samples_product_and_so3():
    M = product()
    s = Schedule(sigma_min=0.1)
    n = 30_000
    y = M.sample_base(1, generator=gen(9), dtype=F64).expand(n, -1)
    t = torch.full((n,), 0.6, dtype=F64)
    x = sample_kernel(M, y, t, s, gen(10))
    M.check_point(x)
    parts, ys = M.split(x), M.split(y)
    a, sg, k = s.alpha(t[0]).item(), s.sigma(t[0]).item(), s.kappa(t[0]).item()
    # Gaussian moments
    for i in range(2):
        _mc_close(parts[0][:, i], a * ys[0][0, i].item())
        _mc_close((parts[0][:, i] - a * ys[0][0, i]) ** 2, sg ** 2)
    # von Mises on each angle
    for i in range(2):
        _mc_close(torch.cos(parts[1][:, i] - ys[1][0, i]), special.ive(1, k) / special.ive(0, k))
    # S1, S2, S3 resultant lengths
    for j, p in [(2, 2), (3, 3), (4, 4)]:
        _mc_close((parts[j] * ys[j]).sum(-1), special.ive(p / 2, k) / special.ive(p / 2 - 1, k))
    # SO3: c = <q, y> has density prop. to cosh(k c) sqrt(1 - c^2) (the antipodal pair); its sign is a
    # fair coin and E[c^2] = 1 - 3 A_4(k) / k, the vMF second moment
    c = (parts[5] * ys[5]).sum(-1)
    _mc_close((c > 0).double(), 0.5)
    _mc_close(c * c, 1 - 3 * special.ive(2, k) / special.ive(1, k) / k)
    w = np.linspace(0, 1, 100001)
    cdf = integrate.cumulative_trapezoid(np.cosh(k * w) * np.sqrt(1 - w * w), w, initial=0)
    assert stats.kstest(c.abs().numpy(), lambda v: np.interp(v, w, cdf / cdf[-1])).pvalue > 1e-3


def test_kernel_samples_are_seeded_and_t0_is_the_base():
    M = product()
    y = M.sample_base(5, generator=gen(11), dtype=F64)
    t = torch.rand(5, generator=gen(12), dtype=F64)
    a = sample_kernel(M, y, t, generator=gen(13))
    b = sample_kernel(M, y, t, generator=gen(13))
    assert torch.equal(a, b)
    # t = 0: the draw does not depend on the centre (base law); Gaussian part is exactly standard normal
    y0 = M.sample_base(4000, generator=gen(14), dtype=F64)
    x0 = sample_kernel(M, y0, torch.zeros(4000, dtype=F64), generator=gen(15))
    assert stats.kstest(x0[:, 0].numpy(), "norm").pvalue > 1e-3
    assert stats.kstest(x0[:, 2].numpy(), stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3


# ---------------------------------------------------------------------- mixture path
def _mixture(n=7, sigma_min=0.2, kind="linear", seed=20, **kw):
    M = product()
    data = M.sample_base(n, generator=gen(seed), dtype=F64)
    return MixturePath(M, data, schedule=Schedule(kind, sigma_min=sigma_min), **kw)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_targets_match_finite_differences(kind):
    P = _mixture(kind=kind, chunk_size=3)
    M = P.manifold
    t = torch.tensor([0.1, 0.35, 0.6, 0.85], dtype=F64)
    x, _ = P.sample(t, generator=gen(21))
    logp, dt, grad = P.log_prob_dt_grad(x, t)
    torch.testing.assert_close(logp, P.log_prob(x, t), rtol=0, atol=1e-12)
    h = 1e-5
    fd_t = (P.log_prob(x, t + h) - P.log_prob(x, t - h)) / (2 * h)
    torch.testing.assert_close(dt, fd_t, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(M.proju(x, grad), grad, rtol=0, atol=1e-12)  # tangent
    for seed in range(3):
        u = M.random_tangent(x, generator=gen(30 + seed))
        fd_x = (P.log_prob(M.expmap(x, h * u), t) - P.log_prob(M.expmap(x, -h * u), t)) / (2 * h)
        torch.testing.assert_close(M.inner(x, grad, u), fd_x, rtol=1e-6, atol=1e-6)


def test_targets_finite_near_t1_with_default_schedule():
    M = product()
    data = M.sample_base(40, generator=gen(22), dtype=F64)
    P = MixturePath(M, data)
    t = torch.tensor([0.999, 1.0, 1.0], dtype=F64)
    x, _ = P.sample(t, generator=gen(23))
    logp, dt, grad = P.log_prob_dt_grad(x, t)
    assert torch.isfinite(logp).all() and torch.isfinite(dt).all() and torch.isfinite(grad).all()
    x32 = x.float()
    P32 = MixturePath(M, data.float())
    logp32, dt32, grad32 = P32.log_prob_dt_grad(x32, t.float())
    assert torch.isfinite(logp32).all() and torch.isfinite(dt32).all() and torch.isfinite(grad32).all()
    torch.testing.assert_close(logp32.double(), logp, rtol=1e-3, atol=0.5)


def test_chunked_equals_unchunked():
    big = _mixture(n=23, chunk_size=1000)
    M = big.manifold
    t = torch.linspace(0.05, 0.95, 6, dtype=F64)
    x, _ = big.sample(t, generator=gen(24))
    ref = big.log_prob_dt_grad(x, t)
    for chunk in (1, 5, 22):
        small = MixturePath(M, big.data, schedule=big.schedule, chunk_size=chunk)
        torch.testing.assert_close(small.log_prob(x, t), ref[0], rtol=1e-12, atol=1e-12)
        for a, b in zip(small.log_prob_dt_grad(x, t), ref):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_mixture_is_mean_of_kernels():
    P = _mixture(n=5)
    t = torch.tensor([0.2, 0.9], dtype=F64)
    x, _ = P.sample(t, generator=gen(25))
    k = torch.stack([log_kernel(P.manifold, x, P.data[j].expand_as(x), t, P.schedule) for j in range(5)], 1)
    torch.testing.assert_close(P.log_prob(x, t), torch.logsumexp(k, 1) - math.log(5))


def test_conditional_reduces_to_unconditional_when_conditions_are_equal():
    P = _mixture(n=11, chunk_size=4)
    C = MixturePath(P.manifold, P.data, schedule=P.schedule, conditions=torch.full((11, 2), 3.0), chunk_size=4)
    t = torch.tensor([0.3, 0.7, 0.95], dtype=F64)
    x, _ = P.sample(t, generator=gen(26))
    cond = torch.tensor([[3.0, 3.0], [-1.0, 5.0], [3.0, 3.0]], dtype=F64)
    torch.testing.assert_close(C.log_prob(x, t, cond), P.log_prob(x, t))
    for a, b in zip(C.log_prob_dt_grad(x, t, cond), P.log_prob_dt_grad(x, t)):
        torch.testing.assert_close(a, b)


def test_conditional_weights_and_sampling():
    M = pm.parse("R1 x S2")
    data = M.sample_base(6, generator=gen(27), dtype=F64)
    cond = torch.tensor([0.0, 0.0, 0.0, 10.0, 10.0, 10.0], dtype=F64)[:, None]
    P = MixturePath(M, data, schedule=Schedule(sigma_min=0.2), conditions=cond, chunk_size=4)
    t = torch.tensor([0.5, 0.9], dtype=F64)
    x, _ = P.sample(t, generator=gen(28))
    # by hand: Nadaraya-Watson weights on the standardised conditions
    cs = (cond - cond.mean()) / cond.std(unbiased=False)
    c = torch.tensor([[0.0], [10.0]], dtype=F64)
    csb = (c - cond.mean()) / cond.std(unbiased=False)
    logw = torch.log_softmax(-0.5 * (csb - cs.T) ** 2 / P.cond_bandwidth ** 2, 1)
    k = torch.stack([log_kernel(M, x, data[j].expand_as(x), t, P.schedule) for j in range(6)], 1)
    torch.testing.assert_close(P.log_prob(x, t, c), torch.logsumexp(logw + k, 1))
    assert P.cond_bandwidth == pytest.approx(6 ** (-1 / 5))  # Scott's rule, C = 1
    # sampling follows the weights: with a tiny bandwidth only the matching group is picked
    Q = MixturePath(M, data, conditions=cond, cond_bandwidth=0.05, chunk_size=4)
    tb = torch.full((400,), 0.5, dtype=F64)
    _, idx = Q.sample(tb, generator=gen(29), condition=torch.full((400, 1), 10.0))
    assert (idx >= 3).all()
    assert set(idx.tolist()) == {3, 4, 5}
    # with a huge bandwidth the weights are uniform over all six
    R = MixturePath(M, data, conditions=cond, cond_bandwidth=1e6, chunk_size=4)
    _, idx = R.sample(tb, generator=gen(29), condition=torch.zeros(1))
    counts = torch.bincount(idx, minlength=6).double()
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_conditional_index_follows_the_weights(dtype):
    """The chunked Gumbel-max draw (noise in the logits' dtype) picks component j with weight w_j(c)."""
    M = pm.parse("R1")
    cond = torch.linspace(0.0, 3.0, 7, dtype=F64)[:, None]
    P = MixturePath(M, torch.zeros(7, 1, dtype=F64), conditions=cond, cond_bandwidth=0.4, chunk_size=3)
    P.to(dtype=dtype)
    n = 30_000
    _, idx = P.sample(torch.full((n,), 0.5, dtype=dtype), generator=gen(31),
                      condition=torch.full((n, 1), 1.2, dtype=dtype))
    cs = (cond - cond.mean()) / cond.std(unbiased=False)
    csb = (1.2 - cond.mean()) / cond.std(unbiased=False)
    w = torch.softmax(-0.5 * (csb - cs[:, 0]) ** 2 / 0.4 ** 2, 0)
    counts = torch.bincount(idx, minlength=7).double()
    assert (w > 0.01).sum() >= 4, "the test weights should be spread over several components"
    assert stats.chisquare(counts.numpy(), (n * w).numpy()).pvalue > 1e-3


def test_sample_uses_index_and_is_seeded():
    P = _mixture(n=9)
    t = torch.tensor([0.2, 0.5, 0.99], dtype=F64)
    x1, i1 = P.sample(t, generator=gen(31))
    x2, i2 = P.sample(t, generator=gen(31))
    assert torch.equal(x1, x2) and torch.equal(i1, i2)
    idx = torch.tensor([8, 0, 8])
    _, i3 = P.sample(t, generator=gen(32), index=idx)
    assert torch.equal(i3, idx)
    with pytest.raises(ValueError, match=r"index must be \(3,\) integers in \[0, 9\)"):
        P.sample(t, index=torch.tensor([0, 1, 9]))


def test_max_components_subsets():
    P = _mixture(n=30, chunk_size=4)
    t = torch.tensor([0.3, 0.6], dtype=F64)
    x, _ = P.sample(t, generator=gen(33))
    full = P.log_prob(x, t)
    same = MixturePath(P.manifold, P.data, schedule=P.schedule, max_components=30)
    torch.testing.assert_close(same.log_prob(x, t), full)  # subset of everything: exact
    sub = MixturePath(P.manifold, P.data, schedule=P.schedule, max_components=8, chunk_size=3)
    a = sub.log_prob(x, t, generator=gen(34))
    b = sub.log_prob(x, t, generator=gen(34))
    c = sub.log_prob(x, t, generator=gen(35))
    assert torch.equal(a, b) and not torch.equal(a, c)  # a fresh subset per call, reproducible
    # the subset mixture is unbiased for p (so E[log] <= log p): average many subsets
    g = gen(36)
    est = torch.stack([sub.log_prob(x, t, generator=g) for _ in range(300)])
    p_hat, se = est.exp().mean(0), est.exp().std(0) / math.sqrt(300)
    assert ((p_hat - full.exp()).abs() <= 5 * se).all()
    assert (est.mean(0) <= full + 1e-9).all()
    logp, dt, grad = sub.log_prob_dt_grad(x, t, generator=gen(34))
    torch.testing.assert_close(logp, a)


def test_stratified_subset_is_unbiased_and_keeps_the_source():
    P = _mixture(n=30, chunk_size=4)
    t = torch.tensor([0.3, 0.6, 0.97], dtype=F64)
    src = torch.tensor([4, 17, 29])
    x, _ = P.sample(t, generator=gen(40), index=src)
    full = P.log_prob(x, t)
    sub = MixturePath(P.manifold, P.data, schedule=P.schedule, max_components=8, chunk_size=3)
    # by hand: the source kernel plus N/M times the subset's other kernels, over N
    g = gen(41)
    index = sub._components(g)
    k = torch.stack([log_kernel(P.manifold, x, P.data[j].expand_as(x), t, P.schedule) for j in range(30)], 1)
    others = torch.where(index.unsqueeze(0) == src.unsqueeze(1), -math.inf, k[:, index] + math.log(30 / 8))
    hand = torch.logsumexp(torch.cat([k.gather(1, src[:, None]), others], 1), 1) - math.log(30)
    torch.testing.assert_close(sub.log_prob(x, t, generator=gen(41), source_index=src), hand)
    # unbiased for p over fresh subsets, and far less spread than the plain subset near t = 1
    g1, g2 = gen(42), gen(42)
    strat = torch.stack([sub.log_prob(x, t, generator=g1, source_index=src) for _ in range(300)])
    plain = torch.stack([sub.log_prob(x, t, generator=g2) for _ in range(300)])
    p_hat, se = strat.exp().mean(0), strat.exp().std(0) / math.sqrt(300)
    assert ((p_hat - full.exp()).abs() <= 5 * se + 1e-12).all()
    err_strat, err_plain = (strat - full).abs().mean(0), (plain - full).abs().mean(0)
    assert err_strat[2] < 0.2 * err_plain[2], (err_strat, err_plain)
    # the targets are the derivatives of this estimate (same subset), and a source-only chunk stays finite
    for chunk in (1, 3):
        P1 = MixturePath(P.manifold, P.data, schedule=P.schedule, max_components=8, chunk_size=chunk)
        logp, dt, grad = P1.log_prob_dt_grad(x, t, generator=gen(43), source_index=src)
        torch.testing.assert_close(logp, P1.log_prob(x, t, generator=gen(43), source_index=src))
        assert torch.isfinite(dt).all() and torch.isfinite(grad).all()
        h = 1e-5
        fd_t = (P1.log_prob(x, t + h, generator=gen(43), source_index=src)
                - P1.log_prob(x, t - h, generator=gen(43), source_index=src)) / (2 * h)
        torch.testing.assert_close(dt, fd_t, rtol=1e-6, atol=1e-6)
        u = P.manifold.random_tangent(x, generator=gen(44))
        M = P.manifold
        fd_x = (P1.log_prob(M.expmap(x, h * u), t, generator=gen(43), source_index=src)
                - P1.log_prob(M.expmap(x, -h * u), t, generator=gen(43), source_index=src)) / (2 * h)
        torch.testing.assert_close(M.inner(x, grad, u), fd_x, rtol=1e-6, atol=1e-6)
    # without a subset the source changes nothing; a bad source index is named
    torch.testing.assert_close(P.log_prob(x, t, source_index=src), full, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"source_index must be \(3,\) integers in \[0, 30\)"):
        sub.log_prob(x, t, source_index=torch.tensor([0, 1, 30]))


def test_stratified_subset_conditional_matches_full_when_the_subset_is_everything_else():
    M = pm.parse("R1 x S2")
    data = M.sample_base(12, generator=gen(45), dtype=F64)
    cond = torch.linspace(0, 3, 12, dtype=F64)[:, None]
    full = MixturePath(M, data, schedule=Schedule(sigma_min=0.2), conditions=cond, chunk_size=5)
    # a subset of N - 1 = 11 always holds all other rows when it misses the source: then N/M * sum over the
    # others differs from the exact sum only by the factor N / M, the same in numerator and denominator
    sub = MixturePath(M, data, schedule=full.schedule, conditions=cond, chunk_size=5, max_components=11)
    t = torch.tensor([0.4, 0.9], dtype=F64)
    c = torch.tensor([[0.5], [2.5]], dtype=F64)
    x, src = full.sample(t, generator=gen(46), condition=c)
    for seed in range(6):
        idx = sub._components(gen(47 + seed))
        got = sub.log_prob(x, t, c, generator=gen(47 + seed), source_index=src)
        missing = set(range(12)) - set(idx.tolist())
        if all(int(s) in missing for s in src):  # the subset is exactly the other rows for both points
            torch.testing.assert_close(got, full.log_prob(x, t, c))
        logp, dt, grad = sub.log_prob_dt_grad(x, t, c, generator=gen(47 + seed), source_index=src)
        torch.testing.assert_close(logp, got)


def test_mixture_input_errors():
    M = pm.parse("R2 x S2")
    data = M.sample_base(5, generator=gen(37), dtype=F64)
    with pytest.raises(ValueError, match=r"data must be a tensor of shape \(N, 5\)"):
        MixturePath(M, data[:, :4])
    bad = data.clone()
    bad[2, 3] = 5.0
    with pytest.raises(ValueError, match="norm differs from 1"):
        MixturePath(M, bad)
    with pytest.raises(ValueError, match=r"conditions must have shape \(5, C\)"):
        MixturePath(M, data, conditions=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="cond_bandwidth was given without conditions"):
        MixturePath(M, data, cond_bandwidth=0.3)
    with pytest.raises(ValueError, match="max_components must be a positive integer"):
        MixturePath(M, data, max_components=0)
    P = MixturePath(M, data)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        P.log_prob(data, 1.5)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(5,\)"):
        P.log_prob(data, torch.zeros(3))
    with pytest.raises(ValueError, match="the path has no conditions"):
        P.log_prob(data, 0.5, condition=torch.zeros(5, 1))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 5\)"):
        P.log_prob_dt_grad(data[:, :3], 0.5)


@pytest.mark.parametrize("spec", ["PRODUCT", "R2 x T2 x S1 x S2 x S3", "S2", "SO3 x R1 x SO3", "I2[-1:2,0:3] x S2"])
def test_bilinear_targets_equal_the_autograd_reference(spec):
    """The closed-form targets (log k = <U(x, t), psi(y)> + c, SO3 by its two signs) equal the reference
    autograd through every chunk: plain, subset with sources, conditional."""
    M = product() if spec == "PRODUCT" else pm.parse(spec)
    data = M.sample_base(30, generator=gen(60), dtype=F64)
    cond = torch.linspace(0, 3, 30, dtype=F64)[:, None]
    t = torch.tensor([0.05, 0.4, 0.8, 0.99], dtype=F64)
    for kw, call in (({}, {}), ({"max_components": 8}, {"source_index": torch.tensor([3, 7, 11, 29])}),
                     ({"conditions": cond}, {"condition": torch.tensor([[0.5], [1.0], [2.0], [2.9]], dtype=F64)})):
        fast = MixturePath(M, data, schedule=Schedule(sigma_min=0.1), chunk_size=7, **kw)
        ref = MixturePath(M, data, schedule=Schedule(sigma_min=0.1), chunk_size=7, **kw)
        ref.bilinear = False
        x, _ = fast.sample(t, generator=gen(61), index=torch.tensor([3, 7, 11, 29]))
        got = fast.log_prob_dt_grad(x, t, generator=gen(62), **call)
        want = ref.log_prob_dt_grad(x, t, generator=gen(62), **call)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(fast.log_prob(x, t, generator=gen(62), **call),
                                   ref.log_prob(x, t, generator=gen(62), **call), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exp_floor_of_the_targets_is_a_normal_number(dtype):
    """The floored weights, and their products with the centres' features, must not be denormal numbers
    (an op landing on them costs ~40x on a CPU): in float32 exp(log(tiny)) itself rounds below tiny."""
    weight = torch.tensor(MixturePath._exp_floor(dtype), dtype=dtype).exp()
    assert weight * 1e-12 >= torch.finfo(dtype).tiny  # a feature of size 1e-12 still gives a normal product
    assert weight * 1e6 < torch.finfo(dtype).eps  # a million floored weights: below the dtype's resolution


def test_targets_do_not_depend_on_the_calls_before():
    """The chunk workspace is reused between calls: batches of other sizes in between, a batch above the
    workspace limit (fresh buffers) and a dtype change leave the targets exactly those of a fresh path."""
    import posegen.paths.mixture as mixture

    M = pm.parse("S2")
    data = M.sample_base(50, generator=gen(70), dtype=F64)
    P = MixturePath(M, data, chunk_size=16)
    t = torch.linspace(0.1, 0.99, 9, dtype=F64)
    x, _ = P.sample(t, generator=gen(71))
    first = P.log_prob_dt_grad(x, t)
    P.log_prob_dt_grad(x[:4], t[:4])
    for a, b in zip(P.log_prob_dt_grad(x, t), first):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    xs, ts = x.repeat(3, 1), t.repeat(3)
    old, mixture.WORKSPACE_MAX = mixture.WORKSPACE_MAX, 16 * 20  # 27 rows: above the limit
    try:
        big = P.log_prob_dt_grad(xs, ts)
    finally:
        mixture.WORKSPACE_MAX = old
    for a, b in zip(big, MixturePath(M, data, chunk_size=16).log_prob_dt_grad(xs, ts)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    got = P.to(dtype=torch.float32).log_prob_dt_grad(x.float(), t.float())
    for a, b in zip(got, MixturePath(M, data.float(), chunk_size=16).log_prob_dt_grad(x.float(), t.float())):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("spec", ["S2", "R2", "T1", "SO3", "S1 x R1"])
def test_moment_series_meets_its_stated_tolerance(spec):
    """The series' log Z and psi_bar against the float64 direct sums, up to the edge of its radius: within
    TOLERANCE (float32) of log Z, and of psi_bar relative to R; float64 work never takes the series."""
    from posegen.paths.kernels import centre_features
    from posegen.paths.series import TOLERANCE, moment_series

    M = pm.parse(spec)
    psi = centre_features(M, M.sample_base(400, generator=gen(80), dtype=F64))
    psi = psi.reshape(-1, psi.shape[-1])
    assert moment_series(psi, F64) is None
    series = moment_series(psi, torch.float32)
    assert series is not None and series.r0 >= 0.5
    U = torch.randn(64, psi.shape[-1], generator=gen(81), dtype=F64)
    U = U / U.norm(dim=-1, keepdim=True) * torch.linspace(0, 1, 64, dtype=F64)[:, None] * series.r0 / series.R
    assert bool(series.applies(U).all()) and not bool(series.applies(U * 1.01).all())
    Q = series._monomials_t(U.T).T @ series.moments  # the float64 series, before the cast to U's dtype
    log_z = torch.log(Q[:, 0]) + U @ series.mu
    psi_bar = Q[:, 1:] / Q[:, :1] + series.mu
    L = U @ psi.T
    torch.testing.assert_close(log_z, torch.logsumexp(L, 1), rtol=0, atol=TOLERANCE[torch.float32])
    torch.testing.assert_close(psi_bar, torch.softmax(L, 1) @ psi, rtol=0, atol=TOLERANCE[torch.float32] * series.R)


def test_float32_targets_with_the_series_match_float64():
    """A float32 path serves the early rows of a batch by the moment series, the late ones by direct sums:
    the early rows agree with the float64 targets (which take no series) to float32 accuracy (closer than the
    float32 direct sums do), the late ones as well as the float32 direct sums do (near t = 1 those are far
    off the float64 ones: the t-derivative cancels terms of size kappa = 400 and its slope)."""
    M = pm.parse("S2")
    data = M.sample_base(3000, generator=gen(90), dtype=F64)
    ref = MixturePath(M, data, chunk_size=1000)
    fast = MixturePath(M, data.float(), chunk_size=1000)
    t = torch.linspace(0.001, 1, 64, dtype=F64)
    x, _ = ref.sample(t, generator=gen(91))
    from posegen.paths.kernels import point_features

    near = fast._moment_series(torch.float32).applies(point_features(M, x.float(), t.float())[0])
    assert bool(near.any()) and bool((~near).any())
    want = ref.log_prob_dt_grad(x, t)
    got = fast.log_prob_dt_grad(x.float(), t.float())
    dense = MixturePath(M, data.float(), chunk_size=1000)
    dense._series[torch.float32] = None  # direct sums for every row
    direct = dense.log_prob_dt_grad(x.float(), t.float())
    for a, b, c in zip(got, want, direct):
        torch.testing.assert_close(a[near].double(), b[near], rtol=1e-6, atol=1e-5)
        err, err_direct = (a.double() - b)[~near].abs().max(), (c.double() - b)[~near].abs().max()
        assert err <= 1.05 * err_direct + 1e-6
    torch.testing.assert_close(fast.log_prob(x.float(), t.float())[near].double(), ref.log_prob(x, t)[near],
                               rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("spec", ["S2", "SO3 x R1"])
def test_shifted_sums_redo_rows_far_from_the_probes(spec, monkeypatch):
    """The plain mixture's sums shift each row by a lower bound of its largest log-kernel from a few probe
    components; a point far from every probe at a large kappa overflows that shift and is redone exactly.
    With one probe, the far rows are redone and all targets still equal the autograd reference (also on a
    subset of components without sources)."""
    import posegen.paths.mixture as mixture

    M = pm.parse(spec)
    data = M.sample_base(40, generator=gen(100), dtype=F64)
    t = torch.tensor([0.3, 0.9, 0.999, 0.999], dtype=F64)
    redone = []
    dense = MixturePath._dense_lse

    def spy(self, U, *args, **kw):
        redone.append(U.shape[0])
        return dense(self, U, *args, **kw)

    monkeypatch.setattr(mixture, "SHIFT_PROBES", 1)
    monkeypatch.setattr(MixturePath, "_dense_lse", spy)
    for kw in ({}, {"max_components": 25}):
        fast = MixturePath(M, data, schedule=Schedule(sigma_min=0.05), chunk_size=16, **kw)
        ref = MixturePath(M, data, schedule=Schedule(sigma_min=0.05), chunk_size=16, **kw)
        ref.bilinear = False
        # the last two points drawn around the centre least like the probe (row 0), at kappa ~ 400
        far = int(torch.argmin(data @ data[0] if spec == "S2" else (data[:, :4] @ data[0, :4]).abs()))
        x, _ = fast.sample(t, generator=gen(101), index=torch.tensor([5, 17, far, far]))
        redone.clear()
        got = fast.log_prob_dt_grad(x, t, generator=gen(102))
        if not kw:  # the probe is row 0 (on a subset, its first row: a random one)
            assert redone and 0 < redone[0] < 4  # some rows, not all
        for a, b in zip(got, ref.log_prob_dt_grad(x, t, generator=gen(102))):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------- per-factor schedules, data-chosen end point
def test_factor_schedule_gives_each_factor_its_own_end_point():
    from posegen.paths import FactorSchedule

    M = pm.parse("R2 x S2")
    fs = FactorSchedule("linear", [0.2, 0.01], dims=[2, 2])
    one = torch.ones(3, dtype=torch.float64)
    assert torch.allclose(fs.factor(0).sigma(one), torch.full((3,), 0.2, dtype=torch.float64))
    assert torch.allclose(fs.factor(1).kappa(one), torch.full((3,), 1e4, dtype=torch.float64))
    # the product kernel is the product of the factors' kernels, each with its own end point
    g = gen(0)
    x, y = M.sample_base(5, generator=g, dtype=torch.float64), M.sample_base(5, generator=g, dtype=torch.float64)
    t = torch.rand(5, generator=g, dtype=torch.float64)
    want = (log_kernel(pm.parse("R2"), x[:, :2], y[:, :2], t, Schedule(sigma_min=0.2))
            + log_kernel(pm.parse("S2"), x[:, 2:], y[:, 2:], t, Schedule(sigma_min=0.01)))
    assert torch.allclose(log_kernel(M, x, y, t, fs), want, atol=1e-12)
    assert torch.allclose(pairwise_log_kernel(M, x, y, t, fs).diagonal(), want, atol=1e-12)
    # noise: the dimension-weighted harmonic mean of the factors' sigma_t; sigma_t itself when they agree
    same = FactorSchedule("cosine", [0.05, 0.05], dims=[2, 1])
    assert torch.allclose(same.noise(t), Schedule("cosine", 0.05).sigma(t), atol=1e-15)
    assert torch.allclose(fs.noise(one), torch.full((3,), 4 / (2 / 0.2 + 2 / 0.01), dtype=torch.float64))
    assert make_schedule(fs.options()).sigma_mins == [0.2, 0.01]
    with pytest.raises(ValueError, match="end points for 2 factors, but R2 x S2 x T1 has 3"):
        MixturePath("R2 x S2 x T1", pm.parse("R2 x S2 x T1").sample_base(4), schedule=fs)


def _silverman(n):
    return 1.06 * n ** -0.2  # the normal-reference KDE bandwidth of unit-variance data in one dimension


def test_select_endpoint_finds_the_kde_bandwidth_of_gaussian_data():
    from posegen.paths.endpoint import select_endpoint

    x = torch.randn(4000, 1, generator=gen(0), dtype=torch.float64)
    choice = select_endpoint("R1", x)
    # the held-out optimum of a Gaussian KDE of Gaussian data is near the normal-reference rule; the grid steps
    # by sqrt(2) and the held-out score is noisy, so within a factor of 2
    assert _silverman(4000) / 2 < choice.sigma_min[0] < _silverman(4000) * 2
    assert choice.n_holdout + choice.n_centres <= 4000 and choice == select_endpoint("R1", x)  # deterministic


def test_select_endpoint_holds_out_contiguous_blocks_so_sequences_do_not_shrink_it():
    """Trajectories (rows in order, frames 1e-3 apart): scored against their own neighbours in time the
    bandwidth would be the frame spacing; held out by blocks it is the spread between trajectories."""
    from posegen.paths.endpoint import select_endpoint

    starts = torch.randn(40, 1, 1, generator=gen(1), dtype=torch.float64)
    frames = starts + 1e-3 * torch.arange(100, dtype=torch.float64).view(1, 100, 1)
    seq = frames.reshape(4000, 1)
    shuffled = seq[torch.randperm(4000, generator=gen(2))]
    assert select_endpoint("R1", seq).sigma_min[0] > 0.05
    assert select_endpoint("R1", shuffled).sigma_min[0] < 0.01


def test_select_endpoint_gives_each_factor_its_own_bandwidth():
    from posegen.paths.endpoint import select_endpoint

    mu = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(3000, 3)
    sphere = sample_vmf(mu, torch.full((3000,), 1e4, dtype=torch.float64), gen(3))
    wide = torch.randn(3000, 1, generator=gen(4), dtype=torch.float64)
    choice = select_endpoint("R1 x S2", torch.cat([wide, sphere], -1))
    s_r, s_s = choice.sigma_min
    # vMF(1e4) has angular spread 0.01: its kernel must be far narrower than that of unit-variance R1 data
    assert s_s < 0.01 < 0.05 < s_r
    sched = choice.schedule(pm.parse("R1 x S2"), "cosine")
    assert sched.kind == "cosine" and sched.sigma_mins == choice.sigma_min and sched.dims == [1, 2]


def test_select_endpoint_refuses_bad_input():
    from posegen.paths.endpoint import select_endpoint

    with pytest.raises(ValueError, match=r"data must be a tensor of shape \(N, 3\) with N >= 2 for S2, got \(1, 3\)"):
        select_endpoint("S2", torch.tensor([[0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="grid must hold end points in"):
        select_endpoint("R1", torch.randn(10, 1), grid=[0.5, 2.0])
    with pytest.raises(ValueError, match="held_blocks < blocks"):
        select_endpoint("R1", torch.randn(10, 1), blocks=2, held_blocks=2)


def test_select_endpoint_on_robot_factors_intervals_tori_and_so3():
    """Joints with limits, angles and a rotation, each concentrated to its own degree: every factor gets its
    own end point, ordered like the spreads, and the CNFM objective trains on the resulting path."""
    from posegen.flow import PoseFlow
    from posegen.objectives.cnfm import CNFM
    from posegen.paths.endpoint import select_endpoint

    g = gen(8)
    n = 1000
    I = pm.Interval([-1.0, 0.0], [1.0, 2.0])
    joints = I.projx(torch.stack([0.3 + 0.02 * torch.randn(n, generator=g, dtype=torch.float64),
                                  1.0 + 0.02 * torch.randn(n, generator=g, dtype=torch.float64)], -1))
    angle = pm.wrap_angle(2.0 + 0.3 * torch.randn(n, 1, generator=g, dtype=torch.float64))
    q = sample_vmf(torch.tensor([0.0, 0.0, 0.6, 0.8], dtype=torch.float64).expand(n, 4),
                   torch.full((n,), 1e4, dtype=torch.float64), g)
    M = pm.Product(I, pm.Torus(1), pm.SO3())
    data = torch.cat([joints, angle, q], -1)
    choice = select_endpoint(M, data)
    s_i, s_t, s_q = choice.sigma_min
    # the torus angle is spread 0.3 rad, the rotation ~0.01: its kernel is the narrowest; the interval's
    # kernel lives in the chart z (spread ~0.02 * z'(x) ~ 0.05 there), between the two
    assert s_q < s_i < s_t and s_t > 0.05 and s_q < 0.02
    obj = CNFM()
    flow = PoseFlow(M, hidden=16, depth=2).double()
    obj.setup(flow, data)
    assert obj.schedule.sigma_mins == choice.sigma_min
    loss = obj.loss(flow, data[:64], generator=gen(9))
    assert torch.isfinite(loss) and loss.requires_grad
