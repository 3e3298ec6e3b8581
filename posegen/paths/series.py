r"""The CNFM mixture's partition sum for small ``|U|`` by its Taylor series, from moments of the centres.

With the bilinear log-kernel ``log k_t(x | y_n) = <U(x, t), psi_n> + c(x, t)``
(:func:`~posegen.paths.kernels.point_features`), the targets need, per point,

.. math::  Z(U) = \sum_n e^{\langle U, \psi_n \rangle}, \qquad
           \bar\psi(U) = \frac{1}{Z(U)} \sum_n \psi_n e^{\langle U, \psi_n \rangle} .

Early in the path (small ``kappa``, small ``alpha``) ``U`` is short and every one of the ``N`` kernels counts,
so the direct sum costs ``N`` exps per point: most of a CNFM step. Centred at ``mu`` (``psi_n = mu + d_n``),
``Z = e^{<U, mu>} sum_a U^a M_a`` over multi-indices ``|a| <= K``, with the moments
``M_a = sum_n d_n^a / a!`` (and ``sum_n d_n d_n^a / a!`` for ``psi_bar``) computed once from the data: one
``(B, #monomials) x (#monomials, 1 + F)`` product instead of ``N`` exps.

Accuracy, stated and enforced: with ``r = |U| R``, ``R = max_n |d_n|``, every ``|<U, d_n>| <= r``, the
series of ``exp`` truncated after degree ``K`` is off by at most ``e^r r^(K+1) / (K+1)!`` per term, and
``Z >= N e^(-r) e^{<U, mu>}``; so ``Z`` is relatively off by at most ``e^(2r) r^(K+1) / (K+1)!`` and
``psi_bar`` by at most twice that times ``R``. The series is used only where this bound is below
:data:`TOLERANCE` of the working dtype (a fraction of its epsilon); the sums run in float64, whose rounding,
amplified by at most ``e^(2r)`` (the monomial terms of a row add up to at most ``e^r`` in absolute value, by
Cauchy-Schwarz), stays below that tolerance too. So float64 work never takes the series: it has no slack.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

#: the truncation bound the series must meet, relative (``psi_bar``: relative to ``R``), per working dtype
TOLERANCE = {torch.float16: 2.0 ** -13, torch.bfloat16: 2.0 ** -10, torch.float32: 2.0 ** -26,
             torch.float64: 2.0 ** -54}
#: most monomials kept (``C(K + F, F)``): 969 is degree 16 in 3 features (S2), 11 in 4 (S3, SO3). Measured on
#: the fire targets (S2, float32, batch 256): degree 10 serves 45 % of the rows, 16 54 %, 24 62 %, but the
#: series costs 0.3, 0.7 and 8.7 ms against ~0.02 ms a row for the direct sum over 10^4 kernels
MAX_MONOMIALS = 1000
#: below this radius the series is not worth its setup (many features: only a tiny ``|U|`` qualifies)
MIN_RADIUS = 0.5


def _monomials(F: int, K: int) -> Tuple[list, list, list]:
    """Monomials of degree ``1..K`` in ``F`` variables, built one variable at a time: ``parents[k]``,
    ``variables[k]`` (index lists of degree ``k + 1`` into degree ``k``, degree 0 being the constant) and
    ``log_factorials`` (``log a!`` of every monomial, constant first)."""
    level = [((), 0.0)]  # (sorted variable tuple, log a!)
    parents, variables, logfact = [], [], [0.0]
    for _ in range(K):
        nxt, par, var = [], [], []
        for i, (m, lf) in enumerate(level):
            for v in range(m[-1] if m else 0, F):
                mult = sum(1 for u in m if u == v) + 1  # a_v after multiplying by x_v
                nxt.append((m + (v,), lf + math.log(mult)))
                par.append(i)
                var.append(v)
        parents.append(par)
        variables.append(var)
        logfact += [lf for _, lf in nxt]
        level = nxt
    return parents, variables, logfact


def _degree(F: int, dtype: torch.dtype) -> Tuple[int, float]:
    """``(K, r0)``: the largest degree within :data:`MAX_MONOMIALS` and the radius up to which it meets the
    dtype's tolerance (truncation and the float64 rounding amplified by cancellation)."""
    K = 0
    while math.comb(K + 1 + F, F) <= MAX_MONOMIALS:
        K += 1
    tol = TOLERANCE.get(dtype, 2.0 ** -54)

    def bad(r):
        trunc = 2 * math.exp(2 * r + (K + 1) * math.log(r) - math.lgamma(K + 2)) if r > 0 else 0.0
        rounding = math.exp(2 * r) * 2.0 ** -46  # float64 sums of terms up to N e^r, 64 ulp of slack
        return max(trunc, rounding) > tol

    lo, hi = 0.0, 64.0
    for _ in range(60):  # bisection: the bound grows with r
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if bad(mid) else (mid, hi)
    return K, lo


