r"""Riemannian Flow Matching (Chen & Lipman, "Flow Matching on General Geometries", ICLR 2024).

On manifolds whose geodesics are known in closed form, RFM regresses the velocity field onto the
velocity of the geodesic from a base sample to a data sample:

.. math::  L(\theta) = \mathbb{E}_{t, x_0 \sim p_0, x_1 \sim q}\,
           \| v_\theta(t, x_t) - \dot x_t \|^2_{x_t}, \qquad x_t = \exp_{x_0}(t \log_{x_0} x_1),

with ``t ~ U[0, 1 - t_eps]`` (see :class:`~posegen.objectives.base.PathObjective` for why ``t_eps``).
``x_t, dx_t = M.geodesic(x_0, x_1, t)`` is closed form per factor: straight lines on R^d (so RFM is
conditional-OT flow matching there), wrapped straight lines on tori, great circles on spheres, and on
SO3 the great circle to the nearer of ``x_1`` and ``-x_1``. The norm is the Riemannian metric at ``x_t``
(``M.inner``; for posegen's factors the coordinate dot product). Simulation-free and without any
Jacobian-vector product; the loss is 0 only if the model reproduces every geodesic, so its minimum is
the (positive) conditional variance of ``dx_t``, not 0.
"""

from __future__ import annotations

import torch

from .base import PathObjective


class RFM(PathObjective):
    """Riemannian Flow Matching with geodesic paths from the base distribution to the data.

    Args:
        t_eps: times are drawn from ``[0, 1 - t_eps]`` (default 1e-3).
        time_sampling: ``"uniform"`` (default) or ``"late"`` (``t = 1 - (1 - u)^2``, more draws near the data;
            see :class:`~posegen.objectives.base.PathObjective`).

    Trains ``parametrization="cnf"`` flows on any posegen product.
    """

    name = "rfm"

    def __init__(self, t_eps: float = 1e-3, time_sampling: str = "uniform"):
        super().__init__(t_eps=t_eps, time_sampling=time_sampling)

    def path_loss(self, manifold, x_t: torch.Tensor, v: torch.Tensor, dx_t: torch.Tensor) -> torch.Tensor:
        """``|v - dx_t|^2`` in the metric at ``x_t``, shape ``(B,)``."""
        return manifold.inner(x_t, v - dx_t)
