"""Joints with limits (:class:`posegen.manifolds.Interval`): inside the limits by construction, exact
densities w.r.t. Lebesgue measure on the box, CNFM kernels, data checks, and every objective.

The generic geometry properties run in ``tests/test_manifolds.py`` (``I1``, ``I2``, ``R1 x I1`` and
``R3 x I7 x SO3`` are among its manifolds); here are the properties only an interval has.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import posegen as pg
from posegen.data.validate import validate_points
from posegen.manifolds import Interval, parse
from posegen.paths.kernels import log_kernel, sample_kernel
from posegen.training import train

PANDA = [[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698],
         [-2.8973, 2.8973], [-0.0175, 3.7525], [-2.8973, 2.8973]]


def make_flow(M, std=1.0, seed=0, steps=16, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    flow = pg.PoseFlow(M, hidden=16, depth=2, solver=dict(method="rk4", steps=steps), **kw)
    nn.init.normal_(flow.net.out.weight, std=std)
    return flow.to(dtype)


def chart_grid(I: Interval, n=400, zmax=7.0, dtype=torch.float64):
    """Nodes on the box ``(n, 1)`` and weights ``(n,)`` for the integral over the box, by Gauss-Legendre in
    the chart: ``int p(x) dx = int p(g(z)) g'(z) dz`` (the density may be steep near a limit in x, never in
    z)."""
    z, w = np.polynomial.legendre.leggauss(n)
    z, w = torch.tensor(z * zmax, dtype=dtype), torch.tensor(w * zmax, dtype=dtype)
    x = I.from_chart(z.unsqueeze(-1))
    dg = torch.exp(-I.kernel_coords(x)[1])  # g'(z) = |dx/dz|
    return x, w * dg


# ---------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("spec, limits", [("I1", [[-0.5, 2.0]]), ("I2", PANDA[3:5]), ("R1 x I1", PANDA[5:6])])
def test_exp_log_prob_integrates_to_one(spec, limits):
    M = parse(spec, limits=limits)
    flow = make_flow(M, std=1.5)
    axes = []  # one 1-D rule per coordinate, combined as a tensor grid
    for f in M.factors:
        for i in range(f.dim):
            if isinstance(f, Interval):
                x, w = chart_grid(Interval(*f.limits[i].tolist()), n=200 if M.dim == 1 else 60)
                axes.append((x[:, 0], w))
            else:  # R1: Gauss-Legendre on [-8, 8]
                t, w = np.polynomial.legendre.leggauss(60)
                axes.append((torch.tensor(8 * t), torch.tensor(8 * w)))
    X = torch.cartesian_prod(*[a[0] for a in axes]).reshape(-1, len(axes))
    W = torch.cartesian_prod(*[a[1] for a in axes]).reshape(-1, len(axes)).prod(-1)
    p = flow.log_prob(X).exp()
    assert p.max() * math.exp(M.log_volume if M.compact else 0.0) > 2 or not M.compact, "flow too close to uniform"
    total = (p * W).sum().item()
    assert abs(total - 1) < 5e-3, total


# ---------------------------------------------------------------------- inside the limits by construction
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method, steps, std", [("euler", 1, 30.0), ("euler", 3, 30.0), ("rk4", 2, 30.0),
                                                ("dopri5", 1, 2.0)])
def test_samples_are_inside_the_limits_for_any_step(dtype, method, steps, std):
    M = parse("R1 x I7", limits=PANDA)
    flow = make_flow(M, std=std, dtype=dtype)  # std 30: a violent field, huge steps in z
    x = flow.sample(2000 if method != "dopri5" else 200, seed=0, method=method, steps=steps, atol=1e-3,
                    rtol=1e-3)
    q = x[:, 1:].double()
    lim = torch.tensor(PANDA, dtype=torch.float64)
    assert torch.isfinite(x).all()
    assert ((q >= lim[:, 0]) & (q <= lim[:, 1])).all(), "a sample left the joint limits"
    # the samples reach close to the limits (the field is that strong), yet never beyond
    assert ((q - lim[:, 0]).min(0).values < 0.05 * (lim[:, 1] - lim[:, 0])).any()


def test_chart_round_trip_and_precision_near_both_limits():
    I = Interval([-2.8973, -0.0175], [2.8973, 3.7525])
    for dtype in (torch.float64, torch.float32):
        lo, hi = I.lo.to(dtype), I.hi.to(dtype)
        eps = 1e-5 if dtype == torch.float32 else 1e-12
        x = torch.stack([lo + eps, hi - eps, (lo + hi) / 2, lo, hi])
        z = I.to_chart(x)
        assert torch.isfinite(z).all()
        assert (z[0] < -3).all() and (z[1] > 3).all(), "points near a limit are far out in the chart"
        torch.testing.assert_close(I.from_chart(z[:3]), x[:3], atol=4 * torch.finfo(dtype).eps * 4, rtol=0)
        huge = torch.tensor([[-1e30, 1e30], [1e30, -1e30]], dtype=dtype)
        g = I.from_chart(huge)
        assert ((g >= lo) & (g <= hi)).all()
        torch.testing.assert_close(g[0], torch.stack([lo[0], hi[1]]))


def test_chart_maps_have_the_slopes_of_g_everywhere_including_the_midpoint():
    """Autograd through ``from_chart`` is ``g'(z) = (hi - lo) phi(z)`` and through ``to_chart`` its inverse, at
    z = 0 (a joint at the middle of its range: the two halves of each map meet there) and on both sides; a
    likelihood's divergence differentiates through them."""
    I = Interval([-2.8973, -0.0175], [2.8973, 3.7525])
    w = I.hi - I.lo
    z = torch.tensor([[0.0, 0.0], [-0.0, 1e-8], [-1.3, 2.2], [4.0, -5.0]], dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(I.from_chart(z).sum(), z)
    phi = torch.exp(-0.5 * z.detach() ** 2) / math.sqrt(2 * math.pi)
    torch.testing.assert_close(dx, w * phi, rtol=1e-12, atol=0)
    x = I.from_chart(z.detach()).requires_grad_(True)
    (dz,) = torch.autograd.grad(I.to_chart(x).sum(), x)
    torch.testing.assert_close(dz, 1 / (w * phi), rtol=1e-9, atol=0)


def test_head_vanishes_at_the_limits_and_is_a_chart_velocity_inside():
    I = Interval(-1.0, 2.0)
    x = torch.tensor([[-1.0], [2.0], [0.3]], dtype=torch.float64)
    h = torch.tensor([[5.0], [5.0], [5.0]], dtype=torch.float64)
    v = I.head(x, h)
    assert v[:2].abs().max() < 1e-100
    torch.testing.assert_close(I.chart_velocity(x[2:], v[2:]), h[2:])


# ---------------------------------------------------------------------- CNFM kernel
@pytest.mark.parametrize("t", [0.0, 0.3, 0.8, 0.97])
def test_kernel_is_a_density_on_the_box_and_its_samples_stay_inside(t):
    I = Interval(-3.0718, -0.0698)
    x, w = chart_grid(I, n=3000, zmax=9.0)  # sigma_t is 0.05 in z near t = 1: a fine rule
    y = torch.tensor([[-0.2]], dtype=torch.float64)
    tt = torch.full((x.shape[0],), t, dtype=torch.float64)
    k = log_kernel(I, x, y.expand_as(x), tt).exp()
    assert abs((k * w).sum().item() - 1) < 1e-6
    if t == 0.0:  # the base density, whatever the centre
        torch.testing.assert_close(k, torch.full_like(k, 1 / (I.hi - I.lo).item()))
    g = torch.Generator().manual_seed(0)
    s = sample_kernel(I, y.expand(20000, 1), torch.full((20000,), t, dtype=torch.float64), generator=g)
    assert ((s >= I.lo) & (s <= I.hi)).all()
    mean = (k * w * x[:, 0]).sum()
    sd = ((k * w * (x[:, 0] - mean) ** 2).sum()).sqrt()
    assert abs(s.mean() - mean) < 5 * sd / math.sqrt(20000)


# ---------------------------------------------------------------------- every objective trains on it
def _near_limits(n, seed):
    """Two clusters in the Panda's q4 x q6 box: one against q4's upper limit, one mid-range."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-0.15, 1.0], [-2.0, 3.0]])
    idx = torch.randint(0, 2, (n,), generator=g)
    x = centres[idx] + torch.tensor([0.05, 0.15]) * torch.randn(n, 2, generator=g)
    lim = torch.tensor([PANDA[3], PANDA[5]])
    return torch.minimum(torch.maximum(x, lim[:, 0] + 1e-3), lim[:, 1] - 1e-3)


@pytest.mark.parametrize("objective", ["rfm", "cnfm", "interpolant", "moser"])
def test_each_objective_beats_the_uniform_density(objective):
    M = parse("I2", limits=[PANDA[3], PANDA[5]])
    data, val = _near_limits(1500, 0), _near_limits(300, 1)
    torch.manual_seed(0)
    flow = pg.PoseFlow(M, hidden=48, depth=2, activation="gelu",
                       parametrization="moser" if objective == "moser" else "cnf")
    base_nll = M.log_volume
    res = train(flow, data, objective, steps=250, val_data=val, val_every=250, batch_size=128, lr=1e-2,
                warmup=10, progress=False, val_solver={"method": "rk4", "steps": 8})
    assert res.best_val_nll < base_nll - 1.0, (objective, res.best_val_nll, base_nll)
    x = res.flow.sample(500, seed=0)
    M.check_point(x, atol=0.0)


@pytest.mark.parametrize("objective", ["rfm", "cnfm", "interpolant"])
def test_products_with_intervals_train(objective):
    M = parse("R3 x I7 x SO3", limits=PANDA)
    g = torch.Generator().manual_seed(0)
    lim = torch.tensor(PANDA)
    q = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(200, 7, generator=g)
    quat = torch.nn.functional.normalize(torch.randn(200, 4, generator=g), dim=-1)
    data = torch.cat([torch.randn(200, 3, generator=g), q, quat], -1)
    res = train(pg.PoseFlow(M, hidden=32, depth=2), data, objective, steps=5, batch_size=64, progress=False)
    x = res.flow.sample(64, seed=0)
    M.check_point(x)  # unit quaternions to float32 round-off (a normalised float32 vector is off 1 by ~1e-7)
    q = x[:, 3:10].double()
    assert bool(((q > lim[:, 0].double()) & (q < lim[:, 1].double())).all())  # joints strictly inside, no slack
    assert torch.isfinite(res.flow.log_prob(x)).all()


# ---------------------------------------------------------------------- specs, checkpoints, errors
def test_spec_names_the_limits_and_round_trips(tmp_path):
    M = parse("R3 x I7 x SO3", limits=PANDA)
    assert repr(M).startswith("R3 x I7[-2.8973:2.8973,")
    assert parse(repr(M)) == M
    flow = make_flow(M, std=0.5)
    flow.save(tmp_path / "m.pt")
    back = pg.PoseFlow.load(tmp_path / "m.pt")
    assert back.manifold == M
    x = flow.sample(8, seed=1)
    torch.testing.assert_close(back.to(torch.float64).log_prob(x), flow.log_prob(x))


@pytest.mark.parametrize("call, match", [
    (lambda: parse("I7"), r"I7.*needs joint limits.*limits="),
    (lambda: parse("I2", limits=[[0, 1]]), r"rows left: 1, needed: 2"),
    (lambda: parse("I1", limits=[[0, 1], [0, 2]]), r"1 rows more"),
    (lambda: parse("I1", limits=[0, 1]), r"shape \(k, 2\)"),
    (lambda: parse("I2[0:1]"), r"must be 2 pairs"),
    (lambda: parse("I1[0:a]"), r"must be 1 pairs"),
    (lambda: Interval([0, 1], [1]), r"same positive length|lo < hi"),
    (lambda: Interval(1.0, 1.0), r"lo < hi.*coordinate 0"),
    (lambda: Interval(0.0, float("inf")), r"finite"),
])
def test_bad_specs_and_limits_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_data_outside_the_limits_is_refused_and_values_on_a_limit_are_moved_inside():
    M = parse("R1 x I2", limits=[[-1.0, 1.0], [0.0, 3.75]])
    good = torch.tensor([[0.0, 0.5, 3.0], [1.0, -0.9, 3.7]], dtype=torch.float64)
    out, keep = validate_points(M, good)
    assert out is good and keep.all()
    bad = good.clone()
    bad[1, 2] = 4.2
    with pytest.raises(ValueError, match=r"factor 1 \(I2.*inside the joint limits.*1 of 2 rows.*coordinate 1 "
                                         r"in \[0, 3.75\] \(got 4.2\)"):
        validate_points(M, bad)
    with pytest.raises(ValueError, match="outside the limits"):
        M.check_point(bad)
    # on a limit (a hard stop, a clamped log) or off it by rounding: moved 1e-4 of the range inside, with a
    # warning, so that the density is finite there
    on = good.clone()
    on[0, 1] = -1.0 - 1e-12
    on[1, 2] = 3.75
    with pytest.warns(pg.data.DataWarning, match=r"factor 1 \(I2, columns 1:3\): 2 of 2 rows had q0, q1 on a joint "
                                                 r"limit"):
        out, _ = validate_points(M, on)
    assert out[0, 1].item() == pytest.approx(-1.0 + 2e-4, abs=1e-15)
    assert out[1, 2].item() == pytest.approx(3.75 - 3.75e-4, abs=1e-15)
    assert torch.equal(out[:, 0], on[:, 0])
