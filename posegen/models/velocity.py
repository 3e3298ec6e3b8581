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

    # ------------------------------------------------------------------ divergence
    def _act_slope(self, p: torch.Tensor):
        """``(act(p), act'(p))`` in closed form for the built-in activations (forward AD otherwise)."""
        a = self.act
        if isinstance(a, nn.SiLU):
            s = torch.sigmoid(p)
            return p * s, s * (1 + p * (1 - s))
        if isinstance(a, nn.Tanh):
            h = torch.tanh(p)
            return h, 1 - h * h
        if isinstance(a, nn.GELU) and a.approximate == "none":
            cdf = 0.5 * (1 + torch.erf(p * (0.5 ** 0.5)))
            return p * cdf, cdf + p * torch.exp(-0.5 * p * p) * (2 * math.pi) ** -0.5
        return torch.func.jvp(a, (p,), (torch.ones_like(p),))

    def forward_and_div(self, t: torch.Tensor, x: torch.Tensor, condition: Optional[torch.Tensor] = None,
                        directions: Optional[torch.Tensor] = None):
        r"""``(v (B, D), sum_k <e_k, J e_k> (B,))`` for ``x (B, D)`` and directions ``e (K, B, D)`` (default:
        the ``D`` coordinate axes, i.e. ``tr J``; an orthonormal tangent frame gives the same trace for
        this field, see :mod:`posegen.solvers.divergence`; a Rademacher probe gives Hutchinson's estimate).

        Forward mode by hand through the MLP: the ``K`` tangents ride along the batch as one ``(K B, H)``
        matrix product per layer (no ``vmap``/``jacfwd`` per point); only the manifold's features and head
        go through ``torch.func.jvp``. Differentiable w.r.t. the parameters.
        """
        M = self.manifold
        B, D = x.shape
        if directions is None:
            directions = torch.eye(D, dtype=x.dtype, device=x.device).unsqueeze(1).expand(D, B, D)
        K = directions.shape[0]
        directions = directions.contiguous()  # forward AD refuses expanded (aliased) tangents
        xs = x.expand(K, B, D).contiguous()
        feat, dfeat = torch.func.jvp(lambda y: self.features(M.projx(y)), (xs,), (directions,))
        feat = feat[0]
        F = feat.shape[-1]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(B).unsqueeze(-1)
        tf = t * self.freqs.to(x.dtype)
        h = [feat, t, torch.sin(tf), torch.cos(tf)]
        if self.cond_dim:
            if condition is None:
                raise ValueError(f"this model is conditional (cond_dim={self.cond_dim}): pass condition=")
            condition = condition.to(x.dtype).expand(B, self.cond_dim)
            if self.conditioning == "concat":
                h.append(condition)
        h = torch.cat(h, -1)
        film = self.film(condition).chunk(2 * len(self.layers), dim=-1) if self.film is not None else None
        T = None
        for i, layer in enumerate(self.layers):
            p = layer(h)
            # only the feature columns of the first layer see x
            Tp = dfeat @ layer.weight[:, :F].T if i == 0 else T @ layer.weight.T
            if film is not None:
                p = p * (1 + film[2 * i]) + film[2 * i + 1]
                Tp = Tp * (1 + film[2 * i])
            h, slope = self._act_slope(p)
            T = Tp * slope
        out = self.out(h)
        Tout = T @ self.out.weight.T
        v, dv = torch.func.jvp(lambda y, o: M.head(M.projx(y), o), (xs, out.expand(K, *out.shape).contiguous()),
                               (directions, Tout))
        return v[0], (directions * dv).sum(-1).sum(0)
