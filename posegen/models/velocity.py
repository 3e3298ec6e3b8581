"""The velocity network: an MLP on manifold-aware features with per-factor tangent heads."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.autograd.forward_ad as fwAD
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

        Forward mode by hand through the MLP: the point and its ``K`` tangents go through each layer as one
        ``((K + 1) B, H)`` matrix product (no ``vmap``/``jacfwd`` per point); only the manifold's features
        and head go through forward AD. Differentiable w.r.t. the parameters, ``x`` and the condition. For
        SiLU, tanh and exact GELU without FiLM or autocast, the layers after the first are one autograd node
        with a backward by hand (:class:`_TangentMLP`: per layer one product for the input gradient, one for
        the weight's, two elementwise passes over the tangents); otherwise autograd runs through the same
        forward.
        """
        M = self.manifold
        B, D = x.shape
        if directions is None:
            directions = torch.eye(D, dtype=x.dtype, device=x.device).unsqueeze(1).expand(D, B, D)
        K = directions.shape[0]
        directions = directions.contiguous()  # forward AD refuses expanded (aliased) tangents
        xs = x.expand(K, B, D).contiguous()
        feat, dfeat = _jvp(lambda y: self.features(M.projx(y)), (xs,), (directions,))
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
        first = self.layers[0]
        p = first(h)
        # only the feature columns of the first layer see x
        Tp = dfeat @ first.weight[:, :F].T
        rest = [(layer.weight, layer.bias) for layer in self.layers[1:]] + [(self.out.weight, self.out.bias)]
        if self.film is None and _closed_form(self.act) and not torch.is_autocast_enabled(x.device.type):
            wb = [a for pair in rest for a in pair]
            if torch.is_grad_enabled():
                y = _TangentMLP.apply(self.act, p, Tp, *wb)
            else:
                y = _tangent_mlp(self.act, p, Tp, wb)
        else:
            film = self.film(condition).chunk(2 * len(self.layers), dim=-1) if self.film is not None else None
            y = self._tangent_mlp_autograd(p, Tp, film)
        out, Tout = y[0], y[1:]
        v, dv = _jvp(lambda z, o: M.head(M.projx(z), o), (xs, out.expand(K, *out.shape).contiguous()),
                     (directions, Tout))
        return v[0], (directions * dv).sum(-1).sum(0)

    def _tangent_mlp_autograd(self, p, Tp, film):
        """The layers after the first on ``(p (B, H), Tp (K, B, H))``, the first layer's pre-activation and
        its tangents, by plain autograd: ``y (K + 1, B, head_dim)``, the output and its tangents."""
        for i, layer in enumerate([*self.layers[1:], self.out]):
            if film is not None:
                p = p * (1 + film[2 * i]) + film[2 * i + 1]
                Tp = Tp * (1 + film[2 * i])
            h, slope = self._act_slope(p)
            P = torch.cat([h.unsqueeze(0), Tp * slope], 0) @ layer.weight.T
            p, Tp = P[0] + layer.bias, P[1:]
        return torch.cat([p.unsqueeze(0), Tp], 0)


def _closed_form(act: nn.Module) -> bool:
    """Whether :func:`_act_derivatives` knows ``act``."""
    return isinstance(act, (nn.SiLU, nn.Tanh)) or (isinstance(act, nn.GELU) and act.approximate == "none")


def _jvp(fn, primals, tangents):
    """``(fn(*primals), d fn . tangents)`` by forward AD, differentiable by autograd: dual tensors directly,
    ~0.3 ms less per call than ``torch.func.jvp`` for the small features and heads (2 x 256 x 3 on S2).
    Like ``torch.func.jvp``, not inside another forward-AD level (they do not nest)."""
    with fwAD.dual_level():
        out = fn(*[fwAD.make_dual(p, t) for p, t in zip(primals, tangents)])
        primal, tangent = fwAD.unpack_dual(out)
    if tangent is None:  # fn does not depend on the primals
        tangent = torch.zeros_like(primal)
    return primal, tangent


