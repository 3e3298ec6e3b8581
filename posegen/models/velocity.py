"""The velocity network: an MLP on manifold-aware features with per-factor tangent heads."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..manifolds import SO3, Euclidean, Product, Sphere, Torus

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "softplus": nn.Softplus}
CONDITIONING = ("concat", "film")


def _feature_dim(f) -> int:
    if isinstance(f, SO3):
        return 10
    if isinstance(f, Torus):
        return 2 * f.dim
    return f.coord_dim


def _head_dim(f) -> int:
    return 16 if isinstance(f, SO3) else f.coord_dim


_TRIU = torch.triu_indices(4, 4)


class VelocityMLP(nn.Module):
    r"""Time-dependent tangent field ``v(t, x) (..., coord_dim)`` on a :class:`Product`.

    Features, per factor:

    * R^d: the coordinates (posegen standardises them with the data's mean/std before they get here);
    * torus: ``(cos theta, sin theta)``, so the field is periodic in every angle;
    * S^d: the unit vector ``x / |x|``;
    * SO3: the 10 entries of ``q q^T`` on and above the diagonal, invariant under ``q -> -q``.

    Heads, per factor: R^d and torus outputs are used as they are; sphere outputs are projected to the
    tangent space, ``v = proju(x, h)``; an SO3 head outputs a 4x4 matrix ``A`` and ``v = proju(q, A q)``, an
    odd field (``v(-q) = -v(q)``), so the flow commutes with ``q -> -q`` and descends to rotations exactly:
    the density on SO3 is twice the one on S^3, which is what ``SO3.base_log_prob`` already accounts for.

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
        in_dim = sum(_feature_dim(f) for f in manifold.factors) + 1 + 2 * self.time_freqs
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
        self.out = nn.Linear(hidden, sum(_head_dim(f) for f in manifold.factors))
        # A zero output layer starts the flow at the identity map: the model density is the base density.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def features(self, x: torch.Tensor):
        feats = []
        for f, xf in zip(self.manifold.factors, self.manifold.split(x)):
            if isinstance(f, SO3):
                outer = xf.unsqueeze(-1) * xf.unsqueeze(-2)
                idx = _TRIU.to(xf.device)
                feats.append(outer[..., idx[0], idx[1]])
            elif isinstance(f, Torus):
                feats += [torch.cos(xf), torch.sin(xf)]
            else:
                feats.append(xf)
        return torch.cat(feats, -1)

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
        out = self.out(h)
        heads, start = [], 0
        for f, xf in zip(M.factors, M.split(x)):
            k = _head_dim(f)
            o = out[..., start:start + k]
            start += k
            if isinstance(f, SO3):
                A = o.unflatten(-1, (4, 4))
                o = (A @ xf.unsqueeze(-1)).squeeze(-1)
            if isinstance(f, Sphere):
                o = f.proju(xf, o)
            heads.append(o)
        return torch.cat(heads, -1)
