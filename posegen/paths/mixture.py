r"""The CNFM target path: a mixture of kernels centred on the training points.

.. math::  p_t(x) = \frac{1}{N} \sum_{j=1}^N k_t(x \mid y_j),

from the base (``t = 0``: every kernel is the base density) to a mixture of concentrated kernels around
the data (``t = 1``), with the product kernel of :mod:`posegen.paths.kernels`. CNFM (Ben-Hamu et al.,
ICML 2022) needs three things from it at points ``x ~ p_t``: ``log p_t``, ``d/dt log p_t`` and the
Riemannian gradient ``grad_x log p_t``; :class:`MixturePath` computes them in chunks over the data, so
memory grows with ``B x chunk_size``, not ``B x N``.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..manifolds import Manifold, Product, parse
from .families import kernel_family
from .kernels import centre_features, log_kernel, pairwise_log_kernel, point_features, sample_kernel
from .schedules import FactorSchedule, Schedule, make_schedule
from .series import moment_series
from .vmf import _uniform


#: largest chunk buffer :class:`MixturePath` keeps between calls, in entries (16 MB in float32): a training
#: batch of 1024 against a 4096 chunk; larger (evaluation) batches allocate per chunk and keep nothing
WORKSPACE_MAX = 1 << 22
#: components whose largest log-kernel bounds each row's maximum from below in MixturePath._shifted_lse
SHIFT_PROBES = 256


def _dropped(dtype: torch.dtype) -> float:
    """The log-kernel of a dropped component (a row's own source in a stratified subset chunk): a large finite
    value, not -inf, because a chunk whose only component is the source must keep finite gradients."""
    return torch.finfo(dtype).min / 4


class MixturePath:
    r"""Kernel-mixture probability path ``p_t`` on a product manifold, optionally conditional.

    Args:
        manifold: a :class:`~posegen.manifolds.Product` (or one factor, or a spec string) of R^d, tori,
            S^1..S^3 and SO3 factors.
        data: ``(N, coord_dim)`` kernel centres ``y_j``, in posegen's internal coordinates (Euclidean
            columns standardised); checked to lie on the manifold.
        schedule: :class:`~posegen.paths.schedules.Schedule`, kind name, dict, or ``None`` (default); a
            :class:`~posegen.paths.schedules.FactorSchedule` gives every factor its own end point.
        conditions: ``(N, C)`` conditions ``c_j`` of the data points, for conditional paths (any units:
            they are standardised per column here).
        cond_bandwidth: bandwidth ``h`` of the condition weights, in units of the standardised conditions;
            default Scott's rule ``h = N^(-1 / (C + 4))``.
        chunk_size: data points processed at once.
        max_components: if ``N`` exceeds it, every call to :meth:`log_prob` / :meth:`log_prob_dt_grad`
            uses a fresh uniform random subset of this many data points (without replacement).

    Conditional paths. With ``conditions``, the target is the Nadaraya-Watson mixture

    .. math::  p_t(x \mid c) = \sum_j w_j(c)\, k_t(x \mid y_j), \qquad
               w_j(c) \propto \exp(-|\tilde c - \tilde c_j|^2 / (2 h^2)),

    with ``~`` the per-column standardisation of the training conditions (columns with zero spread are left
    unscaled). ``h -> 0`` keeps only the nearest training conditions, ``h -> inf`` gives the unconditional
    path; if all ``c_j`` are equal it *is* the unconditional path. Sampling ``x ~ p_t(. | c)`` picks ``j``
    with these weights (exact Gumbel-max, chunked). Calls without a condition use the marginal
    (unconditional) path.

    Subsets (``max_components``). The subset mixture ``p~_t`` is an unbiased estimate of ``p_t``, but its
    log is a biased one: ``E[log p~_t] <= log E[p~_t] = log p_t`` (Jensen), with the same bias in the
    derived targets. The estimate is consistent: the bias vanishes as the subset grows (and it is exact
    when the subset is all of the data). Sampling always uses all ``N`` points.

    Near ``t = 1`` the kernels are narrow and ``p_t`` at a draw ``x ~ k_t(. | y_s)`` is dominated by its
    own centre ``y_s``; a random subset misses it with probability ``1 - M / N`` and the targets then
    point at a far-away neighbour. Given ``source_index`` (the rows ``s_b`` the points were drawn from),
    the estimate keeps that kernel exactly and samples only the others (stratified):

    .. math::  \tilde p_t(x_b) = \frac{1}{N}\Big(k_t(x_b \mid y_{s_b})
               + \frac{N}{M} \sum_{j \in S,\ j \ne s_b} k_t(x_b \mid y_j)\Big),

    still unbiased for ``p_t(x_b)`` (``S`` a uniform ``M``-subset of all rows), with a much smaller
    variance where it matters. Conditional paths apply the same weights to the Nadaraya-Watson terms.
    """

    def __init__(self, manifold, data: torch.Tensor, schedule=None, conditions: Optional[torch.Tensor] = None,
                 cond_bandwidth: Optional[float] = None, chunk_size: int = 4096,
                 max_components: Optional[int] = None):
        self.manifold: Product = parse(manifold) if isinstance(manifold, (str, Manifold)) else manifold
        if not isinstance(self.manifold, Product):
            raise TypeError(f"MixturePath: manifold must be a spec string or a Manifold, got "
                            f"{type(manifold).__name__}")
        self.schedule: Schedule = make_schedule(schedule)
        n_factors = len(self.manifold.factors)
        if isinstance(self.schedule, FactorSchedule) and len(self.schedule.factors) != n_factors:
            raise ValueError(f"MixturePath: the schedule has end points for {len(self.schedule.factors)} factors, "
                             f"but {self.manifold!r} has {n_factors}: {self.schedule!r}")
        D = self.manifold.coord_dim
        if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[1] != D or data.shape[0] < 1:
            got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ValueError(f"MixturePath: data must be a tensor of shape (N, {D}) with N >= 1 for "
                             f"{self.manifold!r}, got {got}")
        for f in self.manifold.factors:
            kernel_family(f)  # a clear error for factors without a CNFM kernel (S^d, d > 3)
        self.manifold.check_point(data)
        self.data = data.detach()
        # log k_t(x | y) = <U(x, t), psi(y)> + c(x, t) (summed over the signs of SO3 parts): the centres' psi
        # once, here. bilinear=False selects the reference path (autograd through every chunk; slower).
        self.bilinear = True
        self._psi = centre_features(self.manifold, self.data)
        self._psi_ones = torch.cat([self._psi, self._psi.new_ones(self._psi.shape[:-1] + (1,))], -1)
        self._work: Optional[torch.Tensor] = None  # see _workspace
        self._series = {}  # dtype -> MomentSeries or None, built on first use (see _moment_series)
        if int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"MixturePath: chunk_size must be a positive integer, got {chunk_size!r}")
        self.chunk_size = int(chunk_size)
        if max_components is not None and (int(max_components) != max_components or max_components < 1):
            raise ValueError(f"MixturePath: max_components must be a positive integer or None, got "
                             f"{max_components!r}")
        self.max_components = None if max_components is None else int(max_components)
        self.conditions = None
        self.cond_bandwidth = None
        if conditions is not None:
            self._set_conditions(conditions, cond_bandwidth)
        elif cond_bandwidth is not None:
            raise ValueError("MixturePath: cond_bandwidth was given without conditions")

    def _set_conditions(self, conditions, cond_bandwidth):
        N = self.data.shape[0]
        c = torch.as_tensor(conditions)
        if c.dim() == 1:
            c = c.unsqueeze(-1)
        if c.dim() != 2 or c.shape[0] != N:
            raise ValueError(f"MixturePath: conditions must have shape ({N}, C), one row per data point, "
                             f"got {tuple(torch.as_tensor(conditions).shape)}")
        c = c.to(device=self.data.device, dtype=self.data.dtype)
        if not torch.isfinite(c).all():
            raise ValueError("MixturePath: conditions contain NaN or inf")
        self.cond_mean = c.mean(0)
        std = c.std(0, unbiased=False)
        self.cond_std = torch.where(std > 0, std, torch.ones_like(std))
        self.conditions = (c - self.cond_mean) / self.cond_std
        if cond_bandwidth is None:
            cond_bandwidth = N ** (-1.0 / (c.shape[1] + 4))  # Scott's rule, unit-variance columns
        if not (float(cond_bandwidth) > 0 and math.isfinite(float(cond_bandwidth))):
            raise ValueError(f"MixturePath: cond_bandwidth must be positive and finite, got {cond_bandwidth!r}")
        self.cond_bandwidth = float(cond_bandwidth)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def num_components(self) -> int:
        """``N``, the number of data points (kernels)."""
        return self.data.shape[0]

    @property
    def conditional(self) -> bool:
        return self.conditions is not None

    def to(self, device=None, dtype=None) -> "MixturePath":
        """Move the data (and conditions) to ``device`` / ``dtype``; returns ``self``."""
        self.data = self.data.to(device=device, dtype=dtype)
        if self._psi is not None:
            self._psi = self._psi.to(device=device, dtype=dtype)
            self._psi_ones = self._psi_ones.to(device=device, dtype=dtype)
        self._series = {}
        if self.conditional:
            for name in ("conditions", "cond_mean", "cond_std"):
                setattr(self, name, getattr(self, name).to(device=device, dtype=dtype))
        return self

    def __repr__(self) -> str:
        cond = f", conditional (C={self.conditions.shape[1]}, h={self.cond_bandwidth:.3g})" if self.conditional else ""
        return f"MixturePath({self.manifold!r}, N={self.num_components}, {self.schedule!r}{cond})"

    def _check_xt(self, name: str, x: torch.Tensor, t) -> torch.Tensor:
        D = self.manifold.coord_dim
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != D:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"MixturePath.{name}: x must have shape (B, {D}) for {self.manifold!r}, got {got}")
        return self._check_t(name, t, x.shape[0], x)

    def _check_t(self, name: str, t, B: int, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        if t.dim() == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"MixturePath.{name}: t must be a scalar or have shape ({B},), got {tuple(t.shape)}")
        bad = (t < 0) | (t > 1) | ~torch.isfinite(t)
        if t.device.type != "cpu":  # on a device: checked there, no host sync per call
            torch._assert_async(~bad.any(), f"MixturePath.{name}: t must lie in [0, 1]")
            return t
        if bool(bad.any()):
            raise ValueError(f"MixturePath.{name}: t must lie in [0, 1], got values in "
                             f"[{t.min().item():.4g}, {t.max().item():.4g}]")
        return t

    def _check_condition(self, name: str, condition, B: int, like: torch.Tensor) -> Optional[torch.Tensor]:
        """Standardised conditions ``(B, C)``, or ``None`` for the marginal path."""
        if condition is None:
            return None
        if not self.conditional:
            raise ValueError(f"MixturePath.{name}: condition= was given but the path has no conditions")
        C = self.conditions.shape[1]
        c = torch.as_tensor(condition, dtype=like.dtype, device=like.device)
        if c.dim() == 1 and c.shape[0] == C:
            c = c.unsqueeze(0)
        if c.dim() == 1 and C == 1:
            c = c.unsqueeze(-1)
        if c.dim() != 2 or c.shape[1] != C or c.shape[0] not in (1, B):
            raise ValueError(f"MixturePath.{name}: condition must have shape ({B}, {C}) or ({C},), got "
                             f"{tuple(torch.as_tensor(condition).shape)}")
        return ((c - self.cond_mean.to(c)) / self.cond_std.to(c)).expand(B, C)

    def _components(self, generator) -> Optional[torch.Tensor]:
        """Indices of this call's components: ``None`` (all) or a fresh uniform subset."""
        N = self.num_components
        if self.max_components is None or N <= self.max_components:
            return None
        dev = generator.device if generator is not None else self.data.device
        return torch.randperm(N, generator=generator, device=dev)[: self.max_components].to(self.data.device)

    def _source(self, name: str, source_index, index: Optional[torch.Tensor], B: int) -> Optional[torch.Tensor]:
        """Checked ``source_index (B,)`` if the stratified subset estimate applies (a subset is in use)."""
        if source_index is None or index is None:
            return None
        s = torch.as_tensor(source_index, device=self.data.device).long()
        N = self.num_components
        if s.shape == (B,) and s.device.type != "cpu":  # on a device: no host sync per call
            torch._assert_async(((s >= 0) & (s < N)).all(), f"MixturePath.{name}: source_index out of range")
            return s
        if s.shape != (B,) or bool(((s < 0) | (s >= N)).any()):
            raise ValueError(f"MixturePath.{name}: source_index must be ({B},) integers in [0, {N}), got "
                             f"shape {tuple(s.shape)}")
        return s

    def _source_term(self, x, t, c, s):
        """``(log k_t(x_b | y_{s_b}) [+ its condition logit] (B,), its condition logit (B,) or None)``."""
        logk = log_kernel(self.manifold, x, self.data[s], t, self.schedule)
        if c is None:
            return logk, None
        c_s = self.conditions[s].to(c)
        logit = -0.5 * ((c - c_s) ** 2).sum(-1) / self.cond_bandwidth ** 2
        return logk + logit, logit

    def _subset_log_weight(self) -> float:
        """``log(N / M)``: the weight of each of a subset's ``M`` components standing for the ``N``."""
        return math.log(self.num_components / self.max_components)

    def _stratify(self, logk, logits, rows, s):
        """Reweight a subset chunk by ``N / M`` and drop each row's own source (``rows`` (n,), ``s`` (B,))."""
        offset = self._subset_log_weight()
        drop = s.unsqueeze(-1) == rows.unsqueeze(0)
        low = _dropped(logk.dtype)
        logk = (logk + offset).masked_fill(drop, low)
        if logits is not None:
            logits = (logits + offset).masked_fill(drop, low)
        return logk, logits

    def _drop_sources_(self, L: torch.Tensor, rows: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """:meth:`_stratify` without the reweighting (the caller adds ``log(N / M)`` to the chunk's log-sum),
        in place on a chunk's log-kernels in the ``(n, B)`` layout: ``L[i, b]`` becomes the same large finite
        value where ``rows[i] == s[b]``. Each row's own source is found by an inverse map of the chunk's rows,
        ``O(N + B)`` work instead of an ``(n, B)`` comparison and fill (and no transposed copy of ``L``)."""
        where = torch.full((self.num_components,), -1, dtype=torch.long, device=L.device)
        where[rows] = torch.arange(rows.shape[0], device=L.device)
        pos = where[s]
        i, b = pos.clamp_min(0), torch.arange(s.shape[0], device=L.device)
        L[i, b] = torch.where(pos >= 0, _dropped(L.dtype), L[i, b])
        return L

    def _chunks(self, index: Optional[torch.Tensor], with_rows: bool = False):
        """``(y (n, D), conditions (n, C) or None)`` chunk by chunk."""
        n = self.num_components if index is None else index.shape[0]
        for a in range(0, n, self.chunk_size):
            sl = slice(a, min(a + self.chunk_size, n))
            rows = sl if index is None else index[sl]
            out = self.data[rows], (self.conditions[rows] if self.conditional else None)
            yield (out + (rows,)) if with_rows else out

    def _cond_logits(self, c: torch.Tensor, c_n: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-weights ``-|c_b - c_n|^2 / (2 h^2)``, ``(B, n)``."""
        sq = (c * c).sum(-1, keepdim=True) - 2 * c @ c_n.to(c).T + (c_n.to(c) ** 2).sum(-1)
        return -0.5 * sq / self.cond_bandwidth ** 2

    # ------------------------------------------------------------------ densities
    def _terms(self, x, t, c, index, s):
        """Per chunk of components: ``(logsumexp_n log(w_n k_n) (B,), logsumexp_n log w_n (B,) or None)``.

        The source kernel of the stratified estimate (``s``) comes first, as a chunk of one component per
        row; the weights ``w`` are the condition logits (``None`` for the marginal path). Differentiable
        w.r.t. ``x`` and ``t``: :meth:`log_prob_dt_grad` differentiates each chunk as it comes.
        """
        if s is not None:
            yield self._source_term(x, t, c, s)
        for y, c_n, rows in self._chunks(index, with_rows=True):
            logk = pairwise_log_kernel(self.manifold, x, y, t, self.schedule)
            logits = self._cond_logits(c, c_n) if c is not None else None
            if s is not None:
                logk, logits = self._stratify(logk, logits, rows, s)
            if logits is None:
                yield torch.logsumexp(logk, 1), None
            else:
                yield torch.logsumexp(logk + logits, 1), torch.logsumexp(logits, 1)

    def _normalise(self, lse, lse_w, c, index, s) -> torch.Tensor:
        """``log p`` from the summed terms: over ``N`` (or the subset size) or the summed condition weights."""
        if c is not None:
            return lse - lse_w
        n = self.num_components if (index is None or s is not None) else index.shape[0]
        return lse - math.log(n)

    def log_prob(self, x: torch.Tensor, t, condition=None, generator: Optional[torch.Generator] = None,
                 source_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``log p_t(x)`` (or ``log p_t(x | c)``), shape ``(B,)``.

        Args:
            x: points ``(B, coord_dim)``; t: times ``(B,)`` or a scalar in ``[0, 1]``.
            condition: ``(B, C)`` or ``(C,)`` in the units of the training conditions; ``None``: marginal.
            generator: RNG of the component subset (only with ``max_components``).
            source_index: ``(B,)`` rows of the data the points were drawn from; with a subset
                (``max_components``) their kernels are kept exactly (the stratified estimate above).

        A running logsumexp over data chunks; differentiable w.r.t. ``x`` and ``t`` (the graph then spans
        every chunk: use :meth:`log_prob_dt_grad` for targets).
        """
        t = self._check_xt("log_prob", x, t)
        B = x.shape[0]
        c = self._check_condition("log_prob", condition, B, x)
        index = self._components(generator)
        s = self._source("log_prob", source_index, index, B)
        if self.bilinear:
            U, cv = point_features(self.manifold, x, t, self.schedule)
            lse, lse_w, _ = self._bilinear_lse(U, cv, c, index, s, source=self._source_term(x, t, c, s)
                                               if s is not None else None, mean=False)
            return self._normalise(lse, lse_w, c, index, s)
        lse = lse_w = x.new_full((B,), -math.inf)
        for lse_c, lse_wc in self._terms(x, t, c, index, s):
            lse = torch.logaddexp(lse, lse_c)
            if lse_wc is not None:
                lse_w = torch.logaddexp(lse_w, lse_wc)
        return self._normalise(lse, lse_w, c, index, s)

    def log_prob_dt_grad(self, x: torch.Tensor, t, condition=None,
                         generator: Optional[torch.Generator] = None,
                         source_index: Optional[torch.Tensor] = None
                         ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The CNFM targets at ``x``: ``(log p_t (B,), d/dt log p_t (B,), grad_x log p_t (B, coord_dim))``.

        Per chunk of data, autograd through that chunk's ``logsumexp`` gives ``d lse_c`` (a softmax-weighted
        sum of kernel derivatives); chunks are combined with the running weights ``exp(lse_c - lse)``, so
        ``d log p = sum_n w_n d log k_n`` over all components and no graph outlives its chunk. The
        gradient is the ambient one projected with ``manifold.proju`` (the Riemannian gradient; for vMF
        kernels the ambient extension ``kappa <y, x>``). Arguments as in :meth:`log_prob`; the results are
        detached targets.
        """
        t = self._check_xt("log_prob_dt_grad", x, t)
        c = self._check_condition("log_prob_dt_grad", condition, x.shape[0], x)
        index = self._components(generator)
        B = x.shape[0]
        s = self._source("log_prob_dt_grad", source_index, index, B)
        x_ = x.detach().requires_grad_(True)
        t_ = t.detach().requires_grad_(True)
        if self.bilinear:
            return self._bilinear_targets(x_, t_, c, index, s)
        lse = lse_w = x.new_full((B,), -math.inf)
        dt = x.new_zeros(B)
        grad = torch.zeros_like(x_)
        with torch.enable_grad():
            for lse_c, lse_wc in self._terms(x_, t_, c, index, s):
                g_x, g_t = torch.autograd.grad(lse_c.sum(), (x_, t_))
                lse_c = lse_c.detach()
                if lse_wc is not None:
                    lse_w = torch.logaddexp(lse_w, lse_wc)
                new = torch.logaddexp(lse, lse_c)
                keep, add = torch.exp(lse - new), torch.exp(lse_c - new)
                dt = keep * dt + add * g_t
                grad = keep.unsqueeze(-1) * grad + add.unsqueeze(-1) * g_x
                lse = new
        logp = self._normalise(lse, lse_w, c, index, s)
        grad = self.manifold.proju(x.detach(), grad)
        return logp.detach(), dt.detach(), grad.detach()

    # ------------------------------------------------------------------ bilinear kernels (all but SO3)
    def _bilinear_lse(self, U, cv, c, index, s, source=None, mean: bool = True):
        """``(lse (B,), lse_w (B,) or None, (psi_bar (B, F), lse_chunks (B,)) or None)``: :meth:`_dense_lse`,
        or, for the plain mixture (no conditions, no sources) on a CPU outside autograd, the rows of short ``U``
        (early times) by the moment series of :mod:`~posegen.paths.series`, within its stated tolerance (a
        fraction of the dtype's epsilon; never for float64), and the others by :meth:`_shifted_lse`.

        The series serves the plain mixture (all components, no conditions) on a CPU, outside autograd: there
        the direct sums cost ``N`` exps per row, most of a CNFM step (fire, 10^4 kernels: half the rows of
        a batch, ~3 ms of ~6); on a device they are cheap and the row split would cost a host sync.
        """
        if c is not None or s is not None or U.device.type != "cpu" or (
                torch.is_grad_enabled() and (U.requires_grad or cv.requires_grad)):
            return self._dense_lse(U, cv, c, index, s, source, mean)
        series = self._moment_series(U.dtype) if index is None else None
        if series is None:
            lse, psi_bar = self._shifted_lse(U, cv, index, mean)
            return lse, None, (psi_bar, lse) if mean else None
        near = series.applies(U)
        lse = torch.empty_like(cv)
        psi_bar = torch.empty_like(U)
        log_z, psi_near = series(U[near])
        lse[near] = log_z + cv[near]
        psi_bar[near] = psi_near
        far = ~near
        if bool(far.any()):
            lse[far], psi_far = self._shifted_lse(U[far], cv[far], None, mean)
            if mean:
                psi_bar[far] = psi_far
        return lse, None, (psi_bar, lse) if mean else None

    def _shifted_lse(self, U, cv, index, mean: bool):
        """``(lse (B,), psi_bar (B, F) or None)`` of the plain mixture (no conditions, no sources; CPU, no
        autograd): :meth:`_dense_lse` in four passes over each chunk instead of seven.

        The shift is a lower bound ``m_lo`` of each row's largest log-kernel, from :data:`SHIFT_PROBES`
        evenly strided components, not the exact maximum (one pass less, and the shift goes into the bias of
        the product, one more); the exponents are clamped to ``[floor, top]`` in one pass, and one
        ``psi1^T E`` product with ``psi1 = [psi, 1]`` gives both sums. ``exp(L - m_lo) >= 1`` at the largest
        entry, so the sum never underflows; a row whose sum reaches ``e^(top - 1)`` may have been clamped
        at the top (its ``m_lo`` far below its maximum: a point far from the probes) and is redone by
        :meth:`_dense_lse`, exactly. CPU only, because that check is a host sync.
        """
        B, F = U.shape
        n = self.num_components if index is None else index.shape[0]
        stride = max(1, n // SHIFT_PROBES)
        probes = self._psi[::stride] if index is None else self._psi[index[::stride]]
        m_lo = torch.addmm(cv.unsqueeze(0), probes.reshape(-1, F), U.T).amax(0)
        bias = (cv - m_lo).unsqueeze(0)
        floor, top = self._exp_floor(U.dtype), self._exp_top(U.dtype)
        Q = U.new_zeros(F + 1, B)  # [sum_n psi_n E_n, sum_n E_n]
        for a in range(0, n, self.chunk_size):
            rows = slice(a, min(a + self.chunk_size, n)) if index is None else index[a:a + self.chunk_size]
            psi1 = self._psi_ones[rows]
            psi1 = psi1.reshape(-1, F + 1)
            L = torch.addmm(bias, psi1[:, :F], U.T, out=self._workspace(psi1.shape[0], B, U))
            Q.addmm_(psi1.T, L.clamp_(floor, top).exp_())
        tot = Q[F]
        lse = m_lo + torch.log(tot)
        psi_bar = (Q[:F] / tot).T.contiguous() if mean else None
        redo = ~(tot < math.exp(top - 1))  # NaN-safe
        if bool(redo.any()):
            lse_r, _, dense = self._dense_lse(U[redo], cv[redo], None, index, None, mean=mean)
            lse[redo] = lse_r
            if mean:
                psi_bar[redo] = dense[0]
        return lse, psi_bar

    def _moment_series(self, dtype):
        if dtype not in self._series:
            self._series[dtype] = moment_series(self._psi.reshape(-1, self._psi.shape[-1]), dtype)
        return self._series[dtype]

    def _dense_lse(self, U, cv, c, index, s, source=None, mean: bool = True):
        """``(lse (B,), lse_w (B,) or None, psi_bar (B, F) or None)`` over all components, from the
        bilinear form ``log k = U psi^T + c`` (:func:`~posegen.paths.kernels.point_features`).

        ``lse`` also holds the ``source`` term ``(log k_s + logit (B,), logit or None)`` of the stratified
        estimate, added last; ``psi_bar`` is the softmax-weighted mean of ``psi`` over the chunks only
        (the weight of the chunks against the source is ``exp(lse_chunks - lse)``, returned through
        :meth:`_bilinear_targets`). One ``(B, F) x (F, n)`` product, one exp and one ``(B, n) x (n, F)``
        product per chunk; no autograd graph through the ``(B, n)`` matrices.
        """
        B = U.shape[0]
        lse = U.new_full((B,), -math.inf)
        lse_w = U.new_full((B,), -math.inf) if c is not None else None
        psi_bar = U.new_zeros(B, U.shape[1]) if mean else None
        inplace = not (torch.is_grad_enabled() and (U.requires_grad or cv.requires_grad))
        # the unconditional stratified subset, outside autograd: O(B) edits in place, N/M added to each chunk's sum
        drop_in_place = c is None and s is not None and inplace
        n = self.num_components if index is None else index.shape[0]
        for a in range(0, n, self.chunk_size):
            rows = slice(a, min(a + self.chunk_size, n)) if index is None else index[a:a + self.chunk_size]
            psi = self._psi[rows]
            nc, S, F = psi.shape
            psi = psi.reshape(nc * S, F)
            # (n, B) layout: the K = F products and the reductions are several times faster this way round
            Lt = torch.addmm(cv.unsqueeze(0), psi, U.T, out=self._workspace(nc * S, B, U) if inplace else None)
            L = torch.logsumexp(Lt.view(nc, S, B), 1) if S > 1 else Lt  # SO3 sign terms: one kernel
            if drop_in_place:
                L = self._drop_sources_(L, rows, s)
            elif c is not None or s is not None:
                logits = self._cond_logits(c, self.conditions[rows]) if c is not None else None
                Lb = L.T
                if s is not None:
                    Lb, logits = self._stratify(Lb, logits, rows, s)
                if logits is not None:
                    Lb = Lb + logits
                    lse_w = torch.logaddexp(lse_w, torch.logsumexp(logits, 1))
                L = Lb.T
            m = L.amax(0)  # finite: every entry is (stratified entries are large, not -inf)
            # exp of a floor: below it the weights (and their products with psi) would be denormal numbers,
            # which cost ~20x on a CPU (measured: 19.7 vs 1.5 ms for a 256 x 4096 chunk): see _exp_floor
            E = (L.sub_(m) if inplace else L - m).clamp_min_(self._exp_floor(L.dtype)).exp_()
            tot = E.sum(0)
            lse_c = m + torch.log(tot)
            if drop_in_place:
                lse_c = lse_c + self._subset_log_weight()
            new = torch.logaddexp(lse, lse_c)
            if mean:
                if S > 1:  # each sign term's share of its centre's weight
                    E = (E.unsqueeze(1) * torch.softmax(Lt.view(nc, S, B), 1)).view(nc * S, B)
                psi_c = (psi.T @ E).T / tot.unsqueeze(-1)
                psi_bar = torch.exp(lse - new).unsqueeze(-1) * psi_bar + torch.exp(lse_c - new).unsqueeze(-1) * psi_c
            lse = new
        lse_chunks = lse
        if source is not None:
            lse = torch.logaddexp(lse, source[0])
            if source[1] is not None:
                lse_w = torch.logaddexp(lse_w, source[1])
        return lse, lse_w, (psi_bar, lse_chunks) if mean else None

    def _workspace(self, rows: int, B: int, like: torch.Tensor) -> Optional[torch.Tensor]:
        """A ``(rows, B)`` buffer for a chunk's log-kernels, kept between chunks and calls; ``None`` (a fresh
        tensor each chunk) above :data:`WORKSPACE_MAX` entries. Why: every fresh multi-MB tensor is new pages
        from the OS, and their first touch cost more than the whole chunk's matrix product (measured on the
        fire targets, 256 x 4096 float32: ~2.8 ms of page faults against 0.2 ms for the product)."""
        if rows * B > WORKSPACE_MAX:
            return None
        w = self._work
        if w is None or w.dtype != like.dtype or w.device != like.device or w.numel() < rows * B:
            w = self._work = like.new_empty(max(rows * B, 0 if w is None else w.numel()))
        return w[: rows * B].view(rows, B)

    @staticmethod
    def _exp_top(dtype) -> float:
        """The ceiling of :meth:`_shifted_lse`'s exponents, ``log(max) / 2``: sums of ``e^top`` over any
        number of components up to ``e^top`` stay finite."""
        return 0.5 * math.log(torch.finfo(dtype).max)

    @staticmethod
    def _exp_floor(dtype) -> float:
        """The floor of the shifted exponents, ``log(tiny) / 2`` (-43.7 in float32, -708 / 2 in float64).

        Denormal numbers cost ~40x on a CPU wherever they appear: ``exp(log(tiny))`` itself rounds to one in
        float32 (measured: 85 vs 2.2 ms for 2.6 M entries at that floor), and weights near ``tiny`` times
        the centres' features in ``psi^T E`` make denormal products (the dense sums ran 2.9 vs ~4-8 ms with
        and without flush-to-zero). At ``sqrt(tiny)`` both stay normal for every feature above ``sqrt(tiny)``
        in size. Floored weights are raised, not dropped: their total is below ``N sqrt(tiny)`` of the
        largest weight (``1e-15`` for ``10^4`` kernels in float32), far under the dtype's epsilon.
        """
        return 0.5 * math.log(torch.finfo(dtype).tiny)

    def _bilinear_targets(self, x_, t_, c, index, s):
        """:meth:`log_prob_dt_grad` for bilinear kernels: ``d lse = w_chunks (<dU, psi_bar> + dc) +
        w_source d log k_source``, one small autograd call on ``(B, F)`` tensors."""
        with torch.enable_grad():
            U, cv = point_features(self.manifold, x_, t_, self.schedule)
            src = self._source_term(x_, t_, c, s) if s is not None else None
        with torch.no_grad():
            source = None if src is None else (src[0].detach(), None if src[1] is None else src[1].detach())
            lse, lse_w, (psi_bar, lse_chunks) = self._bilinear_lse(U.detach(), cv.detach(), c, index, s, source)
        with torch.enable_grad():
            surrogate = torch.exp(lse_chunks - lse) * ((U * psi_bar).sum(-1) + cv)
            if src is not None:
                surrogate = surrogate + torch.exp(source[0] - lse) * src[0]
            g_x, g_t = torch.autograd.grad(surrogate.sum(), (x_, t_))
        logp = self._normalise(lse, lse_w, c, index, s)
        grad = self.manifold.proju(x_.detach(), g_x)
        return logp.detach(), g_t.detach(), grad.detach()

    # ------------------------------------------------------------------ sampling
    def sample_given(self, y: torch.Tensor, t, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``x_b ~ k_{t_b}(. | y_b)``: one kernel draw per centre ``y (B, coord_dim)``, ``t (B,)`` or scalar."""
        t = self._check_t("sample_given", t, y.shape[0], y)
        return sample_kernel(self.manifold, y, t, self.schedule, generator)

    def sample(self, t, generator: Optional[torch.Generator] = None, index: Optional[torch.Tensor] = None,
               condition=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Draw ``x_t ~ p_t`` (or ``p_t(. | c)``): ``t (B,)`` -> ``(x_t (B, coord_dim), index (B,))``.

        Picks the centres ``y_index`` uniformly (with ``condition``: with the Nadaraya-Watson weights), or
        uses the given ``index (B,)``, then draws from their kernels. ``index`` is returned.
        """
        t = torch.as_tensor(t)
        if t.dim() != 1:
            raise ValueError(f"MixturePath.sample: t must have shape (B,), got {tuple(t.shape)}")
        B, N = t.shape[0], self.num_components
        t = self._check_t("sample", t, B, self.data)
        if index is None:
            c = self._check_condition("sample", condition, B, self.data)
            if c is None:
                u = _uniform((B,), generator, self.data.device)
                index = (u * N).long().clamp_max(N - 1)
            else:
                index = self._gumbel_index(c, generator)
        else:
            index = torch.as_tensor(index, device=self.data.device).long()
            if index.shape != (B,) or bool(((index < 0) | (index >= N)).any()):
                raise ValueError(f"MixturePath.sample: index must be ({B},) integers in [0, {N}), got shape "
                                 f"{tuple(index.shape)}")
        return self.sample_given(self.data[index], t, generator), index

    def _gumbel_index(self, c: torch.Tensor, generator) -> torch.Tensor:
        """``j ~ w(c)`` per row by chunked Gumbel-max: ``argmax_j (log w_j + G_j)`` with running maxima."""
        B = c.shape[0]
        best = c.new_full((B,), -math.inf)
        index = torch.zeros(B, dtype=torch.long, device=c.device)
        start = 0
        for _, c_n in self._chunks(None):
            # Gumbel noise -log(-log u) in the logits' dtype (float32 unless float64), drawn in that dtype: u
            # is a multiple of 2^-24 (float32) in [0, 1), so its rounding moves a weight by < 1e-7 relative,
            # far below a float32 logit's own; -log u is floored below its smallest value in case a device
            # generator ever returns u = 1 (a finite score, not an infinite one)
            dtype = torch.float64 if c.dtype == torch.float64 else torch.float32
            u = _uniform((B, c_n.shape[0]), generator, c.device, dtype)
            e = torch.log(u).neg_().clamp_min_(torch.finfo(dtype).eps / 4)
            score = self._cond_logits(c, c_n) - e.log_().to(c.dtype)
            val, arg = score.max(1)
            better = val > best
            index = torch.where(better, arg + start, index)
            best = torch.where(better, val, best)
            start += c_n.shape[0]
        return index
