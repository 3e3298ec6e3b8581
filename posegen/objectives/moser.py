r"""Moser Flow (Rozen, Grover, Nickel & Lipman, "Moser Flow: Divergence-based Generative Modeling on
Manifolds", NeurIPS 2021).

The model density is written in closed form through a time-independent field ``u_theta``:

.. math::  \mu = \nu - \operatorname{div}_M u_\theta,

with ``nu`` the uniform density. On a compact manifold without boundary the divergence integrates to 0,
so ``mu`` integrates to 1 for every ``theta``; only its positivity has to be learned. The loss is

.. math::  L = -\frac{1}{B} \sum_i \log \max(\epsilon, \mu(x_i))
           + \lambda\, \mathrm{Vol}(M)\, \frac{1}{n} \sum_j (\epsilon - \mu(y_j))_+ ,
           \qquad y_j \sim \mathrm{Uniform}(M),

the data NLL plus a Monte-Carlo estimate of ``lambda * integral of (eps - mu)_+`` (the negative part).
``flow.moser_density`` returns ``(mu, u)``; the flow samples with ``v_t = u / ((1 - t) nu + t mu)``.

Defaults follow the authors' code (github.com/noamroze/moser_flow): ``lam = 100`` is ``lambda_minus`` of
``configs/earth.yml`` (the earth experiments). Their ``eps`` is 1e-5 on S^2; here ``eps`` defaults to the
flow's ``moser_eps`` (the floor ``log_prob`` applies), which unless set is ``posegen.flow.MOSER_EPS_REL /
Vol(M)`` = 1.58e-4 / Vol(M): 1.26e-5 on S^2, scaled with the uniform density on other manifolds. Their runner
draws as many uniform samples as the batch size (``mc_batch_size_scale`` defaults to 1; the
``mc_batch_scale: 10`` in earth.yml is a key the runner never reads), hence ``n_uniform = B``.

Near-data penalty points (``near > 0``, not in the paper): on concentrated data the field learns a peak at each
training point with a negative ring right beside it, too small for uniform points to find (volcano, 663
points, seed 0 after 20 CPU minutes at lam 100: ``mu`` down to -1.2e6 within 0.003-0.03 rad of the data,
where 32 % of points have ``mu < eps`` against 0.4 % of uniform points; the floor then carried a mass of 122
+- 10, i.e. the "NLL" was that of a density 123 times too heavy). With near 0.5 the floor mass of the three
volcano seeds is 0.0008-0.002 (benchmarks/notes/seed_rows.md). With ``near`` a share of the penalty points is drawn
from kernels of widths ``near_scales`` around the batch's points and all of them are weighted by the inverse
mixture density (:func:`posegen.paths.proposal.near_data_points`), so the penalty is the same integral,
estimated where the negative part lives.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..paths.proposal import near_data_points
from ..solvers.divergence import check_method
from .base import Objective, check_batch, draw_base, draw_device


class Moser(Objective):
    """Moser Flow's objective for a ``parametrization="moser"`` flow on a compact manifold.

    Args:
        eps: density floor in the NLL and threshold of the positivity penalty (default: the flow's
            ``moser_eps``: by default ``posegen.flow.MOSER_EPS_REL`` / Vol(M) = 1.58e-4 / Vol(M), i.e.
            1.26e-5 on S^2).
        lam: weight ``lambda`` of the negative-part penalty (default 100, the paper's earth setting).
        n_uniform: uniform samples per step for the penalty (default: the batch size).
        divergence: ``"exact"`` or ``"hutchinson"`` (how ``div u`` is computed).
        near: share of the penalty points drawn near the batch's data points, in ``[0, 1)`` (default 0: all
            uniform, the paper's estimate); unconditional flows only.
        near_scales: widths of the near-data kernels (default ``(0.01,)``: 0.01 rad on spheres and tori),
            the near share split evenly between them.
    """

    name = "moser"
    parametrization = "moser"

    def __init__(self, eps: Optional[float] = None, lam: float = 100.0, n_uniform: Optional[int] = None,
                 divergence: str = "exact", near: float = 0.0, near_scales=(0.01,)):
        if eps is not None and not (float(eps) > 0 and math.isfinite(float(eps))):
            raise ValueError(f'objective "moser": eps must be a positive number, got {eps!r}')
        if not (float(lam) >= 0 and math.isfinite(float(lam))):
            raise ValueError(f'objective "moser": lam must be a non-negative number, got {lam!r}')
        if n_uniform is not None and (int(n_uniform) != n_uniform or n_uniform < 1):
            raise ValueError(f'objective "moser": n_uniform must be a positive integer or None, got {n_uniform!r}')
        check_method(divergence)
        if not (isinstance(near, (int, float)) and 0 <= float(near) < 1):
            raise ValueError(f'objective "moser": near must be a share in [0, 1), got {near!r}')
        scales = [near_scales] if isinstance(near_scales, (int, float)) else list(near_scales)
        if not scales or not all(isinstance(s, (int, float)) and 0 < float(s) < 1 for s in scales):
            raise ValueError(f'objective "moser": near_scales must be one or more widths in (0, 1), got '
                             f'{near_scales!r}')
        self.near = float(near)
        self.near_scales = tuple(float(s) for s in scales)
        self.eps = None if eps is None else float(eps)
        self.lam = float(lam)
        self.n_uniform = None if n_uniform is None else int(n_uniform)
        self.divergence = divergence
        super().__init__(eps=self.eps, lam=self.lam, n_uniform=self.n_uniform, divergence=divergence,
                         near=self.near, near_scales=list(self.near_scales))

    def check(self, flow) -> None:
        M = getattr(flow, "manifold", None)
        if M is not None and not M.compact:
            flat = " x ".join(f.spec for f in M.factors if not f.compact)
            raise ValueError(
                f'objective "moser" needs a compact manifold, and {M!r} has the non-compact factor(s) {flat}: '
                f"the density nu - div u integrates to 1 only because div u integrates to 0 on a closed "
                f"manifold (divergence theorem), and nu and the positivity penalty need a uniform "
                f'distribution, which R^d does not have. Use objective "cnfm", "rfm" or "interpolant" '
                f'with a parametrization="cnf" flow instead')
        super().check(flow)

    def loss(self, flow, x_1, condition=None, generator=None, index=None):
        self.check(flow)
        check_batch(flow, x_1, self.name)
        M = flow.manifold
        B = x_1.shape[0]
        n = self.n_uniform or B
        eps = self.eps if self.eps is not None else float(flow.config["moser_eps"])
        if self.near > 0:
            if condition is not None:
                raise ValueError('objective "moser": near > 0 needs an unconditional flow (the importance '
                                 'weights of the near-data penalty points are those of one density)')
            y, weight = near_data_points(M, x_1, n, self.near, self.near_scales, generator=generator)
        else:  # the paper's estimate: uniform points (the base), each weighted by Vol(M)
            y, weight = draw_base(flow, n, x_1, generator), math.exp(M.log_volume)
        # One density evaluation for data and penalty points together.
        c = None if condition is None else _with_uniform_conditions(condition, B, n, generator, x_1)
        mu, _ = flow.moser_density(torch.cat([x_1, y]), c, method=self.divergence, generator=generator)
        mu_data, mu_pen = mu[:B], mu[B:]
        nll = -mu_data.clamp_min(eps).log().mean()
        negative = (weight * (eps - mu_pen).clamp_min(0)).mean()
        return nll + self.lam * negative


def _with_uniform_conditions(condition, B: int, n: int, generator, like: torch.Tensor) -> torch.Tensor:
    """``(B + n, C)``: the batch's conditions, then conditions for the ``n`` uniform samples (the batch's
    own when ``n == B``, else rows drawn from it), so that positivity is enforced under the conditions
    the data is seen with. ``condition`` is ``(B, C)``, or one row ``(C,)`` / ``(1, C)`` for all."""
    c = torch.as_tensor(condition, dtype=like.dtype, device=like.device)
    if c.dim() == 1:
        c = c.unsqueeze(0)
    if c.dim() != 2 or c.shape[0] not in (1, B):
        raise ValueError(f'objective "moser": condition must have shape ({B}, C), (1, C) or (C,) for a batch '
                         f"of {B}, got {tuple(c.shape)}")
    c = c.expand(B, -1)
    if n == B:
        return torch.cat([c, c])
    idx = torch.randint(0, B, (n,), generator=generator, device=draw_device(generator, like))
    return torch.cat([c, c[idx.to(c.device)]])
