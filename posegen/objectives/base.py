r"""The interface every training objective follows, and the draws they share.

An objective turns a batch of data into a scalar loss for a :class:`~posegen.PoseFlow`. It works in the
flow's internal coordinates (Euclidean columns standardised, ``flow.to_internal(points)``), never in user
units, and calls the flow only through ``flow.velocity``, ``flow.velocity_and_div`` and
``flow.moser_density``.

Lifecycle::

    obj = make_objective("rfm", t_eps=1e-3)
    obj.check(flow)                            # clear ValueError if the flow does not fit
    obj.setup(flow, data, conditions)          # once, before training: precomputation
    loss = obj.loss(flow, x_1, condition, generator=g)   # every step
    loss.backward()

Randomness: every draw takes ``generator``. A CPU generator (what posegen passes around) draws on the
CPU and the result is moved to the data's device, so one seed gives the same batch on any device; with
``generator=None`` the draws use the global RNG of the data's device.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, Optional, Tuple

import torch

PARAMETRIZATION_USE = {
    "cnf": "a time-dependent velocity field integrated as an ODE",
    "moser": "the density nu - div u of a time-independent field u",
}


class Objective(abc.ABC):
    """A training loss for one of PoseFlow's parametrizations.

    Class attributes:
        name: the registry key (:data:`posegen.objectives.OBJECTIVES`).
        parametrization: which :class:`~posegen.PoseFlow` parametrization it trains, ``"cnf"`` or
            ``"moser"``.

    Subclasses store their constructor options in ``self.options`` (plain data), so that
    ``make_objective(obj.name, **obj.options)`` rebuilds the same objective (e.g. from a checkpoint).
    """

    name: str = ""
    parametrization: str = "cnf"

    def __init__(self, **options: Any):
        self.options: Dict[str, Any] = dict(options)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # ------------------------------------------------------------------ contract
    def check(self, flow) -> None:
        """Raise :class:`ValueError` if ``flow`` is not one this objective can train.

        The base check compares ``flow.parametrization`` with :attr:`parametrization`; objectives with
        further needs (Moser Flow: a compact manifold) extend it.
        """
        got = getattr(flow, "parametrization", None)
        if got == self.parametrization:
            return
        fits = sorted(n for n, c in _registry().items() if getattr(c, "parametrization", None) == got)
        instead = (f'train it with objective {" or ".join(repr(n) for n in fits)}, or '
                   if fits else "")
        raise ValueError(
            f'objective "{self.name}" trains a flow with parametrization="{self.parametrization}" '
            f"({PARAMETRIZATION_USE.get(self.parametrization, '?')}), but got a flow with "
            f'parametrization="{got}": {instead}build the flow with '
            f'PoseFlow(..., parametrization="{self.parametrization}")')

    def setup(self, flow, data: torch.Tensor, conditions: Optional[torch.Tensor] = None) -> None:
        """Precompute what the loss needs from the whole training set (once, before training).

        Args:
            flow: the :class:`~posegen.PoseFlow` to be trained (checked with :meth:`check`).
            data: ``(N, coord_dim)`` training points in flow coordinates (``flow.to_internal(points)``).
            conditions: ``(N, cond_dim)`` in user units, or ``None`` for unconditional flows.

        The default only checks the flow; CNFM builds its mixture path here.
        """
        self.check(flow)

    def diagnostics(self, train_x: torch.Tensor, val_x: torch.Tensor) -> Dict[str, float]:
        """Figures about the objective's target, to log beside the validation NLL: ``{name: value}``.

        ``train_x (N, coord_dim)``, ``val_x (M, coord_dim)``: training and validation points in flow
        coordinates, after :meth:`setup`. The default has none (``{}``); CNFM reports the likelihood its
        path's end point allows (``"endpoint_kde_nll"``).
        """
        return {}

    @abc.abstractmethod
    def loss(self, flow, x_1: torch.Tensor, condition: Optional[torch.Tensor] = None,
             generator: Optional[torch.Generator] = None, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scalar loss for a batch ``x_1 (B, coord_dim)`` in flow coordinates.

        ``condition (B, cond_dim)`` in user units (``None`` for unconditional flows); ``generator`` makes
        the loss's random draws reproducible; ``index (B,)``: the rows of the training data (as given to
        :meth:`setup`) that ``x_1`` holds, if known (CNFM's subset estimate uses them). Differentiable
        w.r.t. the flow's parameters.
        """


