r"""Von Mises and von Mises-Fisher distributions on S^1..S^3: exact log-normalisers and batched samplers.

The building blocks of the compact CNFM kernels (:mod:`.families`); nothing here knows about factors.

Numerics: ``log C_p(kappa) + kappa`` grows only like ``log kappa``, so kernels are evaluated as
``kappa (<y, x> - 1) + (log C + kappa)``; Bessel functions enter through the exponentially scaled
``torch.special.i0e`` / ``i1e``; below a small ``kappa`` the normalisers switch to Taylor series so values
and ``d/dkappa`` are finite and exact at ``kappa = 0``. Samplers work in float64 internally and take a
``generator``; a CPU generator gives the same numbers for CPU and CUDA data (:func:`_draw`).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..manifolds import tol

_LOG_2PI = math.log(2 * math.pi)
_MAX_REJECTION_ROUNDS = 1000
# Off the CPU, rejection runs a fixed number of rounds in blocks (no host sync per round): both samplers
# accept >= 65.6 % of proposals for every kappa (Best & Fisher's von Mises: 0.656 as kappa -> infinity;
# Wood's on S^3: 0.688), so an entry is still pending after 48 rounds with probability <= 0.344^48 < 1e-22.
_FIXED_REJECTION_ROUNDS = 48
_FIXED_REJECTION_BLOCK = 16


# ---------------------------------------------------------------------- normalisers
def _small(kappa: torch.Tensor) -> torch.Tensor:
    """Where the Taylor branches of the normalisers take over (values and slopes exact there)."""
    return kappa < tol(kappa.dtype, "eps") ** 0.5 * 10


def log_vmf_normalizer_shifted(kappa: torch.Tensor, p: int) -> torch.Tensor:
    """``log C_p(kappa) + kappa`` for ``p`` in {2, 3, 4}; ``O(log kappa)`` for large ``kappa``."""
    small = _small(kappa)
    k = torch.where(small, torch.ones_like(kappa), kappa)  # safe argument for the large branch
    k2 = kappa * kappa
    if p == 2:  # 1 / (2 pi I_0): log I_0(k) = k^2/4 - k^4/64 + k^6/576 + ...
        large = -_LOG_2PI - torch.log(torch.special.i0e(k))
        series = kappa - _LOG_2PI - k2 / 4 + k2 * k2 / 64 - k2 ** 3 / 576
    elif p == 3:  # k / (4 pi sinh k): log(k / sinh k) = -k^2/6 + k^4/180 - k^6/2835 + ...
        large = torch.log(k) - _LOG_2PI - torch.log(-torch.expm1(-2 * k))
        series = kappa - math.log(4 * math.pi) - k2 / 6 + k2 * k2 / 180 - k2 ** 3 / 2835
    elif p == 4:  # k / (4 pi^2 I_1(k)): log(2 I_1(k) / k) = k^2/8 - k^4/384 + k^6/9216 + ...
        large = torch.log(k) - 2 * _LOG_2PI - torch.log(torch.special.i1e(k))
        series = kappa - math.log(2 * math.pi ** 2) - k2 / 8 + k2 * k2 / 384 - k2 ** 3 / 9216
    else:
        raise ValueError(f"von Mises-Fisher normaliser implemented for S^1, S^2, S^3 (p = 2, 3, 4), got p = {p}")
    return torch.where(small, series, large)


def log_vmf_normalizer(kappa: torch.Tensor, p: int) -> torch.Tensor:
    r"""``log C_p(kappa)`` of the von Mises-Fisher density ``C_p(kappa) exp(kappa <mu, x>)`` on
    ``S^(p-1)``, ``p`` in {2, 3, 4}; ``kappa (...) >= 0``. At ``kappa = 0`` it is ``-log vol(S^(p-1))``."""
    return log_vmf_normalizer_shifted(kappa, p) - kappa


def log_von_mises_normalizer(kappa: torch.Tensor) -> torch.Tensor:
    """``log(1 / (2 pi I_0(kappa)))``, the von Mises normaliser on one angle; ``kappa (...) >= 0``."""
    return log_vmf_normalizer(kappa, 2)


# ---------------------------------------------------------------------- sampling
def _draw(fn, shape, generator, device: torch.device, dtype) -> torch.Tensor:
    """``fn(shape)`` (``torch.rand`` / ``torch.randn``) on the generator's device (or ``device`` without
    one), moved to ``device`` (a ``torch.device``, e.g. ``x.device``); from a CPU generator to a CUDA
    device through pinned memory, without blocking the host. A CPU generator gives the same numbers for
    CPU and CUDA data (the rejection samplers then use them differently, see :func:`_rejection`)."""
    if generator is None:
        return fn(shape, dtype=dtype, device=device)
    dev = generator.device
    if dev.type != "cpu" or device.type != "cuda":
        return fn(shape, generator=generator, dtype=dtype, device=dev).to(device)
    return fn(shape, generator=generator, dtype=dtype, device=dev, pin_memory=True).to(device, non_blocking=True)


def _uniform(shape, generator, device, dtype=torch.float64) -> torch.Tensor:
    """U[0, 1) (float64 unless ``dtype``) drawn on the generator's device (CPU generators work for CUDA
    data, see :func:`_draw`)."""
    return _draw(torch.rand, shape, generator, device, dtype)


def _normal(shape, generator, device) -> torch.Tensor:
    """float64 N(0, 1), drawn like :func:`_uniform`."""
    return _draw(torch.randn, shape, generator, device, torch.float64)


def _sync_free(device: torch.device) -> bool:
    """Whether :func:`_rejection` runs its fixed rounds (every device but the CPU)."""
    return device.type != "cpu"


def _rejection(n: int, width: int, propose, device, name: str) -> torch.Tensor:
    """Batched rejection sampling of ``n`` draws, ``(n, width)`` float64.

    ``propose(idx) -> (accept (m,), values (m, width))`` proposes one candidate for each entry ``idx (m,)``.
    On the CPU each round redraws only the pending entries until none is left (the Python loop runs over
    rounds, never over points). Elsewhere (:func:`_sync_free`) there is no host sync: blocks of
    ``_FIXED_REJECTION_BLOCK`` rounds propose for every entry at once and each entry keeps its first
    accepted candidate, ``_FIXED_REJECTION_ROUNDS`` rounds in all, and one check on the device at the end
    (failure probability below 1e-22 per entry, see the constants). The two modes use the generator's
    stream differently, so a seeded draw on the CPU differs from one on a GPU (also with a CPU generator).
    """
    if _sync_free(device):
        return _rejection_fixed(n, width, propose, device, name)
    out = torch.zeros(n, width, dtype=torch.float64, device=device)
    pending = torch.arange(n, device=device)
    for _ in range(_MAX_REJECTION_ROUNDS):
        if pending.numel() == 0:
            return out
        accept, values = propose(pending)
        out[pending[accept]] = values[accept]
        pending = pending[~accept]
    raise RuntimeError(f"{name}: rejection sampler did not finish")  # pragma: no cover


def _rejection_fixed(n: int, width: int, propose, device, name: str) -> torch.Tensor:
    """:func:`_rejection`'s fixed rounds: no data-dependent shapes, no host sync."""
    R = _FIXED_REJECTION_BLOCK
    out = torch.zeros(n, width, dtype=torch.float64, device=device)
    pending = torch.ones(n, dtype=torch.bool, device=device)
    idx = torch.arange(n, device=device).repeat(R)  # round-major: entry i of round r at r n + i
    for _ in range(_FIXED_REJECTION_ROUNDS // R):
        accept, values = propose(idx)
        accept, values = accept.view(R, n), values.view(R, n, width)
        first = accept.to(torch.uint8).argmax(0)  # the first accepted round (0 if none)
        chosen = values.gather(0, first.view(1, n, 1).expand(1, n, width))[0]
        out = torch.where((pending & accept.any(0)).unsqueeze(-1), chosen, out)
        pending = pending & ~accept.any(0)
    torch._assert_async(~pending.any(), f"{name}: rejection sampler did not finish")
    return out


def sample_von_mises(kappa: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""Angles ``theta ~ VonMises(0, kappa)`` in ``[-pi, pi]``, one per entry of ``kappa (...) >= 0``.

    Best & Fisher's (1979) rejection sampler, batched (a handful of rounds: acceptance is above 65 % for
    every ``kappa``). ``kappa = 0`` gives exact uniform angles. float64 inside, returned in ``kappa``'s
    dtype. Unlike ``torch.distributions.VonMises`` it takes a ``generator``.
    """
    k = kappa.detach().to(torch.float64).reshape(-1)
    zero = k < 1e-100  # uniform to within exp(1e-100): draw exactly uniform angles (no 1/kappa overflow)
    ks = torch.where(zero, torch.ones_like(k), k)
    tau = 1 + torch.sqrt(1 + 4 * ks * ks)
    rho = (tau - torch.sqrt(2 * tau)) / (2 * ks)
    r = torch.where(ks < 1e-5, 1 / ks + ks, (1 + rho * rho) / (2 * rho))

    def propose(idx):
        u1, u2, u3 = _uniform((3, idx.shape[0]), generator, k.device).unbind(0)
        r_i, k_i = r[idx], ks[idx]
        z = torch.cos(math.pi * u1)
        f = ((1 + r_i * z) / (r_i + z)).clamp(-1, 1)
        c = k_i * (r_i - f)
        accept = (c * (2 - c) - u2 > 0) | (torch.log(c / u2) + 1 - c >= 0)
        return accept, (torch.where(u3 < 0.5, -1.0, 1.0).to(k) * torch.acos(f)).unsqueeze(-1)

    theta = _rejection(k.shape[0], 1, propose, k.device, "sample_von_mises")[:, 0]
    theta = torch.where(zero, math.pi * (2 * _uniform(k.shape, generator, k.device) - 1), theta)
    return theta.reshape(kappa.shape).to(kappa.dtype)


def _vmf_cosine(kappa: torch.Tensor, p: int, generator) -> tuple:
    """``(w, s)``: the cosine ``w = <mu, x>`` of a vMF sample on ``S^(p-1)`` and ``s = sqrt(1 - w^2)``,
    float64, accurate near ``w = 1``; ``kappa (B,)``."""
    k = kappa.detach().to(torch.float64)
    if p == 2:
        theta = sample_von_mises(k, generator)
        return torch.cos(theta), torch.sin(theta).abs()
    if p == 3:  # inverse CDF: w = 1 + log(u + (1 - u) e^(-2k)) / k
        one_minus_u = _uniform(k.shape, generator, k.device)  # 1 - u in [0, 1)
        pos = k > 0
        ks = torch.where(pos, k, torch.ones_like(k))
        omw = torch.where(pos, -torch.log1p(one_minus_u * torch.expm1(-2 * ks)) / ks, 2 * one_minus_u)
        omw = omw.clamp(0, 2)
        return 1 - omw, torch.sqrt(omw * (2 - omw))
    # Wood (1994), batched rejection in the stable form:
    #   b = (p-1) / (2k + sqrt(4k^2 + (p-1)^2)), z ~ Beta((p-1)/2, (p-1)/2),
    #   1 - w = 2 b z / (1 - (1-b) z), 1 + w = 2 (1-z) / (1 - (1-b) z),
    #   accept iff k (w - x0) + (p-1) log((1+b) / (2 (1 - (1-b) z))) >= log u, with 1 - x0 = 2b / (1+b).
    m = p - 1
    b = m / (2 * k + torch.sqrt(4 * k * k + m * m))

    def propose(idx):
        k_i, b_i = k[idx], b[idx]
        # Beta(m/2, m/2) as (1 + first coordinate of a uniform point on S^(p-1)) / 2
        g = _normal((idx.shape[0], p), generator, k.device)
        g2 = (g * g).sum(-1)
        z = 0.5 * (1 + g[:, 0] / torch.sqrt(g2))
        one_minus_c2 = (g[:, 1:] ** 2).sum(-1) / g2  # 4 z (1 - z)
        denom = 1 - (1 - b_i) * z
        omw = 2 * b_i * z / denom
        log_u = torch.log1p(-_uniform(idx.shape, generator, k.device))
        accept = (k_i * (2 * b_i / (1 + b_i) - omw) + m * (torch.log1p(b_i) - math.log(2) - torch.log(denom))
                  >= log_u)
        return accept, torch.stack([1 - omw, torch.sqrt(b_i * one_minus_c2) / denom], -1)

    ws = _rejection(k.shape[0], 2, propose, k.device, "sample_vmf")
    return ws[:, 0], ws[:, 1]


def sample_vmf(mu: torch.Tensor, kappa: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""von Mises-Fisher samples on ``S^(p-1)``, ``p`` in {2, 3, 4}: ``mu (B, p)`` unit means, ``kappa (B,)``.

    The cosine ``w = <mu, x>`` comes from its exact 1-D law (von Mises for p = 2, inverse CDF for p = 3,
    Wood's rejection for p = 4); the rest is ``x = w mu + sqrt(1 - w^2) v`` with ``v`` uniform on the unit
    sphere of the tangent space at ``mu`` (a projected Gaussian: any rotation taking the pole to ``mu``,
    e.g. a Householder reflection, gives the same law, and this needs no frame). ``kappa = 0`` is exactly
    uniform.
    """
    p = mu.shape[-1]
    if p not in (2, 3, 4):
        raise ValueError(f"sample_vmf: points must lie on S^1, S^2 or S^3 (p = 2, 3, 4 coordinates), got p = {p}")
    m = mu.detach().to(torch.float64)
    w, s = _vmf_cosine(kappa, p, generator)
    g = _normal(tuple(m.shape), generator, m.device)
    v = g - (g * m).sum(-1, keepdim=True) * m
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    x = w.unsqueeze(-1) * m + s.unsqueeze(-1) * v
    return (x / x.norm(dim=-1, keepdim=True)).to(mu.dtype)
