r"""Kernel families of the CNFM path: one object per kind of kernel, chosen by the factor.

=================================  ==========================================================================
:class:`Gaussian` (R^d, intervals)  ``N(alpha_t y, sigma_t^2 I)`` in the factor's kernel coordinates
:class:`VonMises` (T^n)             ``prod_i exp(kappa cos(x_i - y_i)) / (2 pi I_0(kappa))``
:class:`VonMisesFisher` (S^1..S^3)  ``C_p(kappa) exp(kappa <y, x>)``, ``p = coord_dim``,
                                    ``C_p = kappa^(p/2-1) / ((2 pi)^(p/2) I_(p/2-1)(kappa))``
:class:`AntipodalVonMisesFisher`    the pair ``vMF(q; y) + vMF(q; -y) = 2 C_4(kappa) cosh(kappa <y, q>)`` on
(SO3)                               S^3, a density on rotations (volume pi^2)
=================================  ==========================================================================

A factor names its family in its ``kernel`` attribute (a key of :data:`FAMILIES`, or a
:class:`KernelFamily` instance for a factor defined outside posegen) and maps its points to the coordinates
the family is standard in with ``kernel_coords`` (the identity but for intervals, whose Gaussian lives in
the chart ``z``). :func:`kernel_family` resolves it; :mod:`.kernels` sums the families over a product.

Every family writes ``log k_t(x | y)`` three ways that agree exactly: from a statistic of the pair
(:meth:`~KernelFamily.statistic`, :meth:`~KernelFamily.pairwise_statistic`, then
:meth:`~KernelFamily.log_kernel`), and as the bilinear form ``<U(x, t), psi(y)> + c(x, t)``
(:meth:`~KernelFamily.centre_features`, :meth:`~KernelFamily.point_features`) that the CNFM targets use.
Schedules give ``alpha_t, sigma_t`` (Gaussian) and ``kappa_t`` (the others); at ``t = 0`` every kernel is
the factor's base density.
"""

from __future__ import annotations

import abc
import math
from typing import Dict, List, Tuple

import torch

from ..manifolds import Manifold, wrap_angle
from .vmf import _normal, _uniform, log_vmf_normalizer_shifted, sample_vmf, sample_von_mises

_LOG_2PI = math.log(2 * math.pi)