def _act_derivatives(act: nn.Module, p: torch.Tensor, out: torch.Tensor, second: bool):
    """``act(p)`` into ``out``, and ``(act'(p), act''(p))`` (the last ``None`` unless ``second``), for SiLU,
    tanh and exact GELU, in few passes with in-place steps (no autograd through it)."""
    if isinstance(act, nn.SiLU):
        s = torch.sigmoid(p)
        h = torch.mul(p, s, out=out)
        u = p - h  # p (1 - s)
        d1 = torch.addcmul(s, s, u)  # s (1 + p (1 - s))
        if not second:
            return d1, None
        d2 = torch.addcmul(s, s, s, value=-1)  # s (1 - s) (2 + p (1 - 2 s))
        return d1, d2.mul_(u.sub_(h).add_(2))
    if isinstance(act, nn.Tanh):
        h = torch.tanh(p, out=out)
        d1 = torch.mul(h, h).neg_().add_(1)
        return d1, (torch.mul(h, d1).mul_(-2) if second else None)
    if isinstance(act, nn.GELU) and act.approximate == "none":
        cdf = torch.mul(p, 0.5 ** 0.5).erf_().add_(1).mul_(0.5)
        pdf = torch.mul(p, p)
        torch.mul(p, cdf, out=out)
        d2 = pdf.neg().add_(2) if second else None  # 2 - p^2
        pdf.mul_(-0.5).exp_().mul_((2 * math.pi) ** -0.5)
        d1 = torch.addcmul(cdf, p, pdf)
        return d1, (d2.mul_(pdf) if second else None)
    raise ValueError(f"no closed-form derivatives for activation {act!r}")


def _tangent_mlp(act, p, Tp, wb, saved=None):
    """The forward of :class:`_TangentMLP` (``wb``: ``[W_1, b_1, ..., W_out, b_out]``); with a list
    ``saved``, appends ``(Tp, act', act'', Z)`` of every layer for the backward."""
    K, B, H = Tp.shape
    for W, b in zip(wb[0::2], wb[1::2]):
        Z = torch.empty((K + 1, B, H), dtype=p.dtype, device=p.device)
        d1, d2 = _act_derivatives(act, p, Z[0], second=saved is not None)
        torch.mul(Tp, d1, out=Z[1:])
        if saved is not None:
            saved += [Tp, d1, d2, Z]
        P = (Z.view(-1, H) @ W.T).view(K + 1, B, -1)
        P[0] += b
        p, Tp = P[0], P[1:]
        H = P.shape[-1]
    return P


class _TangentMLP(torch.autograd.Function):
    r"""The hidden layers after the first and the output layer of :class:`VelocityMLP`, in forward mode over
    ``K`` tangents, as one autograd node.

    ``apply(act, p (B, H), Tp (K, B, H), W_1, b_1, ..., W_out, b_out) -> y (K + 1, B, O)``: ``p`` is the
    first layer's pre-activation, ``Tp`` its tangents; ``y[0]`` the output, ``y[1:]`` its tangents. Each
    layer runs ``Z = [h; T]`` (``(K + 1) B`` rows, one buffer) through one product, ``h' = act(p)`` and
    ``T' = act'(p) Tp``. The backward, per layer, with ``gh, gT`` the gradients of ``h', T'``:
    ``gTp = act'(p) gT``, ``gp = act'(p) gh + act''(p) sum_k gT_k Tp_k``, then ``[gp; gTp]`` through one
    product for the input gradient and one for ``W``'s. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, act, p, Tp, *wb):
        saved = []
        P = _tangent_mlp(act, p, Tp, wb, saved)
        ctx.save_for_backward(*saved, *wb)
        ctx.n = len(wb) // 2
        return P

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, G):
        saved = ctx.saved_tensors
        n = ctx.n
        wb = saved[4 * n:]
        grads = [None] * (2 * n)
        Kp1, B, O = G.shape
        G = G.contiguous()
        for i in reversed(range(n)):
            Tp, d1, d2, Z = saved[4 * i: 4 * i + 4]
            W = wb[2 * i]
            H = Z.shape[-1]
            if ctx.needs_input_grad[3 + 2 * i]:
                grads[2 * i] = G.view(-1, O).T @ Z.view(-1, H)
            if ctx.needs_input_grad[4 + 2 * i]:
                grads[2 * i + 1] = G[0].sum(0)
            G = (G.view(-1, O) @ W).view(Kp1, B, H)
            # back through the activation, in place: h' = act(p), T' = act'(p) Tp
            gT = G[1:]
            acc = gT[0] * Tp[0]
            for k in range(1, Kp1 - 1):
                acc.addcmul_(gT[k], Tp[k])
            G[0].mul_(d1).addcmul_(acc, d2)
            gT.mul_(d1)
            O = H
        return (None, G[0], G[1:], *grads)
