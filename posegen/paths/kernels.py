r"""Kernels ``k_t(x | y)`` of the CNFM target path, one per kind of factor, and their samplers.

Every kernel is a probability density w.r.t. its factor's Riemannian volume, with an exact normaliser:

=========  ==========================================================================================
R^d        Gaussian ``N(alpha_t y, sigma_t^2 I)``
T^n        von Mises on each angle: ``exp(kappa cos(x - y)) / (2 pi I_0(kappa))``
S^d        von Mises-Fisher, ``d <= 3``: ``C_p(kappa) exp(kappa <y, x>)``, ``p = d + 1``,
           ``C_p = kappa^(p/2-1) / ((2 pi)^(p/2) I_(p/2-1)(kappa))``
SO3        the antipodal vMF pair on S^3 as a density on rotations (volume pi^2):
           ``vMF(q; y) + vMF(q; -y) = 2 C_4(kappa) cosh(kappa <y, q>)``
=========  ==========================================================================================

with ``alpha_t, sigma_t, kappa_t`` from a :class:`~posegen.paths.schedules.Schedule`. At ``t = 0``
(``alpha = 0, sigma = 1, kappa = 0``) each kernel is the factor's base density, whatever ``y``.

Numerics: compact kernels are evaluated as ``kappa (<y, x> - 1) + (log C + kappa)``, where the bracket
``log C + kappa`` grows only like ``log kappa``; Bessel functions enter through the exponentially scaled
``torch.special.i0e`` / ``i1e``; below a small ``kappa`` the normalisers switch to Taylor series so values
and ``d/dkappa`` are finite and exact at ``kappa = 0``. Samplers work in float64 internally.

Functions accept a single factor or a :class:`~posegen.manifolds.Product` (factors summed / concatenated).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..manifolds import Manifold, Product, tol, wrap_angle
from .schedules import Schedule, make_schedule

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


def _log_vmf_norm_shifted(kappa: torch.Tensor, p: int) -> torch.Tensor:
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
    return _log_vmf_norm_shifted(kappa, p) - kappa


def log_von_mises_normalizer(kappa: torch.Tensor) -> torch.Tensor:
    """``log(1 / (2 pi I_0(kappa)))``, the von Mises normaliser on one angle; ``kappa (...) >= 0``."""
    return log_vmf_normalizer(kappa, 2)


# ---------------------------------------------------------------------- factor dispatch
#: kernel families, keyed by ``Manifold.kernel``; each is a standard kernel in the factor's
#: ``kernel_coords`` (the identity but for factors such as intervals, whose kernel is a pushed-forward one)
KERNELS = ("gaussian", "von_mises", "vmf", "so3")


def _kind(factor: Manifold) -> str:
    kind = getattr(factor, "kernel", None)
    if kind not in KERNELS:
        raise TypeError(f"no CNFM kernel for manifold {factor!r} of type {type(factor).__name__} "
                        f"(its kernel is {kind!r}; known kernels: {', '.join(KERNELS)})")
    if kind in ("vmf", "so3") and factor.coord_dim > 4:
        raise ValueError(f"CNFM kernels support spheres S^1, S^2, S^3, got {factor.spec}: the vMF "
                         f"normaliser needs I_(p/2-1) with p = {factor.coord_dim}")
    return kind


def _split(manifold: Manifold, *tensors: torch.Tensor):
    """``[(factor, *parts)]`` over a Product's factors, or ``[(manifold, *tensors)]``."""
    if isinstance(manifold, Product):
        return list(zip(manifold.factors, *(manifold.split(a) for a in tensors)))
    return [(manifold, *tensors)]


def _check_args(name: str, factor: Manifold, *named):
    for arg, value, ndim, last in named:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != ndim or (last is not None and value.shape[-1] != last):
            want = f"({', '.join(['B'] * (ndim - 1) + [str(last)])})" if last is not None else "(B,)"
            raise ValueError(f"{name}: {arg} must have shape {want} for {factor!r}, got {tuple(value.shape)}")


# ---------------------------------------------------------------------- log-densities
def pairwise_log_kernel(factor: Manifold, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                        schedule: Optional[Schedule] = None) -> torch.Tensor:
    r"""``log k_t(x_b | y_n)`` for every pair, ``(B, N)``, by matrix products (no loop over points).

    Args:
        factor: a factor (R^d, torus, S^1..S^3, SO3) or a Product of them (log-kernels add up).
        x: points ``(B, coord_dim)``; y: kernel centres ``(N, coord_dim)``; t: times ``(B,)``, one per row of x.
        schedule: the path's schedule (default :class:`~posegen.paths.schedules.Schedule`).

    Differentiable w.r.t. ``x``, ``y`` and ``t``. For spheres the ambient gradient w.r.t. ``x`` is the one
    of the natural extension ``kappa <y, x>``; project it with ``proju`` for the Riemannian gradient.
    """
    schedule = make_schedule(schedule)
    _check_args("pairwise_log_kernel", factor, ("x", x, 2, factor.coord_dim), ("y", y, 2, factor.coord_dim),
                ("t", t, 1, None))
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"pairwise_log_kernel: t must have one time per row of x, got t {tuple(t.shape)} "
                         f"and x {tuple(x.shape)}")
    out, logdet = 0, 0
    for f, xf, yf in _split(factor, x, y):
        xk, ld = f.kernel_coords(xf)
        out = out + _pairwise_factor(f, xk, f.kernel_coords(yf.to(xf))[0], t, schedule)
        logdet = logdet + ld
    # the kernel-coordinate log-Jacobians depend on x only: one (B,) vector, added to the (B, N) matrix once
    return out + logdet.unsqueeze(-1)


