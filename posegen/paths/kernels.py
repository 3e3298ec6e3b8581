r"""Kernels ``k_t(x | y)`` of the CNFM target path on a product: every factor's kernel family, multiplied.

Each factor brings its kernel (:mod:`.families`: Gaussian on R^d and intervals, von Mises on tori,
von Mises-Fisher on S^1..S^3, the antipodal vMF pair on SO3) and the coordinates it is standard in
(``factor.kernel_coords``, with their log-Jacobian, so the kernel is a density in the stored coordinates).
Every kernel is a probability density w.r.t. its factor's Riemannian volume (Lebesgue measure for
intervals), with an exact normaliser; ``alpha_t, sigma_t, kappa_t`` come from a
:class:`~posegen.paths.schedules.Schedule`, and at ``t = 0`` each kernel is the factor's base density,
whatever ``y``.

Functions accept a single factor or a :class:`~posegen.manifolds.Product` (log-kernels summed, samples
concatenated).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..manifolds import Manifold, Product
from .families import kernel_family
from .schedules import Schedule, make_schedule
from .vmf import (log_vmf_normalizer, log_von_mises_normalizer, sample_vmf,  # noqa: F401 (re-exported)
                  sample_von_mises)


def _split(manifold: Manifold, schedule: Schedule, *tensors: torch.Tensor):
    """``[(factor, its schedule, *parts)]`` over a Product's factors, or ``[(manifold, schedule, *tensors)]``."""
    if isinstance(manifold, Product):
        schedules = [schedule.factor(i) for i in range(len(manifold.factors))]
        return list(zip(manifold.factors, schedules, *(manifold.split(a) for a in tensors)))
    return [(manifold, schedule.factor(0), *tensors)]


def _check_args(name: str, factor: Manifold, *named):
    for arg, value, ndim, last in named:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != ndim or (last is not None and value.shape[-1] != last):
            want = f"({', '.join(['B'] * (ndim - 1) + [str(last)])})" if last is not None else "(B,)"
            raise ValueError(f"{name}: {arg} must have shape {want} for {factor!r}, got {tuple(value.shape)}")


# ---------------------------------------------------------------------- log-densities
def pairwise_log_kernel(factor: Manifold, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                        schedule: Optional[Schedule] = None) -> torch.Tensor:
    r"""``log k_t(x_b | y_n)`` for every pair, ``(B, N)``, by matrix products (no loop over points).

    Args:
        factor: a factor (R^d, torus, S^1..S^3, SO3) or a Product of them (log-kernels add up).
        x: points ``(B, coord_dim)``; y: kernel centres ``(N, coord_dim)``; t: times ``(B,)``, one per row of x.
        schedule: the path's schedule (default :class:`~posegen.paths.schedules.Schedule`).

    Differentiable w.r.t. ``x``, ``y`` and ``t``. For spheres the ambient gradient w.r.t. ``x`` is the one
    of the natural extension ``kappa <y, x>``; project it with ``proju`` for the Riemannian gradient.
    """
    schedule = make_schedule(schedule)
    _check_args("pairwise_log_kernel", factor, ("x", x, 2, factor.coord_dim), ("y", y, 2, factor.coord_dim),
                ("t", t, 1, None))
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"pairwise_log_kernel: t must have one time per row of x, got t {tuple(t.shape)} "
                         f"and x {tuple(x.shape)}")
    out, logdet = 0, 0
    for f, sched, xf, yf in _split(factor, schedule, x, y):
        xk, ld = f.kernel_coords(xf)
        family = kernel_family(f)
        t_pairs = t.unsqueeze(-1)  # (B, 1) against (B, N)
        stat = family.pairwise_statistic(xk, f.kernel_coords(yf.to(xf))[0], t_pairs, sched)
        out = out + family.log_kernel(f, stat, t_pairs, sched)
        logdet = logdet + ld
    # the kernel-coordinate log-Jacobians depend on x only: one (B,) vector, added to the (B, N) matrix once
    return out + logdet.unsqueeze(-1)


def log_kernel(factor: Manifold, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
               schedule: Optional[Schedule] = None) -> torch.Tensor:
    """``log k_t(x | y)`` row by row: ``x, y (..., coord_dim)``, ``t (...)`` -> ``(...)``.

    The direct statistics (no expanded squares); :func:`pairwise_log_kernel` is the all-pairs version.
    """
    schedule = make_schedule(schedule)
    out = 0
    for f, sched, xf, yf in _split(factor, schedule, x, y):
        family = kernel_family(f)
        xf, logdet = f.kernel_coords(xf)
        yf = f.kernel_coords(yf.to(xf))[0]
        stat = family.statistic(xf, yf, t, sched)
        out = out + family.log_kernel(f, stat, t, sched) + logdet
    return out


