"""The velocity network: an MLP on manifold-aware features with per-factor tangent heads."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..manifolds import Product

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "softplus": nn.Softplus}
CONDITIONING = ("concat", "film")


class VelocityMLP(nn.Module):
    r"""Time-dependent tangent field ``v(t, x) (..., coord_dim)`` on a :class:`Product`.

    Each factor says what the network sees of it and how raw outputs become a tangent vector
    (``Manifold.features`` / ``Manifold.head``): R^d its (standardised) coordinates; a torus ``(cos, sin)``
    of every angle, so the field is periodic; S^d the unit vector and a projected head; SO3 the entries of
    ``q q^T`` (invariant under ``q -> -q``) and an odd head ``proju(q, A q)``, so the flow descends to
    rotations; an interval its unconstrained coordinate and a head that is a velocity there.

    Because the field sees ``projx(x)`` and is tangent, the trace of its coordinate Jacobian equals the
    Riemannian divergence (see :mod:`posegen.solvers.divergence`).

    Args:
        manifold: the product the field lives on.
        hidden, depth: width and number of hidden layers.
        cond_dim: size of the optional conditioning vector (0: unconditional).
        conditioning: ``"concat"`` (append to the input) or ``"film"`` (per-layer scale and shift).
        activation: one of :data:`ACTIVATIONS`.
        time_freqs: number of Fourier frequencies of the time embedding.

    Works on any leading shape, including none (one point), which is what ``torch.func.vmap`` feeds it.
    """

    def __init__(self, manifold: Product, hidden: int = 256, depth: int = 4, cond_dim: int = 0,
                 conditioning: str = "concat", activation: str = "silu", time_freqs: int = 4):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f'Invalid activation "{activation}". Must be one of {set(ACTIVATIONS)}')
        if conditioning not in CONDITIONING:
            raise ValueError(f'Invalid conditioning "{conditioning}". Must be one of {set(CONDITIONING)}')
        if hidden < 1 or depth < 1:
            raise ValueError(f"hidden and depth must be >= 1, got hidden={hidden}, depth={depth}")
        self.manifold = manifold
        self.cond_dim = int(cond_dim)
        self.conditioning = conditioning
        self.time_freqs = int(time_freqs)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(self.time_freqs, dtype=torch.float32),
                             persistent=False)
        in_dim = manifold.feature_dim + 1 + 2 * self.time_freqs
        if conditioning == "concat":
            in_dim += self.cond_dim
        act = ACTIVATIONS[activation]
        dims = [in_dim] + [hidden] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = act()
        self.film = (nn.Linear(self.cond_dim, 2 * hidden * depth)
                     if conditioning == "film" and self.cond_dim > 0 else None)
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.out = nn.Linear(hidden, manifold.head_dim)
        # A zero output layer starts the flow at the identity map: the model density is the base density.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def features(self, x: torch.Tensor):
        return self.manifold.features(x)

    def forward(self, t: torch.Tensor, x: torch.Tensor, condition: Optional[torch.Tensor] = None):
        """``t (...)`` or scalar, ``x (..., coord_dim)``, ``condition (..., cond_dim)`` -> ``v (..., coord_dim)``."""
        M = self.manifold
        x = M.projx(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[:-1]).unsqueeze(-1)
        tf = t * self.freqs.to(x.dtype)
        h = [self.features(x), t, torch.sin(tf), torch.cos(tf)]
        if self.cond_dim:
            if condition is None:
                raise ValueError(f"this model is conditional (cond_dim={self.cond_dim}): pass condition=")
            condition = condition.to(x.dtype).expand(*x.shape[:-1], self.cond_dim)
            if self.conditioning == "concat":
                h.append(condition)
        h = torch.cat(h, -1)
        film = None
        if self.film is not None:
            film = self.film(condition).chunk(2 * len(self.layers), dim=-1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if film is not None:
                h = h * (1 + film[2 * i]) + film[2 * i + 1]
            h = self.act(h)
        return M.head(x, self.out(h))
