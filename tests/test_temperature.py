"""Sampling temperature: ``Manifold.temper`` per factor and ``PoseFlow.sample(temperature=)``, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from posegen import PoseFlow
from posegen.manifolds import Interval, parse

SPECS = ["R3", "I2[-1:2,0:0.5]", "T2", "S2", "SO3", "R2 x I1[-2.9:2.9] x S2"]


@pytest.mark.parametrize("spec", SPECS)
def test_temper_scales_the_gaussian_base_and_keeps_uniform_ones(spec):
    M = parse(spec)
    x = M.sample_base(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(M.temper(x, 1.0), x)
    y = M.temper(x, 2.0)
    M._check(y, 1e-9)  # still on the manifold (inside the limits)
    for f, xs, ys in zip(M.factors, M.split(x), M.split(y)):
        if f.kernel == "gaussian" and not isinstance(f, Interval):  # R^d: the base's std times 2
            torch.testing.assert_close(ys, 2 * xs)
        elif isinstance(f, Interval):  # the Gaussian chart's coordinate times 2, the point inside the box
            # where 2 z < 6: farther out, the point is within a few ulp of a limit and z is not resolved
            z = f.to_chart(xs)
            ok = (z.abs() < 3).all(-1)
            torch.testing.assert_close(f.to_chart(ys)[ok], 2 * z[ok], atol=1e-7, rtol=1e-7)
            assert bool(((ys > f.lo) & (ys < f.hi)).all())
        else:  # uniform base: no wider law
            torch.testing.assert_close(ys, xs)


def test_interval_temper_moves_mass_towards_the_limits():
    f = Interval([-1.0], [1.0])
    x = f.sample_base(20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    near = lambda v: float((v.abs() > 0.9).double().mean())  # noqa: E731
    assert abs(near(x) - 0.1) < 0.01
    assert near(f.temper(x, 1.6)) > 0.2 and near(f.temper(x, 0.5)) < 0.01


def test_flow_sample_starts_from_the_tempered_base():
    """With a zero velocity the flow returns its base draws: tempered exactly as Manifold.temper does."""
    flow = PoseFlow("R2 x I1[-2:2]", hidden=8, depth=1)
    flow.double()
    for p in flow.parameters():
        p.data.zero_()
    base = flow.sample(64, seed=3, method="euler", steps=2)
    hot = flow.sample(64, seed=3, method="euler", steps=2, temperature=1.7)
    torch.testing.assert_close(hot, flow.manifold.temper(base, 1.7), atol=1e-9, rtol=1e-9)
    for bad in (0, -1.0, math.inf, float("nan"), "2"):
        with pytest.raises(ValueError, match="temperature"):
            flow.sample(4, temperature=bad)
