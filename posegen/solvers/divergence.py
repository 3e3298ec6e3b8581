r"""Divergence of a velocity field on a product manifold, exact (torch.func) or Hutchinson.

posegen's velocity fields are built as ``v(x) = proju(projx(x), f(projx(x)))`` (see
:class:`posegen.models.VelocityMLP`). For such a field the plain trace of its coordinate Jacobian *is* the
Riemannian divergence, factor by factor:

* R^d and tori: flat coordinates, ``div v = tr(dv/dx)``.
* spheres (and SO3) embedded in R^(d+1): ``v`` is constant along rays (it sees ``x/|x|``) and tangent, so
  ``n^T J n = 0`` and ``tr J = tr(P J P)``, the Riemannian divergence with ``P = I - x x^T``.

So one ``coord_dim x coord_dim`` Jacobian trace serves every product; no per-factor code.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch.func import jacfwd, jvp, vmap

METHODS = ("exact", "hutchinson")


def rademacher(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Hutchinson probe ``e`` of ``x``'s shape, entries +-1, drawn on the generator's device (or ``x``'s
    when there is none) and moved to ``x``'s: give a generator on ``x``'s device to avoid the copy."""
    dev = generator.device if generator is not None else x.device
    return torch.randint(0, 2, x.shape, generator=generator, device=dev).to(x) * 2 - 1


def tangent_directions(manifold, x: torch.Tensor) -> torch.Tensor:
    """``(K, B, D)`` unit directions whose ``sum_k <e_k, J e_k>`` is the divergence of posegen's fields:
    an orthonormal tangent frame on each sphere / SO3 factor (``d`` directions instead of ``d + 1``: the
    field is constant along rays and tangent, so ``x^T J x = 0``), the coordinate axes elsewhere. ``K`` is
    the manifold's dimension: 2 instead of 3 on S2, 3 instead of 4 on SO3."""
    factors = getattr(manifold, "factors", [manifold])
    B, D = x.shape
    blocks, col = [], 0
    for f in factors:
        w = f.coord_dim
        frame_fn = getattr(f, "tangent_frame", None)
        if frame_fn is not None:
            fr = frame_fn(x[:, col:col + w])  # (d, B, w)
        else:
            fr = torch.eye(w, dtype=x.dtype, device=x.device).unsqueeze(1).expand(w, B, w)
        blocks.append(torch.nn.functional.pad(fr, (col, D - col - w)))
        col += w
    return torch.cat(blocks, 0)


def check_method(method: str) -> None:
    """Raise the one error message for an unknown divergence method (shared by the objectives)."""
    if method not in METHODS:
        raise ValueError(f'Invalid divergence method "{method}". Must be one of {sorted(METHODS)}')


def divergence(fn: Callable[..., torch.Tensor], x: torch.Tensor, *args: torch.Tensor,
               method: str = "exact", generator: Optional[torch.Generator] = None,
               probes: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Velocity and its divergence at a batch of points.

    Args:
        fn: the field for ONE point, ``fn(x_i (D,), *args_i) -> (D,)``; it is vmapped over the batch, so it
            must use no in-place batch statistics (an MLP is fine).
        x: points ``(B, D)``.
        *args: per-point extra inputs, each ``(B, ...)`` (time ``(B,)``, condition ``(B, C)``).
        method: ``"exact"`` (trace of the full Jacobian via ``jacfwd`` + ``vmap``: D forward-mode passes,
            cheap for the tens of coordinates of robot manifolds) or ``"hutchinson"`` (unbiased estimate
            ``E[e^T J e]`` with Rademacher probes ``e``: one jvp per probe, for high dimension).
        generator: RNG for the Hutchinson probes.
        probes: Hutchinson probes per point (averaged).

    Returns:
        ``(v (B, D), div (B,))``. Both are differentiable w.r.t. the parameters ``fn`` closes over, so
        losses that contain ``div v`` (CNFM, Moser Flow) train through them.
    """
    check_method(method)
    if x.dim() != 2:
        raise ValueError(f"divergence expects points of shape (B, D), got {tuple(x.shape)}")
    if int(probes) != probes or probes < 1:
        raise ValueError(f"probes must be a positive integer, got {probes!r}")
    if method == "exact":
        def with_aux(xi, *a):
            out = fn(xi, *a)
            return out, out

        jac, v = vmap(jacfwd(with_aux, has_aux=True))(x, *args)
        return v, jac.diagonal(dim1=-2, dim2=-1).sum(-1)

    def single(xi, ei, *a):
        return jvp(lambda y: fn(y, *a), (xi,), (ei,))

    divs = []
    v = None
    for _ in range(probes):
        e = rademacher(x, generator)
        v, je = vmap(single)(x, e, *args)
        divs.append((e * je).sum(-1))
    return v, torch.stack(divs).mean(0)
