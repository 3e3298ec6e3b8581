"""posegen.objectives.cnfm: the probability path divergence loss on a kernel-mixture path."""

from __future__ import annotations

import math

import pytest
import torch

import posegen.manifolds as pm
from posegen.flow import PoseFlow
from posegen.objectives import make_objective
from posegen.objectives.cnfm import CNFM
from posegen.paths import Schedule, sample_vmf

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class GaussianPathField:
    """The exact velocity of the Gaussian path N(alpha_t y, sigma_t^2 I) of one point y on R^d:
    v = alpha'_t y + (sigma'_t / sigma_t)(x - alpha_t y), div v = d sigma'_t / sigma_t (a stand-in flow)."""

    parametrization = "cnf"

    def __init__(self, d, y, schedule):
        self.manifold = pm.parse(f"R{d}")
        self.y, self.schedule = y, schedule

    def _rates(self, t):
        t = t.detach().requires_grad_(True)
        a, s = self.schedule.alpha(t), self.schedule.sigma(t)
        da = torch.autograd.grad(a.sum(), t)[0]
        ds = torch.autograd.grad(s.sum(), t)[0]
        return a.detach(), s.detach(), da, ds

    def velocity(self, t, z, condition=None):
        a, s, da, ds = self._rates(t)
        return da[:, None] * self.y + (ds / s)[:, None] * (z - a[:, None] * self.y)

    def velocity_and_div(self, t, z, condition=None, method="exact", generator=None):
        _, s, _, ds = self._rates(t)
        return self.velocity(t, z), self.manifold.dim * ds / s


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("d", [1, 3])
def test_exact_gaussian_field_has_zero_residual(kind, d):
    sigma_min = 0.05
    y = torch.tensor([[0.7, -1.2, 0.3][:d]], dtype=F64)
    sched = Schedule(kind, sigma_min=sigma_min)
    field = GaussianPathField(d, y, sched)
    obj = CNFM(schedule=sched, t_eps=1e-3)
    obj.setup(field, y)
    x_1 = y.expand(64, d)
    loss = obj.loss(field, x_1, generator=gen(0))
    assert loss.item() < 1e-16
    t, x_t = obj.sample(x_1, generator=gen(1))
    r = obj.residual(field, t, x_t)
    torch.testing.assert_close(r, torch.zeros_like(r), rtol=0, atol=1e-9)
    if kind == "linear" and d == 1:  # the OT conditional field, written out as in the paper
        v = (y - (1 - sigma_min) * x_t) / (1 - (1 - sigma_min) * t)[:, None]
        torch.testing.assert_close(field.velocity(t, x_t), v)
    # a wrong field (half the speed) has a clearly positive loss
    wrong = GaussianPathField(d, y, sched)
    wrong.velocity_and_div = lambda t, z, c=None, method="exact", generator=None: tuple(
        0.5 * a for a in GaussianPathField.velocity_and_div(field, t, z))
    assert obj.loss(wrong, x_1, generator=gen(0)).item() > 1e-2


def _s2_data(n=256, kappa=20.0, seed=3):
    mu = torch.tensor([0.3, -0.4, 0.866], dtype=torch.float32)
    mu = (mu / mu.norm()).expand(n, 3)
    return sample_vmf(mu, torch.full((n,), kappa), gen(seed))


@pytest.mark.parametrize("l", [1, 2])
@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_loss_finite_and_differentiable(l, divergence):
    torch.manual_seed(0)
    M = pm.Product(pm.Euclidean(2), pm.Torus(1), pm.Sphere(2), pm.SO3())
    data = M.sample_base(64, generator=gen(4))
    flow = PoseFlow(M, hidden=32, depth=2)
    obj = CNFM(l=l, divergence=divergence, schedule={"sigma_min": 0.1}, chunk_size=16)
    obj.setup(flow, data)
    loss = obj.loss(flow, data[:32], generator=gen(5))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in flow.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # seeded: the same generator state gives the same loss
    again = obj.loss(flow, data[:32], generator=gen(5))
    assert torch.equal(loss.detach(), again.detach())


