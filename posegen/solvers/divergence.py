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
        dev = generator.device if generator is not None else x.device
        e = torch.randint(0, 2, x.shape, generator=generator, device=dev).to(x) * 2 - 1
        v, je = vmap(single)(x, e, *args)
        divs.append((e * je).sum(-1))
    return v, torch.stack(divs).mean(0)
