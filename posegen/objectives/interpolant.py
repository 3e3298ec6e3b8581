r"""Stochastic interpolants (Albergo & Vanden-Eijnden, "Building Normalizing Flows with Stochastic
Interpolants", ICLR 2023; arXiv 2209.15571, 2022).

An interpolant ``x_t = I(t, x_0, x_1)`` joins a base sample ``x_0`` (t=0) to a data sample ``x_1``
(t=1). The velocity that transports the base to the data along it minimises the quadratic objective

.. math::  G(v) = \mathbb{E}_{t, x_0, x_1}\big[\, |v(t, x_t)|^2 - 2 \langle \partial_t I, v(t, x_t) \rangle \,\big],

whose minimiser is ``v*(t, x) = E[d/dt I | x_t = x]``.

The interpolant is chosen per factor of the product (assembled through ``M.factors`` / ``M.slices``,
vectorised over the batch):

* R^d, ``interpolant="linear"``: ``I = (1 - t) x_0 + t x_1`` (the geodesic);
* R^d, ``interpolant="trig"``: ``I = cos(pi t / 2) x_0 + sin(pi t / 2) x_1``, the paper's
  variance-preserving choice for a Gaussian base;
* tori, spheres, SO3: the minimising geodesic, as in RFM.

Relation to RFM: ``|v - dI|^2 = |v|^2 - 2 <dI, v> + |dI|^2``, so this loss equals RFM's loss minus
``E |dI/dt|^2``, a constant that does not depend on the model. With ``"linear"`` (or on compact
manifolds) the path is RFM's, the minimiser and the gradients are the same, but the reported number is
lower (it may be negative). With ``"trig"`` the path on R^d factors differs, so does the learned field.
"""

from __future__ import annotations

import math

import torch

from .base import PathObjective

INTERPOLANTS = ("linear", "trig")


def trig_interpolant(x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor):
    """``(I, dI/dt)`` for ``I = cos(pi t/2) x_0 + sin(pi t/2) x_1``; ``x_0, x_1 (B, d)``, ``t (B,)``."""
    a = (0.5 * math.pi) * t.unsqueeze(-1)
    c, s = torch.cos(a), torch.sin(a)
    return c * x_0 + s * x_1, (0.5 * math.pi) * (c * x_1 - s * x_0)


class Interpolant(PathObjective):
    """Stochastic-interpolant objective (deterministic interpolant, no latent noise).

    Args:
        interpolant: ``"linear"`` or ``"trig"``, used on R^d factors (compact factors use geodesics).
        t_eps: times are drawn from ``U[0, 1 - t_eps]`` (default 1e-3, as RFM; see
            :class:`~posegen.objectives.base.PathObjective`).

    Trains ``parametrization="cnf"`` flows on any posegen product.
    """

    name = "interpolant"

    def __init__(self, interpolant: str = "linear", t_eps: float = 1e-3, time_sampling: str = "uniform"):
        if interpolant not in INTERPOLANTS:
            raise ValueError(f'Invalid interpolant "{interpolant}". Must be one of {set(INTERPOLANTS)}')
        self.interpolant = interpolant
        super().__init__(t_eps=t_eps, time_sampling=time_sampling, interpolant=interpolant)

    def path(self, manifold, x_0, x_1, t):
        if self.interpolant == "linear":  # the geodesic on every factor, straight lines on R^d
            return manifold.geodesic(x_0, x_1, t)
        pts, vel = [], []
        for f, s in zip(manifold.factors, manifold.slices):
            make = trig_interpolant if f.vector_space else f.geodesic
            p, v = make(x_0[..., s], x_1[..., s], t)
            pts.append(p)
            vel.append(v)
        return torch.cat(pts, -1), torch.cat(vel, -1)

    def path_loss(self, manifold, x_t: torch.Tensor, v: torch.Tensor, dx_t: torch.Tensor) -> torch.Tensor:
        """``|v|^2 - 2 <dx_t, v>`` in the metric at ``x_t``, shape ``(B,)``."""
        return manifold.inner(x_t, v, v - 2 * dx_t)