class MomentSeries:
    """``Z(U)`` and ``psi_bar(U)`` for short ``U`` from moments of ``psi (n, F)`` (all rows of the mixture,
    SO3 sign terms included); built once per path, for one working dtype.

    ``applies(U)`` says which rows (``U (B, F)``) the series serves within :data:`TOLERANCE`; ``None`` if
    no row could (the series is then not built at all: too many features for a useful radius)."""

    def __init__(self, psi: torch.Tensor, K: int, r0: float):
        F = psi.shape[-1]
        self.K, self.r0 = K, r0
        d64 = psi.detach().to(torch.float64)
        # centre: the mean or the origin, whichever leaves the smaller radius (a smaller r: more rows served)
        mu = d64.mean(0)
        if (d64 - mu).norm(dim=-1).max() >= d64.norm(dim=-1).max():
            mu = torch.zeros_like(mu)
        d64 = d64 - mu
        self.R = float(d64.norm(dim=-1).max())
        self.mu = mu
        parents, variables, logfact = _monomials(F, self.K)
        self.parents = [torch.tensor(p, device=psi.device) for p in parents]
        self.variables = [torch.tensor(v, device=psi.device) for v in variables]
        inv_fact = torch.tensor(logfact, dtype=torch.float64, device=psi.device).neg().exp()
        # [sum_n d^a / a!, sum_n d_i d^a / a!] (#monomials, 1 + F), 4096 centres at a time
        moments = d64.new_zeros(len(logfact), 1 + F)
        for a in range(0, d64.shape[0], 4096):
            d = d64[a:a + 4096]
            moments += self._monomials_t(d.T) @ torch.cat([torch.ones_like(d[:, :1]), d], -1)
        self.moments = moments * inv_fact.unsqueeze(-1)

    def to(self, device) -> "MomentSeries":
        for name in ("mu", "moments"):
            setattr(self, name, getattr(self, name).to(device))
        self.parents = [p.to(device) for p in self.parents]
        self.variables = [v.to(device) for v in self.variables]
        return self

    def _monomials_t(self, Vt: torch.Tensor) -> torch.Tensor:
        """``V^a`` for every monomial from ``Vt (F, B)``: ``(#monomials, B)``, constant first (monomials as
        rows: each degree is two row gathers and a product, several times faster than column gathers)."""
        level = torch.ones_like(Vt[:1])
        rows = [level]
        for par, var in zip(self.parents, self.variables):
            level = level[par] * Vt[var]
            rows.append(level)
        return torch.cat(rows, 0)

    def applies(self, U: torch.Tensor) -> torch.Tensor:
        """Rows of ``U (B, F)`` within the series' radius, ``(B,)`` bool."""
        return U.norm(dim=-1) * self.R <= self.r0

    def __call__(self, U: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(log Z (b,), psi_bar (b, F))`` in ``U``'s dtype, for rows that :meth:`applies` to."""
        V = U.to(torch.float64)
        Q = self._monomials_t(V.T).T @ self.moments
        log_z = torch.log(Q[:, 0]) + V @ self.mu
        psi_bar = Q[:, 1:] / Q[:, :1] + self.mu
        return log_z.to(U.dtype), psi_bar.to(U.dtype)


def moment_series(psi: torch.Tensor, dtype: torch.dtype) -> Optional[MomentSeries]:
    """A :class:`MomentSeries` of the flattened centre features ``psi (n, F)`` for work in ``dtype``, or
    ``None`` where it would serve no row (its radius below :data:`MIN_RADIUS` in ``|U| R``: float64, many
    features) or the device has no float64."""
    if psi.device.type == "mps" or psi.shape[0] == 0:
        return None
    K, r0 = _degree(psi.shape[-1], dtype)
    return MomentSeries(psi, K, r0) if r0 >= MIN_RADIUS else None
