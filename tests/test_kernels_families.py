"""Kernel families as objects chosen by the factor: resolution, errors, and a factor that brings its own."""

import math

import pytest
import torch

from posegen.manifolds import SO3, Euclidean, Interval, Sphere, Torus, parse
from posegen.paths import (FAMILIES, KernelFamily, MixturePath, Schedule, kernel_family, log_kernel,
                           pairwise_log_kernel, sample_kernel)
from posegen.paths.families import AntipodalVonMisesFisher, Gaussian, VonMises, VonMisesFisher
from posegen.paths.kernels import centre_features, point_features


@pytest.mark.parametrize("factor, family", [(Euclidean(3), Gaussian), (Interval(-1.0, 2.0), Gaussian),
                                            (Torus(2), VonMises), (Sphere(1), VonMisesFisher),
                                            (Sphere(2), VonMisesFisher), (Sphere(3), VonMisesFisher),
                                            (SO3(), AntipodalVonMisesFisher)])
def test_each_factor_names_its_family(factor, family):
    assert type(kernel_family(factor)) is family
    assert FAMILIES[factor.kernel] is kernel_family(factor)


def test_factors_without_a_kernel_are_refused_with_the_known_families():
    class Plain(Euclidean):
        kernel = None

    with pytest.raises(TypeError, match="no CNFM kernel for manifold R2 .*known kernels: gaussian, von_mises"):
        kernel_family(Plain(2))
    with pytest.raises(ValueError, match="CNFM kernels support spheres S\\^1, S\\^2, S\\^3, got S4"):
        kernel_family(Sphere(4))


class _Cauchy1D(KernelFamily):
    """A family defined outside posegen: a wrapped Cauchy kernel on one angle, ``rho_t = t / 2``.

    ``k = (1 - rho^2) / (2 pi (1 + rho^2 - 2 rho cos(x - y)))`` is not bilinear in any features, so it only
    serves the row and pairwise forms here: that is all a custom family needs for log-densities."""

    name = "wrapped_cauchy"

    def statistic(self, x, y, t, schedule):
        return torch.cos(x - y).sum(-1)

    def pairwise_statistic(self, x, y, t, schedule):
        return torch.cos(x - y.T)

    def log_kernel(self, factor, stat, t, schedule):
        rho = 0.5 * t
        return torch.log1p(-rho * rho) - math.log(2 * math.pi) - torch.log1p(rho * rho - 2 * rho * stat)

    def centre_features(self, y):
        raise NotImplementedError

    def point_features(self, factor, x, t, schedule):
        raise NotImplementedError

    def sample(self, factor, y, t, schedule, generator):
        raise NotImplementedError


def test_a_factor_defined_outside_posegen_brings_its_own_family_object():
    class Dial(Torus):
        kernel = _Cauchy1D()

    dial = Dial(1)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64).unsqueeze(-1)
    y = torch.tensor([[0.5], [-2.0]], dtype=torch.float64)
    t = torch.full((7,), 0.6, dtype=torch.float64)
    rho = 0.3
    want = (torch.log(torch.tensor(1 - rho * rho, dtype=torch.float64)) - math.log(2 * math.pi)
            - torch.log(1 + rho * rho - 2 * rho * torch.cos(x - y.T)))
    assert torch.allclose(pairwise_log_kernel(dial, x, y, t), want, atol=1e-14)
    assert torch.allclose(log_kernel(dial, x, y[:1].expand(7, 1), t), want[:, 0], atol=1e-14)
    # a density on the circle: the quadrature of exp(log k) is 1
    grid = torch.linspace(-math.pi, math.pi, 4001, dtype=torch.float64)[:-1].unsqueeze(-1)
    k = pairwise_log_kernel(dial, grid, y, torch.full((4000,), 0.6, dtype=torch.float64)).exp()
    assert torch.allclose(k.mean(0) * 2 * math.pi, torch.ones(2, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("spec", ["R2 x S2", "T3", "SO3 x R1", "S1 x S3"])
def test_bilinear_form_equals_the_statistic_form_for_every_family(spec):
    """The two ways each family writes ``log k_t``, summed over a product, in float64."""
    M = parse(spec)
    g = torch.Generator().manual_seed(0)
    x = M.sample_base(16, generator=g, dtype=torch.float64)
    y = M.sample_base(9, generator=g, dtype=torch.float64)
    t = torch.rand(16, generator=g, dtype=torch.float64)
    sched = Schedule(sigma_min=0.1)
    U, c = point_features(M, x, t, sched)
    psi = centre_features(M, y)  # (N, S, F)
    bilinear = torch.logsumexp(torch.einsum("bf,nsf->bns", U, psi), -1) + c.unsqueeze(-1)
    assert torch.allclose(bilinear, pairwise_log_kernel(M, x, y, t, sched), atol=1e-10, rtol=1e-10)


def test_family_draws_go_through_the_factor_kernel_coordinates():
    """The generic sampler hands every family the factor's kernel coordinates and maps its draw back: an
    interval's Gaussian draws land inside the limits."""
    I = Interval([-1.0, 0.0], [2.0, 0.5])
    y = I.projx(torch.tensor([[1.9, 0.01]] * 4096, dtype=torch.float64))
    t = torch.full((4096,), 0.5, dtype=torch.float64)
    x = sample_kernel(I, y, t, Schedule(), generator=torch.Generator().manual_seed(0))
    assert bool(((x > I.lo) & (x < I.hi)).all())
    p = MixturePath(I, y[:3])
    assert p.sample_given(y[:3], 1.0).shape == (3, 2)