def _registry() -> Dict[str, type]:
    """``{name: class}`` of every concrete objective defined so far (the subclasses, not the package's registry:
    this module sits below the package)."""
    found, todo = {}, list(Objective.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if not getattr(cls, "__abstractmethods__", None) and isinstance(getattr(cls, "name", None), str):
            found.setdefault(cls.name, cls)
    return found


# ---------------------------------------------------------------------- shared draws
def draw_device(generator: Optional[torch.Generator], like: torch.Tensor) -> torch.device:
    """Where to draw: the generator's device if one is given, else the data's."""
    return generator.device if generator is not None else like.device


def draw_base(flow, n: int, like: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``n`` samples ``(n, coord_dim)`` of the flow's base distribution (uniform on compact factors,
    N(0, I) on R^d), with ``like``'s dtype and device."""
    x = flow.manifold.sample_base(n, generator=generator, dtype=like.dtype, device=draw_device(generator, like))
    return x.to(like.device)


def draw_time(n: int, like: torch.Tensor, generator: Optional[torch.Generator] = None,
              t_max: float = 1.0) -> torch.Tensor:
    """``t (n,) ~ U[0, t_max]`` with ``like``'s dtype and device."""
    t = torch.rand(n, generator=generator, dtype=like.dtype, device=draw_device(generator, like))
    return (t * t_max).to(like.device)


def check_batch(flow, x_1: torch.Tensor, name: str) -> None:
    """Shape check of a training batch: ``(B, coord_dim)`` floating point."""
    D = flow.manifold.coord_dim
    if not isinstance(x_1, torch.Tensor) or x_1.dim() != 2 or x_1.shape[-1] != D or not x_1.is_floating_point():
        got = tuple(x_1.shape) if isinstance(x_1, torch.Tensor) else type(x_1).__name__
        raise ValueError(f'objective "{name}": x_1 must be a floating-point tensor of shape (B, {D}) for '
                         f"{flow.manifold!r}, got {got}")


def check_unit_interval(name: str, value: float, what: str) -> float:
    """``value`` in ``[0, 1)`` as a float, else a ValueError naming the option."""
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}: {what} must be in [0, 1), got {value!r}")
    return v



class PathObjective(Objective):
    r"""Shared part of the simulation-free objectives (RFM, stochastic interpolants).

    Each step draws ``x_0`` from the base, ``t ~ U[0, 1 - t_eps]`` and a point ``x_t`` with velocity
    ``dx_t`` on a path from ``x_0`` (t=0) to the data point ``x_1`` (t=1) (:meth:`path`); subclasses turn
    ``v(t, x_t)`` and ``dx_t`` into a loss.

    Why ``t_eps``: the regression target is the marginal field ``E[dx_t | x_t]``. As ``t -> 1`` the paths
    converge onto the data points, so this field (written in ``x``) steepens like ``1 / (1 - t)``
    (``log_x(x_1) / (1 - t)``), and at ``t = 1`` its value at a data point is the average displacement
    from a random base point: a target of pure variance that no field can fit. Dropping the last sliver
    ``[1 - t_eps, 1]`` of times keeps the regression well posed at a cost the ODE solver does not notice.
    ``t_eps = 0`` samples all of ``[0, 1)``.

    ``time_sampling``: ``"uniform"`` (default) or ``"late"``, ``t = 1 - (1 - u)^2`` (density ``1 / (2 sqrt(1 - t))``,
    more draws where the field is sharp, near the data). Measured on fire (S2, 4 minutes of one CPU
    thread, ``benchmarks/fire_budget.py``): test NLL -0.82 against -0.67 uniform.
    """

    parametrization = "cnf"
    TIME_SAMPLINGS = ("late", "uniform")

    def __init__(self, t_eps: float = 1e-3, time_sampling: str = "uniform", **options: Any):
        self.t_eps = check_unit_interval(f'objective "{self.name}"', t_eps, "t_eps")
        if time_sampling not in self.TIME_SAMPLINGS:
            raise ValueError(f'objective "{self.name}": invalid time_sampling "{time_sampling}". Must be one of '
                             f'{list(self.TIME_SAMPLINGS)}')
        self.time_sampling = time_sampling
        if time_sampling != "uniform":
            options["time_sampling"] = time_sampling
        super().__init__(t_eps=self.t_eps, **options)

    def path(self, manifold, x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x_t, dx_t)``, each ``(B, coord_dim)``, for ``x_0, x_1 (B, coord_dim)`` and ``t (B,)``:
        by default the minimising geodesic of every factor (``manifold.geodesic``)."""
        return manifold.geodesic(x_0, x_1, t)

    def sample(self, flow, x_1: torch.Tensor, generator: Optional[torch.Generator] = None):
        """One training draw: ``(t (B,), x_t (B, D), dx_t (B, D))`` for the batch ``x_1 (B, D)``.

        Draws ``x_0`` first, then ``t``, both from ``generator``: the same generator state gives the same
        draw for every :class:`PathObjective`.
        """
        B = x_1.shape[0]
        x_0 = draw_base(flow, B, x_1, generator)
        t = draw_time(B, x_1, generator, t_max=1.0)
        if self.time_sampling == "late":
            t = 1 - (1 - t) ** 2
        t = t * (1.0 - self.t_eps)
        x_t, dx_t = self.path(flow.manifold, x_0, x_1, t)
        return t, x_t, dx_t

    def loss(self, flow, x_1, condition=None, generator=None, index=None):
        self.check(flow)
        check_batch(flow, x_1, self.name)
        t, x_t, dx_t = self.sample(flow, x_1, generator)
        v = flow.velocity(t, x_t, condition)
        return self.path_loss(flow.manifold, x_t, v, dx_t).mean()

    @abc.abstractmethod
    def path_loss(self, manifold, x_t: torch.Tensor, v: torch.Tensor, dx_t: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ``(B,)`` from the model velocity ``v`` and the path velocity ``dx_t`` at ``x_t``."""