def _pairwise_factor(f, x, y, t, schedule):
    """``log k_t`` of every pair in kernel coordinates (without the log-Jacobian), ``(B, N)``."""
    kind = _kind(f)
    t = t.unsqueeze(-1)  # (B, 1) against (B, N)
    if kind == "gaussian":
        # |x - alpha y|^2 = |x|^2 - 2 alpha <x, y> + alpha^2 |y|^2 (not clamped: the slope stays exact)
        alpha = schedule.alpha(t)
        stat = (x * x).sum(-1, keepdim=True) - 2 * alpha * (x @ y.T) + alpha * alpha * (y * y).sum(-1)
    elif kind == "von_mises":
        stat = torch.cos(x) @ torch.cos(y).T + torch.sin(x) @ torch.sin(y).T  # sum_i cos(x_i - y_i)
    else:
        stat = x @ y.T
    return _log_kernel_from_stat(kind, f, stat, t, schedule)


def _log_kernel_from_stat(kind: str, f: Manifold, stat: torch.Tensor, t: torch.Tensor, schedule) -> torch.Tensor:
    """``log k_t`` from the kernel's statistic of ``(x, y)``: ``|x - alpha_t y|^2`` (Gaussian),
    ``sum_i cos(x_i - y_i)`` (von Mises), ``<x, y>`` (vMF, SO3); ``t`` broadcasts against ``stat``."""
    if kind == "gaussian":
        sigma = schedule.sigma(t)
        return -0.5 * stat / (sigma * sigma) - f.dim * (torch.log(sigma) + 0.5 * _LOG_2PI)
    kappa = schedule.kappa(t)
    if kind == "von_mises":
        return kappa * (stat - f.dim) + f.dim * _log_vmf_norm_shifted(kappa, 2)
    shifted = _log_vmf_norm_shifted(kappa, f.coord_dim)
    if kind == "vmf":
        return kappa * (stat - 1) + shifted
    # so3: log(2 C_4 cosh(kappa <y, q>)) = log C_4 + logaddexp(kappa c, -kappa c)
    return torch.logaddexp(kappa * (stat - 1), kappa * (-stat - 1)) + shifted


def log_kernel(factor: Manifold, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
               schedule: Optional[Schedule] = None) -> torch.Tensor:
    """``log k_t(x | y)`` row by row: ``x, y (..., coord_dim)``, ``t (...)`` -> ``(...)``.

    The direct statistics (no expanded squares); :func:`pairwise_log_kernel` is the all-pairs version.
    """
    schedule = make_schedule(schedule)
    out = 0
    for f, xf, yf in _split(factor, x, y):
        kind = _kind(f)
        xf, logdet = f.kernel_coords(xf)
        yf = f.kernel_coords(yf.to(xf))[0]
        if kind == "gaussian":
            stat = ((xf - schedule.alpha(t).unsqueeze(-1) * yf) ** 2).sum(-1)
        elif kind == "von_mises":
            stat = torch.cos(xf - yf).sum(-1)
        else:
            stat = (xf * yf).sum(-1)
        out = out + _log_kernel_from_stat(kind, f, stat, t, schedule) + logdet
    return out


# ---------------------------------------------------------------------- bilinear form (CNFM targets)
def centre_features(manifold: Manifold, y: torch.Tensor) -> torch.Tensor:
    """``psi(y) (N, S, F)``, the centres' half of :func:`point_features` (data only: computed once).

    ``S = 2^m`` for ``m`` SO3 factors: the SO3 kernel is the antipodal pair ``C_4 (e^(kappa <y, q>) +
    e^(-kappa <y, q>))``, so each centre becomes ``2^m`` vMF-like centres with every sign of its SO3 parts
    (their kernels sum to the centre's kernel; ``S = 1`` without SO3 factors)."""
    parts = []
    for f, yf in _split(manifold, y):
        kind = _kind(f)
        yk = f.kernel_coords(yf)[0]
        if kind == "gaussian":
            parts += [yk, (yk * yk).sum(-1, keepdim=True)]
        elif kind == "von_mises":
            parts += [torch.cos(yk), torch.sin(yk)]
        else:
            parts.append(yk)
    psi = torch.cat(parts, -1)
    signs = [psi.new_ones(1, psi.shape[-1])]
    col = 0
    for f, in _split(manifold):
        width = f.coord_dim + (1 if _kind(f) == "gaussian" else 0) if _kind(f) != "von_mises" else 2 * f.coord_dim
        if _kind(f) == "so3":
            flip = psi.new_ones(1, psi.shape[-1])
            flip[:, col:col + width] = -1
            signs = signs + [sg * flip for sg in signs]
        col += width
    return psi.unsqueeze(1) * torch.cat(signs).unsqueeze(0)