# ---------------------------------------------------------------------- bilinear form (CNFM targets)
def centre_features(manifold: Manifold, y: torch.Tensor) -> torch.Tensor:
    """``psi(y) (N, S, F)``, the centres' half of :func:`point_features` (data only: computed once).

    ``S = 2^m`` for ``m`` SO3 factors: the SO3 kernel is the antipodal pair ``C_4 (e^(kappa <y, q>) +
    e^(-kappa <y, q>))``, so each centre becomes ``2^m`` vMF-like centres with every sign of its SO3 parts
    (their kernels sum to the centre's kernel; ``S = 1`` without SO3 factors)."""
    parts, antipodal, col = [], [], 0
    for f, _, yf in _split(manifold, Schedule(), y):
        family = kernel_family(f)
        blocks = family.centre_features(f.kernel_coords(yf)[0])
        parts += blocks
        width = sum(b.shape[-1] for b in blocks)
        if family.antipodal:  # the columns that change sign with this factor's centres
            antipodal.append((col, width))
        col += width
    psi = torch.cat(parts, -1)
    signs = [psi.new_ones(1, psi.shape[-1])]
    for start, width in antipodal:
        flip = psi.new_ones(1, psi.shape[-1])
        flip[:, start:start + width] = -1
        signs = signs + [sg * flip for sg in signs]
    return psi.unsqueeze(1) * torch.cat(signs).unsqueeze(0)


def point_features(manifold: Manifold, x: torch.Tensor, t: torch.Tensor,
                   schedule: Optional[Schedule] = None) -> tuple:
    r"""``(U (B, F), c (B,))`` with ``log k_t(x_b | y_n) = log sum_s exp(<U_b, psi(y_n)_s> + c_b)`` exactly
    (one term ``s`` unless there are SO3 factors: :func:`centre_features`).

    Gaussian: ``U = (alpha x / sigma^2, -alpha^2 / (2 sigma^2))`` against ``psi = (y, |y|^2)``; von Mises:
    ``kappa (cos x, sin x)`` against ``(cos y, sin y)``; vMF: ``kappa x`` against ``y``; each with the
    kernel-coordinate log-determinant in ``c``. So the all-pairs log-kernel is one ``(B, F) x (F, N)``
    product, and ``d log p_t = <dU, psi_bar> + dc`` with ``psi_bar`` the softmax-weighted mean of the
    centres' ``psi``: the CNFM targets need no autograd through the ``(B, N)`` matrix.
    Differentiable w.r.t. ``x`` and ``t``.
    """
    schedule = make_schedule(schedule)
    us, c = [], 0
    for f, sched, xf in _split(manifold, schedule, x):
        xk, logdet = f.kernel_coords(xf)
        U, terms = kernel_family(f).point_features(f, xk, t, sched)
        us += U
        for term in terms:
            c = c + term
        c = c + logdet
    return torch.cat(us, -1), c + x.new_zeros(x.shape[0])


def sample_kernel(factor: Manifold, y: torch.Tensor, t: torch.Tensor, schedule: Optional[Schedule] = None,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""One draw ``x_b ~ k_{t_b}(. | y_b)`` per row: ``y (B, coord_dim)``, ``t (B,)`` -> ``(B, coord_dim)``.

    Each factor's family draws in its kernel coordinates (Gaussian: ``alpha_t y + sigma_t eps``; torus:
    ``y + theta`` with von Mises angles, wrapped; spheres: :func:`sample_vmf`; SO3: a vMF draw around ``y``
    with a random sign, the antipodal mixture). No gradient flows through samples. Accepts a Product
    (factors sampled independently).
    """
    schedule = make_schedule(schedule)
    _check_args("sample_kernel", factor, ("y", y, 2, factor.coord_dim), ("t", t, 1, None))
    if t.shape[0] != y.shape[0]:
        raise ValueError(f"sample_kernel: t must have one time per row of y, got t {tuple(t.shape)} and "
                         f"y {tuple(y.shape)}")
    y = y.detach()
    t = t.detach().to(y)
    parts = []
    for f, sched, yf in _split(factor, schedule, y):
        yk = f.kernel_coords(yf)[0]
        parts.append(f.from_kernel_coords(kernel_family(f).sample(f, yk, t, sched, generator)))
    return torch.cat(parts, -1)
