r"""CNFM: matching a CNF to a target probability path (Ben-Hamu, Cohen, Bose, Amos, Grover, Nickel, Chen &
Lipman, "Matching Normalizing Flows and Probability Paths on Manifolds", ICML 2022).

A flow with velocity ``v`` transports ``p_0`` along the path ``p_t`` exactly when the logarithmic mass
conservation law holds:

.. math::  \partial_t \log p_t + \langle \nabla_x \log p_t, v \rangle + \operatorname{div}_M v = 0 .

The probability path divergence ``d_l`` measures how far a field is from that, along a target path
``p_t`` that runs from the base to the data:

.. math::  d_\ell(p_t \| q_t) = \mathbb{E}_{t, x \sim p_t}
           \big| \partial_t \log p_t + \langle \nabla_x \log p_t, v_\theta \rangle
           + \operatorname{div}_M v_\theta \big|^\ell ,

which is ``>= 0`` and ``0`` iff the flow's path ``q_t`` equals ``p_t`` for all ``t``. Only ``v_theta`` and its
divergence are needed: no ODE is solved during training. The target here is the kernel mixture of
:class:`~posegen.paths.MixturePath` (Gaussian / von Mises / vMF kernels around the training points, one
signal-to-noise schedule), whose ``d/dt log p_t`` and Riemannian gradient are computed in closed form by
autograd, chunk by chunk over the data.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from ..paths import FactorSchedule, MixturePath, Schedule, make_schedule
from ..paths.endpoint import EndpointChoice, check_scale, endpoint_kde_nll, select_endpoint
from ..solvers.divergence import check_method
from .base import Objective, check_batch, check_unit_interval, draw_time

DEFAULT_CHUNK_SIZE = 4096
WEIGHTINGS = ("none", "sigma")
TIME_SAMPLINGS = ("auto", "late", "uniform")
#: time_sampling="auto" draws late times where the sharpest end point lies below this sigma_min (the former
#: default end point, whose budgets were tuned with uniform times), uniform times otherwise
LATE_BELOW = 0.05
# Defaults chosen by benchmarks/cnfm_defaults.py (results in benchmarks/results/cnfm_defaults.jsonl; equal
# budgets: width 128, depth 3, batch 256/128, lr 2e-3, seed 0). Volcano (S2) test NLL after 1500 steps:
# sigma_min 0.01 unweighted 2.18, cosine 2.20, l=1 1.53, sigma_min 0.05 1.45, sigma_min 0.1 + sigma
# weighting 1.09, sigma_min 0.05 + sigma weighting 0.89 (RFM at the same budget: 1.27). Panda joints (T7)
# validation NLL after 800 steps: 12.54 (sigma_min 0.01, barely below the uniform 12.86), 7.37 (0.05),
# 4.35 (0.01 weighted), 4.11 (0.05 weighted), 4.21 (0.1 weighted) (RFM: 1.26).
DEFAULT_SCHEDULE = {"kind": "linear", "sigma_min": "auto"}
#: the value of ``sigma_min`` that asks for the end point to be chosen from the data at setup
AUTO = "auto"


class CNFM(Objective):
    r"""The probability path divergence ``d_l`` to a kernel-mixture path, for ``parametrization="cnf"`` flows.

    Args:
        schedule: the path's :class:`~posegen.paths.Schedule`, kind name (``"linear"``, ``"cosine"``), dict
            of its arguments, or ``None`` (:data:`DEFAULT_SCHEDULE`: linear, end point chosen from the data).
            A dict with ``sigma_min="auto"`` (the default) chooses every factor's end point from the training
            data at :meth:`setup` (:func:`~posegen.paths.endpoint.select_endpoint`: the bandwidth whose kernel
            density estimate best predicts held-out blocks of the training rows), so that the path's end, a
            KDE of the data, does not cap the model; the choice is in :attr:`endpoint` after setup. With
            ``"scale": s`` the path ends at ``s`` times that bandwidth: the KDE-optimal bandwidth is set by the
            held-out points far from every other (one isolated volcano outweighs dozens of repeated ones), where
            a network does not follow the kernels' tails, so a network can gain from a sharper target (volcano,
            4 CPU minutes: test NLL -1.46 at the chosen 0.0213, -2.26 at 0.01). A number sets it by hand (the
            former default 0.05, ``kappa_1 = 400``, capped fire at -0.34).
        l: the exponent ``l`` of ``|residual|^l``, 1 or 2.
        divergence: ``"exact"`` or ``"hutchinson"`` (how ``div v`` is computed).
        max_components: use a fresh random subset of this many training points per step for the targets
            (a biased but consistent estimate of ``log p_t``: see :class:`~posegen.paths.MixturePath`);
            ``None``: all of them.
        chunk_size: training points processed at once when computing targets (memory ``B x chunk_size``).
        t_eps: times are drawn from ``[t_eps, 1]`` (default 1e-3).
        time_sampling: ``"late"``, ``t = t_eps + (1 - t_eps) (1 - (1 - u)^2)`` with ``u ~ U[0, 1)`` (density
            ``~ 1 / sqrt(1 - t)``: more draws where the path sharpens towards its end point), ``"uniform"``,
            ``t ~ U[t_eps, 1]``, or ``"auto"`` (default): late if the sharpest factor's end point
            ``sigma_min`` is below :data:`LATE_BELOW`, uniform otherwise (resolved at :meth:`setup`, in
            :attr:`times`). Either keeps ``d_l`` a divergence with the same minimiser; it only moves the fit.
            Measured: fire's data-chosen end point (``kappa_1 = 8827``, reached from ``kappa = 400`` in the last
            4 % of time): test NLL -0.83 late against -0.64 uniform after 1.5 CPU minutes; Panda T7
            (``benchmarks/cnfm_defaults.py``, 800 steps, end point 0.087): validation NLL 4.45 late, 4.20
            uniform.
        cond_bandwidth: Nadaraya-Watson bandwidth of conditional paths, in standardised condition units
            (default: Scott's rule).
        weighting: ``"sigma"`` (default) or ``"none"``: multiply the residual by the path's noise scale ``sigma_t``.
            Near ``t = 1`` the targets grow like ``dim / sigma_t``, so unweighted the loss (and its gradient
            noise) is dominated by the last few percent of time; any positive weight keeps ``d_l`` a
            divergence with the same minimiser (zero residual), it only rebalances where the fit is spent.

    Each step, for a batch ``x_1`` of training points: ``t`` in ``[t_eps, 1]`` (``time_sampling``),
    ``x_t ~ k_t(. | x_1)`` (a draw of ``p_t``, since ``x_1`` is a draw of the data); with a condition ``c``,
    ``x_t ~ p_t(. | c)`` (centres picked with the Nadaraya-Watson weights of ``c``). The residual uses the targets
    ``(d/dt log p_t, grad log p_t)`` at ``x_t`` and ``(v, div v) = flow.velocity_and_div(t, x_t, c)``.
    """

    name = "cnfm"
    parametrization = "cnf"

    def __init__(self, schedule=None, l: int = 2, divergence: str = "exact", max_components: Optional[int] = None,
                 chunk_size: Optional[int] = None, t_eps: float = 1e-3, cond_bandwidth: Optional[float] = None,
                 weighting: str = "sigma", time_sampling: str = "auto"):
        spec = DEFAULT_SCHEDULE if schedule is None else schedule
        self.auto_endpoint = isinstance(spec, dict) and spec.get("sigma_min") == AUTO
        if self.auto_endpoint:
            unknown = sorted(set(spec) - {"kind", "sigma_min", "scale"})
            if unknown:
                raise ValueError(f'objective "cnfm": a schedule with sigma_min="auto" takes only "kind" and '
                                 f'"scale", got {unknown}')
            self.endpoint_scale = check_scale(spec.get("scale", 1.0), 'objective "cnfm": schedule "scale"')
            sched = None  # chosen from the data in setup()
            make_schedule({"kind": spec.get("kind", "linear")})  # a bad kind is refused now, not at setup
        else:
            sched = make_schedule(spec)
        if l not in (1, 2):
            raise ValueError(f'objective "cnfm": l must be 1 or 2, got {l!r}')
        check_method(divergence)
        if max_components is not None and (int(max_components) != max_components or max_components < 1):
            raise ValueError(f'objective "cnfm": max_components must be a positive integer or None, '
                             f"got {max_components!r}")
        if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
            raise ValueError(f'objective "cnfm": chunk_size must be a positive integer or None, got {chunk_size!r}')
        t_eps = check_unit_interval('objective "cnfm"', t_eps, "t_eps")
        if weighting not in WEIGHTINGS:
            raise ValueError(f'objective "cnfm": Invalid weighting "{weighting}". Must be one of {sorted(WEIGHTINGS)}')
        if time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f'objective "cnfm": invalid time_sampling "{time_sampling}". Must be one of '
                             f"{list(TIME_SAMPLINGS)}")
        # options are plain data, so make_objective("cnfm", **options) rebuilds this objective; only a
        # custom Schedule subclass is kept as the object itself
        schedule_options = schedule
        if type(schedule) in (Schedule, FactorSchedule):
            schedule_options = sched.options()
        super().__init__(schedule=schedule_options, l=int(l), divergence=divergence, max_components=max_components,
                         chunk_size=chunk_size, t_eps=t_eps, cond_bandwidth=cond_bandwidth, weighting=weighting,
                         **({} if time_sampling == "auto" else {"time_sampling": time_sampling}))
        self.time_sampling = time_sampling
        #: the time sampling in use, "late" or "uniform" ("auto" is resolved by setup())
        self.times: Optional[str] = None if time_sampling == "auto" else time_sampling
        self.weighting = weighting
        self.schedule: Optional[Schedule] = sched  # with an automatic end point: set by setup()
        self.kind = spec.get("kind", "linear") if self.auto_endpoint else sched.kind
        self.endpoint: Optional[EndpointChoice] = None
        self._log_abs_det = 0.0
        self.l = int(l)
        self.divergence = divergence
        self.max_components = max_components
        self.chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
        self.t_eps = t_eps
        self.cond_bandwidth = cond_bandwidth
        self.path: Optional[MixturePath] = None

    def setup(self, flow, data: torch.Tensor, conditions: Optional[torch.Tensor] = None) -> None:
        """Build the target :class:`~posegen.paths.MixturePath` on ``flow.manifold`` from ``data (N, D)``
        (flow coordinates) and, for conditional flows, ``conditions (N, C)`` (user units, as passed to the
        flow)."""
        self.check(flow)
        cond_dim = getattr(flow, "cond_dim", None)
        if cond_dim is not None and bool(cond_dim) != (conditions is not None):
            raise ValueError(f'objective "cnfm": the flow has cond_dim={cond_dim} but conditions were '
                             f'{"given" if conditions is not None else "not given"} to setup; a conditional '
                             f"flow needs one condition row per data point, an unconditional one none")
        if self.auto_endpoint:
            self.endpoint = select_endpoint(flow.manifold, data, scale=self.endpoint_scale)
            self.schedule = self.endpoint.schedule(flow.manifold, self.kind)
        log_abs_det = getattr(flow, "log_abs_det", 0.0)
        self._log_abs_det = float(log_abs_det)
        if self.time_sampling == "auto":
            self.times = "late" if _sharpest_end_point(self.schedule) < LATE_BELOW else "uniform"
        self.path = MixturePath(flow.manifold, data, schedule=self.schedule, conditions=conditions,
                                cond_bandwidth=self.cond_bandwidth, chunk_size=self.chunk_size,
                                max_components=self.max_components)

    def sample(self, x_1: torch.Tensor, condition: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None):
        """One training draw ``(t (B,), x_t (B, D))``: ``t`` in ``[t_eps, 1]`` (``time_sampling``), then
        ``x_t ~ k_t(. | x_1)``, or
        ``x_t ~ p_t(. | condition)`` on a conditional path."""
        t, x_t, _ = self._draw(x_1, condition, generator, None)
        return t, x_t

    def _draw(self, x_1, condition, generator, index):
        """:meth:`sample`, plus the data rows each ``x_t`` was drawn around (``index``, the rows of ``x_1``;
        on a conditional path the centres drawn), or ``None`` if unknown."""
        B = x_1.shape[0]
        if self.times == "late":
            u = draw_time(B, x_1, generator)
            t = self.t_eps + (1.0 - self.t_eps) * (1 - (1 - u) ** 2)
        else:
            t = draw_time(B, x_1, generator, t_max=1.0 - self.t_eps) + self.t_eps
        if condition is not None and self.path.conditional:
            x_t, source = self.path.sample(t, generator=generator, condition=condition)
        else:
            x_t, source = self.path.sample_given(x_1, t, generator), index
        return t, x_t, source

    def residual(self, flow, t: torch.Tensor, x_t: torch.Tensor, condition: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None,
                 source_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``d/dt log p_t + <grad log p_t, v> + div v`` at ``x_t (B, D)``, ``t (B,)``: shape ``(B,)``,
        differentiable w.r.t. the flow's parameters (the targets are constants). ``source_index (B,)``: the
        data rows ``x_t`` was drawn around, kept exactly in a subset estimate (``max_components``)."""
        # the targets are sums of large cancelling terms (kappa <y, x> - kappa, up to ~400 and more): never in
        # bf16, even when the trainer's autocast wraps the network
        with torch.autocast(x_t.device.type, enabled=False):
            _, dlogp_dt, grad = self.path.log_prob_dt_grad(x_t, t, condition, generator=generator,
                                                           source_index=source_index)
        v, div = flow.velocity_and_div(t, x_t, condition, method=self.divergence, generator=generator)
        # d log p_t applied to v: the coordinate pairing of the (ambient) gradient with the tangent v. It is
        # <grad, v> in every factor's induced metric, and metric-free, so it also holds for factors (joint
        # intervals) whose metric is not the coordinate one.
        return dlogp_dt + (grad * v).sum(-1) + div

    def loss(self, flow, x_1: torch.Tensor, condition: Optional[torch.Tensor] = None,
             generator: Optional[torch.Generator] = None, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``mean |residual|^l`` over the batch ``x_1 (B, D)`` (flow coordinates); a scalar.

        ``index (B,)``: the training rows ``x_1`` holds (the trainer passes them). With ``max_components``
        it keeps each point's own kernel in the subset estimate of the targets; without it the subset is
        plain (and near ``t = 1`` usually misses the centre the point was drawn around)."""
        self.check(flow)
        check_batch(flow, x_1, self.name)
        if self.path is None:
            raise RuntimeError('objective "cnfm": call setup(flow, data) before loss(): the target path is '
                               "built from the whole training set")
        if self.path.data.device != x_1.device or self.path.data.dtype != x_1.dtype:
            self.path.to(device=x_1.device, dtype=x_1.dtype)
        t, x_t, source = self._draw(x_1.detach(), condition, generator, index)
        r = self.residual(flow, t, x_t, condition, generator, source)
        if self.weighting == "sigma":
            r = r * self.schedule.noise(t)
        return (r * r).mean() if self.l == 2 else r.abs().mean()

    def diagnostics(self, train_x: torch.Tensor, val_x: torch.Tensor) -> Dict[str, float]:
        """``{"endpoint_kde_nll": ...}``: the KDE of ``train_x`` at the path's end point scored on ``val_x``
        (both ``(N, D)`` in flow coordinates, ``flow.to_internal(points)``), in the units of the flow's NLL
        (the flow's standardisation ``log_abs_det`` added), to read beside the validation NLL: a model at
        this figure is limited by its target path, not by its network. Needs :meth:`setup` first."""
        if self.path is None:
            raise RuntimeError('objective "cnfm": call setup(flow, data) before diagnostics(): the end point is '
                               "part of the path")
        return {"endpoint_kde_nll": endpoint_kde_nll(self.path, train_x, val_x) + self._log_abs_det}


def _sharpest_end_point(schedule: Schedule) -> float:
    """The smallest end point ``sigma_min`` of any factor (Gaussian ``sigma_1`` or compact ``kappa_1^(-1/2)``)."""
    if isinstance(schedule, FactorSchedule):
        return min(schedule.sigma_mins)
    return min(schedule.sigma_min, schedule.sigma_min_compact)