def test_training_reduces_the_loss_on_s2():
    torch.manual_seed(0)
    data = _s2_data()
    flow = PoseFlow("S2", hidden=64, depth=2)
    obj = CNFM(schedule=Schedule(sigma_min=0.15), t_eps=1e-3)
    obj.setup(flow, data)

    def evaluate():
        return sum(obj.loss(flow, data[i * 128:(i + 1) * 128], generator=gen(100 + i)).item()
                   for i in range(2)) / 2

    before = evaluate()
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    g = gen(7)
    for step in range(80):
        idx = torch.randint(0, data.shape[0], (128,), generator=g)
        loss = obj.loss(flow, data[idx], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    assert after < 0.2 * before, (before, after)  # seeds 0-2 give 0.02-0.05


def test_conditional_loss():
    torch.manual_seed(0)
    M = pm.parse("R1 x S2")
    data = M.sample_base(40, generator=gen(8))
    cond = torch.linspace(-1, 1, 40)[:, None] * 5
    flow = PoseFlow(M, hidden=32, depth=2, cond_dim=1)
    obj = CNFM(schedule={"sigma_min": 0.2})
    obj.setup(flow, data, cond)
    assert obj.path.conditional
    loss = obj.loss(flow, data[:16], condition=cond[:16], generator=gen(9))
    assert torch.isfinite(loss)
    loss.backward()
    with pytest.raises(ValueError, match="the flow has cond_dim=1 but conditions were not given"):
        obj.setup(flow, data)


def test_options_rebuild_and_errors():
    obj = CNFM(schedule=Schedule("cosine", sigma_min=0.05, kappa_max=400.0), l=1, max_components=100)
    again = make_objective("cnfm", **obj.options)
    assert isinstance(again, CNFM) and again.options == obj.options
    assert again.schedule.kind == "cosine" and again.schedule.kappa_max == 400.0 and again.l == 1
    with pytest.raises(ValueError, match="l must be 1 or 2, got 3"):
        CNFM(l=3)
    with pytest.raises(ValueError, match='Invalid divergence method "trace"'):
        CNFM(divergence="trace")
    with pytest.raises(ValueError, match=r"t_eps must be in \[0, 1\)"):
        CNFM(t_eps=1.0)
    with pytest.raises(ValueError, match="max_components must be a positive integer"):
        CNFM(max_components=0)
    flow = PoseFlow("S2", hidden=8, depth=1)
    with pytest.raises(RuntimeError, match=r"call setup\(flow, data\) before loss"):
        CNFM().loss(flow, _s2_data(4))
    with pytest.raises(ValueError, match=r"x_1 must be a floating-point tensor of shape \(B, 3\)"):
        c = CNFM()
        c.setup(flow, _s2_data(4))
        c.loss(flow, torch.zeros(4, 4))
    moser = PoseFlow("S2", hidden=8, depth=1, parametrization="moser")
    with pytest.raises(ValueError, match='parametrization="cnf"'):
        CNFM().setup(moser, _s2_data(4))


def test_subset_targets_and_t_range():
    data = _s2_data(200)
    flow = PoseFlow("S2", hidden=8, depth=1)
    obj = CNFM(max_components=50, t_eps=0.25, chunk_size=7)
    obj.setup(flow, data)
    t, x_t = obj.sample(data[:500], generator=gen(10))
    assert t.min() >= 0.25 and t.max() <= 1.0
    flow.manifold.check_point(x_t)
    assert math.isfinite(obj.loss(flow, data[:64], generator=gen(11)).item())


def test_trainer_gives_cnfm_subset_the_source_rows():
    """The trainer passes each batch's data rows, so the subset estimate keeps every point's own kernel."""
    import posegen.objectives as objectives
    from posegen.training import train

    flow = PoseFlow("S2", hidden=8, depth=1)
    data = sample_vmf(torch.tensor([[0.0, 0.0, 1.0]]).expand(64, 3), torch.full((64,), 5.0), gen(60)).float()
    seen = []

    class Spy(CNFM):
        def residual(self, flow, t, x_t, condition=None, generator=None, source_index=None):
            seen.append(source_index)
            return super().residual(flow, t, x_t, condition, generator, source_index)

        def _draw(self, x_1, condition, generator, index):
            seen.append((x_1.clone(), index))
            return super()._draw(x_1, condition, generator, index)

    objectives.OBJECTIVES["cnfm_spy"] = Spy
    try:
        train(flow, data, "cnfm_spy", steps=2, batch_size=16, progress=False,
              objective_options={"max_components": 8})
    finally:
        del objectives.OBJECTIVES["cnfm_spy"]
    assert len(seen) == 4
    for (x_1, index), source in zip(seen[0::2], seen[1::2]):
        assert index.shape == (16,) and source is index
        torch.testing.assert_close(x_1, data[index])  # the rows really are the batch's


# ---------------------------------------------------------------------- the end point and its diagnostic
def _vmf_log_density(x, mu, kappa):
    """log vMF(x; mu, kappa) on S2 in closed form: kappa / (4 pi sinh kappa) exp(kappa <mu, x>)."""
    return (math.log(kappa) - math.log(2 * math.pi) - kappa - math.log1p(-math.exp(-2 * kappa))
            + kappa * (x @ mu))


def _sharp_s2(kappa=2000.0, n=3000, seed=5):
    mu = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    return mu, sample_vmf(mu.expand(n, 3), torch.full((n,), kappa, dtype=F64), gen(seed))


def test_blurred_end_point_caps_the_model_and_the_diagnostic_shows_it():
    """A path ending at kappa = 11 (sigma_min 0.3) on vMF(2000) data: its KDE bound is far above the
    oracle's NLL (the true density, the best any model can do), so a model matching the path is capped."""
    from posegen.paths.endpoint import endpoint_kde_nll

    kappa = 2000.0
    mu, x = _sharp_s2(kappa)
    train, val = x[:2500], x[2500:]
    oracle = float(-_vmf_log_density(val, mu, kappa).mean())
    flow = PoseFlow("S2", hidden=8, depth=1)
    blurred = CNFM(schedule={"sigma_min": 0.3})
    blurred.setup(flow, train)
    bound = blurred.diagnostics(train, val)["endpoint_kde_nll"]
    assert bound == pytest.approx(endpoint_kde_nll(blurred, train, val), abs=1e-12)  # no standardisation on S2
    assert bound > oracle + 3.0  # -log(2000 / 11) ~ 5 nats of sharpness lost at the end point


def test_data_chosen_end_point_does_not_cap_the_model():
    """The default (sigma_min="auto") end point on the same data: the KDE bound is within a tenth of a nat of
    the oracle (a KDE of 2500 points is near the truth), so the path does not hold the model back."""
    kappa = 2000.0
    mu, x = _sharp_s2(kappa)
    train, val = x[:2500], x[2500:]
    oracle = float(-_vmf_log_density(val, mu, kappa).mean())
    obj = CNFM()
    flow = PoseFlow("S2", hidden=8, depth=1)
    obj.setup(flow, train)
    assert obj.options["schedule"] is None and obj.endpoint is not None
    bound = obj.diagnostics(train, val)["endpoint_kde_nll"]
    assert oracle - 0.05 < bound < oracle + 0.1
    # the chosen kappa_1 is of the order of the data's own (a kernel narrower than the spread of the points)
    assert 2000.0 < obj.schedule.factor(0).kappa(torch.ones((), dtype=F64)) < 2000.0 * 20


def test_diagnostics_are_in_the_flow_s_units_and_default_to_none_elsewhere():
    """On R1 the flow standardises: the diagnostic is the KDE of the user-unit points with bandwidth
    sigma_min * scale, computed here directly."""
    x = 3.0 + 0.5 * torch.randn(600, 1, generator=gen(6), dtype=F64)
    train, val = x[:500], x[500:]
    flow = PoseFlow("R1", hidden=8, depth=1).double()
    flow.fit_standardization(train)
    obj = CNFM(schedule={"sigma_min": 0.2})
    obj.setup(flow, flow.to_internal(train))
    got = obj.diagnostics(flow.to_internal(train), flow.to_internal(val))["endpoint_kde_nll"]
    h = 0.2 * float(flow.scale)
    lp = torch.logsumexp(-0.5 * ((val - train.T) / h) ** 2, 1) - math.log(500 * h * math.sqrt(2 * math.pi))
    assert got == pytest.approx(float(-lp.mean()), abs=1e-9)
    assert make_objective("rfm").diagnostics(train, val) == {}
    with pytest.raises(RuntimeError, match="call setup"):
        CNFM().diagnostics(train, val)


def test_auto_end_point_options_rebuild_and_bad_ones_are_refused():
    obj = CNFM(schedule={"kind": "cosine", "sigma_min": "auto"}, time_sampling="late")
    again = make_objective("cnfm", **obj.options)
    assert again.auto_endpoint and again.kind == "cosine" and again.time_sampling == "late"
    with pytest.raises(ValueError, match='sigma_min="auto" takes only "kind" and "scale"'):
        CNFM(schedule={"sigma_min": "auto", "kappa_max": 3.0})
    for bad in (0, -0.5, float("inf"), "half", True):
        with pytest.raises(ValueError, match='schedule "scale" must be a finite number > 0'):
            CNFM(schedule={"sigma_min": "auto", "scale": bad})
    with pytest.raises(ValueError, match='Invalid schedule kind "spiral"'):
        CNFM(schedule={"kind": "spiral", "sigma_min": "auto"})
    with pytest.raises(ValueError, match='invalid time_sampling "early"'):
        CNFM(time_sampling="early")


def test_a_scaled_auto_end_point_is_that_multiple_of_the_chosen_one_and_survives_a_rebuild():
    flow = PoseFlow("S2", hidden=8, depth=1)
    _, x = _sharp_s2(50.0, n=256)
    plain, half = CNFM(), CNFM(schedule={"sigma_min": "auto", "scale": 0.5})
    plain.setup(flow, x)
    half.setup(flow, x)
    assert half.endpoint.sigma_min[0] == pytest.approx(0.5 * plain.endpoint.sigma_min[0], rel=1e-12)
    assert half.endpoint.scale == 0.5 and half.endpoint.holdout_nll == plain.endpoint.holdout_nll
    assert float(half.schedule.sigma_min) == pytest.approx(half.endpoint.sigma_min[0], rel=1e-12)
    again = make_objective("cnfm", **half.options)
    again.setup(flow, x)
    assert again.endpoint.sigma_min == half.endpoint.sigma_min


def test_late_time_sampling_draws_more_times_near_the_end():
    obj = CNFM(schedule={"sigma_min": 0.1}, time_sampling="late", t_eps=1e-3)
    flow = PoseFlow("S2", hidden=8, depth=1)
    _, x = _sharp_s2(50.0, n=64)
    obj.setup(flow, x)
    t, _ = obj.sample(x.expand(64, 3).repeat(100, 1)[:4096].contiguous(), generator=gen(7))
    t = t.double()
    assert float(t.min()) >= 1e-3 and float(t.max()) <= 1.0
    # P(t > 0.75) = P(1 - (1 - u)^2 > ~0.75) = 1 - sqrt(0.25) = 0.5 (uniform: 0.25)
    assert abs(float((t > 0.75).double().mean()) - 0.5) < 0.04


def test_endpoint_kde_nll_refuses_what_it_cannot_score():
    from posegen.paths import endpoint_kde_nll

    _, x = _sharp_s2(50.0, n=40)
    with pytest.raises(ValueError, match="no path yet: call objective.setup"):
        endpoint_kde_nll(CNFM(), x, x)
    with pytest.raises(TypeError, match="expected a MixturePath or an objective with one in .path, got str"):
        endpoint_kde_nll("S2", x, x)
    obj = CNFM(schedule={"sigma_min": 0.1})
    obj.setup(PoseFlow("S2", hidden=8, depth=1), x)
    with pytest.raises(ValueError, match=r"val_x must be a tensor of shape \(N, 3\) with N >= 1 for S2, got \(4, 2\)"):
        endpoint_kde_nll(obj, x, x[:4, :2])


def test_auto_time_sampling_is_late_only_beyond_the_former_end_point():
    from posegen.objectives.cnfm import LATE_BELOW

    flow = PoseFlow("S2", hidden=8, depth=1)
    _, sharp = _sharp_s2(2000.0, n=500)
    obj = CNFM()
    assert obj.times is None  # resolved by setup
    obj.setup(flow, sharp)
    assert obj.schedule.sigma_mins[0] < LATE_BELOW and obj.times == "late"
    for spec, want in (({"sigma_min": 0.05}, "uniform"), ({"sigma_min": 0.2, "kappa_max": 1e4}, "late")):
        obj = CNFM(schedule=spec)
        obj.setup(flow, sharp)
        assert obj.times == want
    assert CNFM(time_sampling="uniform").times == "uniform"