class KernelFamily(abc.ABC):
    """One kind of CNFM kernel. Arrays are in the factor's kernel coordinates (``factor.kernel_coords``);
    ``t`` broadcasts against the statistic (``(B,)`` for rows, ``(B, 1)`` against ``(B, N)`` pairs)."""

    #: the registry key (:data:`FAMILIES`)
    name: str = ""
    #: whether each centre ``y`` stands for the pair ``{y, -y}`` (the kernel is a sum of two bilinear terms)
    antipodal: bool = False

    def check(self, factor: Manifold) -> None:
        """Raise :class:`ValueError` if this family has no kernel for ``factor`` (the default accepts all)."""

    @abc.abstractmethod
    def statistic(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, schedule) -> torch.Tensor:
        """The kernel's statistic of row pairs: ``x, y (..., d)``, ``t (...)`` -> ``(...)``."""

    @abc.abstractmethod
    def pairwise_statistic(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, schedule) -> torch.Tensor:
        """The statistic of every pair by matrix products: ``x (B, d)``, ``y (N, d)``, ``t (B, 1)`` ->
        ``(B, N)``."""

    @abc.abstractmethod
    def log_kernel(self, factor: Manifold, stat: torch.Tensor, t: torch.Tensor, schedule) -> torch.Tensor:
        """``log k_t`` (without the kernel-coordinate log-Jacobian) from the statistic; same shape."""

    @abc.abstractmethod
    def centre_features(self, y: torch.Tensor) -> List[torch.Tensor]:
        """The centres' half ``psi(y)`` of the bilinear form, as column blocks ``[(N, w_i), ...]``."""

    @abc.abstractmethod
    def point_features(self, factor: Manifold, x: torch.Tensor, t: torch.Tensor,
                       schedule) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """``(U blocks [(B, w_i), ...], bias terms [(B,), ...])`` with ``log k = <U, psi> + sum(terms)``;
        the terms are added in the order given (so that targets are reproducible to the last bit)."""

    @abc.abstractmethod
    def sample(self, factor: Manifold, y: torch.Tensor, t: torch.Tensor, schedule, generator) -> torch.Tensor:
        """One draw ``x_b ~ k_{t_b}(. | y_b)`` per row, ``y (B, d)``, ``t (B,)`` -> ``(B, d)``; no gradient."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Gaussian(KernelFamily):
    """``N(alpha_t y, sigma_t^2 I)``: R^d in standardised coordinates, intervals in their chart ``z``.

    Statistic ``|x - alpha_t y|^2``; bilinear form ``U = (alpha x / sigma^2, -alpha^2 / (2 sigma^2))``
    against ``psi = (y, |y|^2)``."""

    name = "gaussian"

    def statistic(self, x, y, t, schedule):
        return ((x - schedule.alpha(t).unsqueeze(-1) * y) ** 2).sum(-1)

    def pairwise_statistic(self, x, y, t, schedule):
        # |x - alpha y|^2 = |x|^2 - 2 alpha <x, y> + alpha^2 |y|^2 (not clamped: the slope stays exact)
        alpha = schedule.alpha(t)
        return (x * x).sum(-1, keepdim=True) - 2 * alpha * (x @ y.T) + alpha * alpha * (y * y).sum(-1)

    def log_kernel(self, factor, stat, t, schedule):
        sigma = schedule.sigma(t)
        return -0.5 * stat / (sigma * sigma) - factor.dim * (torch.log(sigma) + 0.5 * _LOG_2PI)

    def centre_features(self, y):
        return [y, (y * y).sum(-1, keepdim=True)]

    def point_features(self, factor, x, t, schedule):
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        inv = 1 / (sigma * sigma)
        U = [(alpha * inv).unsqueeze(-1) * x, (-0.5 * alpha * alpha * inv).unsqueeze(-1)]
        return U, [-(0.5 * inv * (x * x).sum(-1)), -(factor.dim * (torch.log(sigma) + 0.5 * _LOG_2PI))]

    def sample(self, factor, y, t, schedule, generator):
        eps = _normal(tuple(y.shape), generator, y.device).to(y.dtype)
        return schedule.alpha(t).unsqueeze(-1) * y + schedule.sigma(t).unsqueeze(-1) * eps


class VonMises(KernelFamily):
    """Independent von Mises kernels of concentration ``kappa_t`` on every angle of a torus.

    Statistic ``sum_i cos(x_i - y_i)``; bilinear form ``kappa (cos x, sin x)`` against ``(cos y, sin y)``."""

    name = "von_mises"

    def statistic(self, x, y, t, schedule):
        return torch.cos(x - y).sum(-1)

    def pairwise_statistic(self, x, y, t, schedule):
        return torch.cos(x) @ torch.cos(y).T + torch.sin(x) @ torch.sin(y).T

    def log_kernel(self, factor, stat, t, schedule):
        kappa = schedule.kappa(t)
        return kappa * (stat - factor.dim) + factor.dim * log_vmf_normalizer_shifted(kappa, 2)

    def centre_features(self, y):
        return [torch.cos(y), torch.sin(y)]

    def point_features(self, factor, x, t, schedule):
        kappa = schedule.kappa(t)
        U = [kappa.unsqueeze(-1) * torch.cos(x), kappa.unsqueeze(-1) * torch.sin(x)]
        return U, [factor.dim * (log_vmf_normalizer_shifted(kappa, 2) - kappa)]

    def sample(self, factor, y, t, schedule, generator):
        theta = sample_von_mises(schedule.kappa(t).unsqueeze(-1).expand(y.shape), generator)
        return wrap_angle(y + theta)


class VonMisesFisher(KernelFamily):
    """von Mises-Fisher kernels of concentration ``kappa_t`` on S^1, S^2, S^3 (unit vectors in R^p).

    Statistic ``<x, y>``; bilinear form ``kappa x`` against ``y``."""

    name = "vmf"

    def check(self, factor):
        if factor.coord_dim > 4:
            raise ValueError(f"CNFM kernels support spheres S^1, S^2, S^3, got {factor.spec}: the vMF "
                             f"normaliser needs I_(p/2-1) with p = {factor.coord_dim}")

    def statistic(self, x, y, t, schedule):
        return (x * y).sum(-1)

    def pairwise_statistic(self, x, y, t, schedule):
        return x @ y.T

    def log_kernel(self, factor, stat, t, schedule):
        kappa = schedule.kappa(t)
        shifted = log_vmf_normalizer_shifted(kappa, factor.coord_dim)  # first: the autograd order of kappa's uses
        return kappa * (stat - 1) + shifted

    def centre_features(self, y):
        return [y]

    def point_features(self, factor, x, t, schedule):
        kappa = schedule.kappa(t)
        return [kappa.unsqueeze(-1) * x], [log_vmf_normalizer_shifted(kappa, factor.coord_dim), -kappa]

    def sample(self, factor, y, t, schedule, generator):
        return sample_vmf(y, schedule.kappa(t), generator)


class AntipodalVonMisesFisher(VonMisesFisher):
    """The antipodal vMF pair on S^3 as a kernel on rotations, ``q`` and ``-q`` one point:
    ``log(2 C_4 cosh(kappa <y, q>)) = log C_4 + logaddexp(kappa c, -kappa c)``.

    The bilinear form is the vMF one for each half: :func:`~posegen.paths.kernels.centre_features` gives
    every centre both signs (:attr:`antipodal`)."""

    name = "so3"
    antipodal = True

    def log_kernel(self, factor, stat, t, schedule):
        kappa = schedule.kappa(t)
        shifted = log_vmf_normalizer_shifted(kappa, factor.coord_dim)
        return torch.logaddexp(kappa * (stat - 1), kappa * (-stat - 1)) + shifted

    def sample(self, factor, y, t, schedule, generator):
        kappa = schedule.kappa(t)
        sign = torch.where(_uniform(kappa.shape, generator, y.device) < 0.5, -1.0, 1.0).to(y)
        return sign.unsqueeze(-1) * sample_vmf(y, kappa, generator)


#: the kernel families, keyed by the names factors give in their ``kernel`` attribute
FAMILIES: Dict[str, KernelFamily] = {f.name: f for f in (Gaussian(), VonMises(), VonMisesFisher(),
                                                         AntipodalVonMisesFisher())}


def kernel_family(factor: Manifold) -> KernelFamily:
    """The :class:`KernelFamily` a factor names in its ``kernel`` attribute, checked against the factor.

    Raises :class:`TypeError` for a factor without a CNFM kernel and :class:`ValueError` for one its
    family does not cover (S^d, d > 3)."""
    kernel = getattr(factor, "kernel", None)
    family = kernel if isinstance(kernel, KernelFamily) else FAMILIES.get(kernel)
    if family is None:
        raise TypeError(f"no CNFM kernel for manifold {factor!r} of type {type(factor).__name__} "
                        f"(its kernel is {kernel!r}; known kernels: {', '.join(FAMILIES)})")
    family.check(factor)
    return family