def point_features(manifold: Manifold, x: torch.Tensor, t: torch.Tensor,
                   schedule: Optional[Schedule] = None) -> tuple:
    r"""``(U (B, F), c (B,))`` with ``log k_t(x_b | y_n) = log sum_s exp(<U_b, psi(y_n)_s> + c_b)`` exactly
    (one term ``s`` unless there are SO3 factors: :func:`centre_features`).

    Gaussian: ``U = (alpha x / sigma^2, -alpha^2 / (2 sigma^2))`` against ``psi = (y, |y|^2)``; von Mises:
    ``kappa (cos x, sin x)`` against ``(cos y, sin y)``; vMF: ``kappa x`` against ``y``; each with the
    kernel-coordinate log-determinant in ``c``. So the all-pairs log-kernel is one ``(B, F) x (F, N)``
    product, and ``d log p_t = <dU, psi_bar> + dc`` with ``psi_bar`` the softmax-weighted mean of the
    centres' ``psi``: the CNFM targets need no autograd through the ``(B, N)`` matrix.
    Differentiable w.r.t. ``x`` and ``t``.
    """
    schedule = make_schedule(schedule)
    us, c = [], 0
    for f, xf in _split(manifold, x):
        kind = _kind(f)
        xk, logdet = f.kernel_coords(xf)
        if kind == "gaussian":
            alpha, sigma = schedule.alpha(t), schedule.sigma(t)
            inv = 1 / (sigma * sigma)
            us += [(alpha * inv).unsqueeze(-1) * xk, (-0.5 * alpha * alpha * inv).unsqueeze(-1)]
            c = c - 0.5 * inv * (xk * xk).sum(-1) - f.dim * (torch.log(sigma) + 0.5 * _LOG_2PI)
        elif kind == "von_mises":
            kappa = schedule.kappa(t)
            us += [kappa.unsqueeze(-1) * torch.cos(xk), kappa.unsqueeze(-1) * torch.sin(xk)]
            c = c + f.dim * (_log_vmf_norm_shifted(kappa, 2) - kappa)
        else:  # vmf, and each vMF half of the SO3 pair (centre_features holds both signs of y)
            kappa = schedule.kappa(t)
            us.append(kappa.unsqueeze(-1) * xk)
            c = c + _log_vmf_norm_shifted(kappa, f.coord_dim) - kappa
        c = c + logdet
    return torch.cat(us, -1), c + x.new_zeros(x.shape[0])


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


def sample_kernel(factor: Manifold, y: torch.Tensor, t: torch.Tensor, schedule: Optional[Schedule] = None,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""One draw ``x_b ~ k_{t_b}(. | y_b)`` per row: ``y (B, coord_dim)``, ``t (B,)`` -> ``(B, coord_dim)``.

    Gaussian: ``alpha_t y + sigma_t eps``; torus: ``y + theta`` with von Mises angles (wrapped); spheres:
    :func:`sample_vmf`; SO3: a vMF draw around ``y`` with a random sign (the antipodal mixture). No
    gradient flows through samples. Accepts a Product (factors sampled independently).
    """
    schedule = make_schedule(schedule)
    _check_args("sample_kernel", factor, ("y", y, 2, factor.coord_dim), ("t", t, 1, None))
    if t.shape[0] != y.shape[0]:
        raise ValueError(f"sample_kernel: t must have one time per row of y, got t {tuple(t.shape)} and "
                         f"y {tuple(y.shape)}")
    y = y.detach()
    t = t.detach().to(y)
    parts = []
    for f, yf in _split(factor, y):
        kind = _kind(f)
        if kind == "gaussian":
            yk = f.kernel_coords(yf)[0]
            eps = _normal(tuple(yk.shape), generator, yf.device).to(yf.dtype)
            xk = schedule.alpha(t).unsqueeze(-1) * yk + schedule.sigma(t).unsqueeze(-1) * eps
            parts.append(f.from_kernel_coords(xk))
            continue
        kappa = schedule.kappa(t)
        if kind == "von_mises":
            theta = sample_von_mises(kappa.unsqueeze(-1).expand(yf.shape), generator)
            parts.append(wrap_angle(yf + theta))
        elif kind == "vmf":
            parts.append(sample_vmf(yf, kappa, generator))
        else:
            sign = torch.where(_uniform(kappa.shape, generator, yf.device) < 0.5, -1.0, 1.0).to(yf)
            parts.append(sign.unsqueeze(-1) * sample_vmf(yf, kappa, generator))
    return torch.cat(parts, -1)
