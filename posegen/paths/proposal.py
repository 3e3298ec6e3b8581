r"""Monte Carlo integrals over a compact manifold that look where the data is: uniform points mixed with
kernel draws around given centres, weighted by the inverse of the mixture's density.

``integral_M f dV`` is ``E_q[f(y) / q(y)]`` for any density ``q`` that is positive where ``f`` is. The uniform law
alone (``q = 1 / Vol(M)``) rarely lands in a small region around concentrated data, which is exactly where
Moser Flow's ``mu = nu - div u`` dips below zero beside its peaks (volcano, 663 points: 32 % of the points
within 0.003 rad of a training point have ``mu < eps``, 0.4 % of uniform points). The proposal

.. math::  q(y) = w_0 / \mathrm{Vol}(M) + \sum_s w_s \frac{1}{N} \sum_i k_s(y | c_i)

puts a share ``w_s`` of the draws into kernels of width ``s`` (the CNFM path's kernels at ``t = 1`` with
``sigma_min = s``: von Mises-Fisher of concentration ``1 / s^2`` on spheres, von Mises on tori, Gaussian in
the stored chart of intervals) around the centres ``c_i``; the draws come in the exact counts ``n w``, and
weighting every draw by the whole mixture (the balance heuristic of multiple importance sampling) keeps the
estimate unbiased.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

from ..manifolds import Manifold
from .kernels import pairwise_log_kernel, sample_kernel
from .schedules import Schedule

__all__ = ["near_data_points"]


def _counts(n: int, shares: Sequence[float]) -> list:
    """Draw counts for the shares (largest remainders; they add up to ``n >= 1``)."""
    raw = [n * w for w in shares]
    counts = [int(math.floor(r)) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: n - sum(counts)]:
        counts[i] += 1
    return counts


def near_data_points(manifold: Manifold, centres: torch.Tensor, n: int, near: float, scales: Sequence[float],
                     generator: Optional[torch.Generator] = None, chunk: int = 4096
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` points ``y (n, coord_dim)`` and weights ``w (n,)`` with ``mean(w f(y))`` an unbiased estimate of
    ``integral_M f dV`` (Riemannian volume of the stored coordinates; Lebesgue measure on intervals).

    Args:
        manifold: a compact manifold or product (a uniform law and a finite volume).
        centres: ``(N, coord_dim)`` points the kernels sit on (the training batch, or all training points).
        near: the share of the draws that come from the kernels, in ``[0, 1)`` (the rest are uniform, which
            keeps ``q`` positive everywhere); ``0`` gives the plain uniform estimate, ``w = Vol(M)``.
        scales: kernel widths ``s`` in ``(0, 1)``, the kernel share split evenly between them.
        generator: the draws' generator (its device is where they are drawn).
        chunk: rows of the ``(chunk, N)`` kernel matrix held at once.

    Nothing here is differentiable: the points and weights are fixed samples of the integral.
    """
    if not manifold.compact:
        raise ValueError(f"near_data_points: {manifold!r} is not compact (no uniform law to mix in)")
    if not 0 <= float(near) < 1:
        raise ValueError(f"near_data_points: near must lie in [0, 1), got {near!r}")
    if int(n) < 1:
        raise ValueError(f"near_data_points: n must be a positive integer, got {n!r}")
    scales = [float(s) for s in scales]
    if float(near) > 0 and (not scales or not all(0 < s < 1 for s in scales)):
        raise ValueError(f"near_data_points: scales must be one or more widths in (0, 1), got {scales!r}")
    like = centres.detach()
    dev = generator.device if generator is not None else like.device
    log_vol = float(manifold.log_volume)
    nominal = [1.0 - float(near)] + ([float(near) / len(scales)] * len(scales) if near > 0 else [])
    counts = _counts(int(n), nominal)
    if counts[0] == 0:  # at least one uniform draw, so that q > 0 on the whole manifold
        counts[counts.index(max(counts))] -= 1
        counts[0] = 1
    # the balance heuristic weighs each component by the share of the draws it actually made
    shares = [k / int(n) for k in counts]
    parts = [manifold.sample_base(counts[0], generator=generator, dtype=like.dtype, device=dev).to(like.device)]
    terms = [torch.full((int(n),), math.log(shares[0]) - log_vol, dtype=like.dtype, device=like.device)]
    kernels = [(k, w, Schedule(sigma_min=s)) for k, w, s in zip(counts[1:], shares[1:], scales) if k]
    for k, _, sched in kernels:
        rows = torch.randint(0, like.shape[0], (k,), generator=generator, device=dev).to(like.device)
        parts.append(sample_kernel(manifold, like[rows], like.new_ones(k), sched, generator=generator))
    y = torch.cat(parts)
    # log q(y): the uniform share, plus each kernel's share times the mean kernel over all centres
    for _, w, sched in kernels:
        log_k = torch.cat([torch.logsumexp(pairwise_log_kernel(manifold, yc, like, yc.new_ones(yc.shape[0]), sched),
                                           -1) for yc in y.split(chunk)])
        terms.append(math.log(w) - math.log(like.shape[0]) + log_k)
    log_q = torch.logsumexp(torch.stack(terms), 0)
    return y, torch.exp(-log_q)
