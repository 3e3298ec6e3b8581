r"""Monte Carlo integrals over a manifold that look where the data is: draws of the manifold's base law (uniform
on a compact manifold) mixed with kernel draws around given centres, weighted by the inverse of the mixture's
density.

``integral_M f dV`` is ``E_q[f(y) / q(y)]`` for any density ``q`` that is positive where ``f`` is. The uniform law
alone (``q = 1 / Vol(M)``) rarely lands in a small region around concentrated data, which is exactly where
Moser Flow's ``mu = nu - div u`` dips below zero beside its peaks (volcano, 663 points: 32 % of the points
within 0.003 rad of a training point have ``mu < eps``, 0.4 % of uniform points). The proposal

.. math::  q(y) = w_0 \, b(y) + \sum_s w_s \frac{1}{N} \sum_i k_s(y | c_i)

puts a share ``w_s`` of the draws into kernels of width ``s`` (the CNFM path's kernels at ``t = 1`` with
``sigma_min = s``: von Mises-Fisher of concentration ``1 / s^2`` on spheres, von Mises on tori, Gaussian in
the stored chart of intervals) around the centres ``c_i``; the draws come in the exact counts ``n w``, and
weighting every draw by the whole mixture (the balance heuristic of multiple importance sampling) keeps the
estimate unbiased. ``b`` is the manifold's base density (``base_log_prob``: ``1 / Vol(M)`` on compact
factors, the standard normal on R^d), positive everywhere, so the estimate covers non-compact products too
(``benchmarks/evaluate.mc_normalisation``'s defensive estimator of a flow's mass is this proposal).
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
    ``integral_M f dV`` (Riemannian volume of the stored coordinates; Lebesgue measure on intervals and R^d).

    Args:
        manifold: any manifold or product; its base law (``sample_base``, ``base_log_prob``) is the share of
            the draws that keeps ``q`` positive everywhere.
        centres: ``(N, coord_dim)`` points the kernels sit on (the training batch, or all training points).
        near: the share of the draws that come from the kernels, in ``[0, 1)`` (the rest come from the base
            law); ``0`` gives the plain base estimate, ``w = 1 / b(y)`` (``Vol(M)`` on a compact manifold).
        scales: kernel widths ``s`` in ``(0, 1)``, the kernel share split evenly between them.
        generator: the draws' generator (its device is where they are drawn).
        chunk: rows of the ``(chunk, N)`` kernel matrix held at once.

    Nothing here is differentiable: the points and weights are fixed samples of the integral.
    """
    if not 0 <= float(near) < 1:
        raise ValueError(f"near_data_points: near must lie in [0, 1), got {near!r}")
    if int(n) < 1:
        raise ValueError(f"near_data_points: n must be a positive integer, got {n!r}")
    scales = [float(s) for s in scales]
    if float(near) > 0 and (not scales or not all(0 < s < 1 for s in scales)):
        raise ValueError(f"near_data_points: scales must be one or more widths in (0, 1), got {scales!r}")
    like = centres.detach()
    dev = generator.device if generator is not None else like.device
    nominal = [1.0 - float(near)] + ([float(near) / len(scales)] * len(scales) if near > 0 else [])
    counts = _counts(int(n), nominal)
    if counts[0] == 0:  # at least one base draw, so that q > 0 on the whole manifold
        counts[counts.index(max(counts))] -= 1
        counts[0] = 1
    # the balance heuristic weighs each component by the share of the draws it actually made
    shares = [k / int(n) for k in counts]
    parts = [manifold.sample_base(counts[0], generator=generator, dtype=like.dtype, device=dev).to(like.device)]
    kernels = [(k, w, Schedule(sigma_min=s)) for k, w, s in zip(counts[1:], shares[1:], scales) if k]
    for k, _, sched in kernels:
        rows = torch.randint(0, like.shape[0], (k,), generator=generator, device=dev).to(like.device)
        parts.append(sample_kernel(manifold, like[rows], like.new_ones(k), sched, generator=generator))
    y = torch.cat(parts)
    # log q(y): the base share, plus each kernel's share times the mean kernel over all centres
    terms = [math.log(shares[0]) + manifold.base_log_prob(y)]
    for _, w, sched in kernels:
        log_k = torch.cat([torch.logsumexp(pairwise_log_kernel(manifold, yc, like, yc.new_ones(yc.shape[0]), sched),
                                           -1) for yc in y.split(chunk)])
        terms.append(math.log(w) - math.log(like.shape[0]) + log_k)
    log_q = torch.logsumexp(torch.stack(terms), 0)
    return y, torch.exp(-log_q)
