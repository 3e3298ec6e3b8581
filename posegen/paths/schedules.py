r"""Noise schedules of the CNFM target path: ``alpha_t, sigma_t`` on R^d and ``kappa_t`` on compact factors.

Time runs from the base (``t = 0``) to the data (``t = 1``):

* R^d: the kernel is ``N(alpha_t y, sigma_t^2 I)`` with ``alpha_0 = 0, sigma_0 = 1`` (the base ``N(0, I)``)
  and ``alpha_1 = 1, sigma_1 = sigma_min``.
* tori, spheres, SO3: von Mises / von Mises-Fisher kernels of concentration ``kappa_t`` with ``kappa_0 = 0``
  (uniform, the base) and ``kappa_1 = kappa_max``.

By default one signal-to-noise curve drives every factor: ``kappa_t = (alpha_t / sigma_t)^2``. For large
``kappa`` a vMF kernel is close to a Gaussian of variance ``1 / kappa`` in every tangent direction, so the
compact factors then see the same noise-to-signal ratio ``sigma_t / alpha_t`` as the (standardised)
Euclidean ones, and ``kappa_max = 1 / sigma_min^2``. Passing ``kappa_max`` gives the compact factors their
own end point: they use the same shape with ``sigma_min_c = kappa_max^(-1/2)``.

Every method takes a tensor ``t (...)`` and returns a tensor of the same shape built from differentiable
torch operations, so ``torch.autograd`` gives ``d/dt`` of anything computed from a schedule. Subclass
:class:`Schedule` and override :meth:`~Schedule.alpha`, :meth:`~Schedule.sigma` and
:meth:`~Schedule.kappa` for a custom path; they must keep the boundary values above (``p_0`` = base).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch

Curve = Callable[[torch.Tensor], torch.Tensor]


def _linear_alpha(t: torch.Tensor) -> torch.Tensor:
    return t


def _linear_sigma(t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    return 1 - (1 - sigma_min) * t


def _cosine_alpha(t: torch.Tensor) -> torch.Tensor:
    return torch.sin(0.5 * math.pi * t)


def _cosine_sigma(t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    return sigma_min + (1 - sigma_min) * torch.cos(0.5 * math.pi * t)


#: Shapes of the schedule: name -> (alpha(t), sigma(t, sigma_min)), both with alpha_0 = 0, alpha_1 = 1,
#: sigma_0 = 1, sigma_1 = sigma_min.
SHAPES: Dict[str, Tuple[Curve, Callable[[torch.Tensor, float], torch.Tensor]]] = {
    "linear": (_linear_alpha, _linear_sigma),  # the OT (rectified) path: alpha_t = t, sigma_t = 1 - (1 - s) t
    "cosine": (_cosine_alpha, _cosine_sigma),  # alpha_t = sin(pi t / 2), sigma_t = s + (1 - s) cos(pi t / 2)
}


class Schedule:
    """The default schedule family: one signal-to-noise curve for every factor.

    Args:
        kind: the shape, one of :data:`SHAPES` (``"linear"`` or ``"cosine"``).
        sigma_min: ``sigma_1`` of the Gaussian kernels on R^d, in ``(0, 1)``; in the standardised Euclidean
            coordinates, so it is a fraction of each coordinate's standard deviation.
        kappa_max: ``kappa_1`` of the compact factors; ``None`` means ``1 / sigma_min^2``.

    Methods take ``t (...)`` in ``[0, 1]`` and return tensors of the same shape.
    """

    def __init__(self, kind: str = "linear", sigma_min: float = 1e-2, kappa_max: Optional[float] = None):
        if kind not in SHAPES:
            raise ValueError(f'Invalid schedule kind "{kind}". Must be one of {sorted(SHAPES)}')
        sigma_min = float(sigma_min)
        if not 0 < sigma_min < 1:
            raise ValueError(f"Schedule: sigma_min must lie in (0, 1), got {sigma_min}")
        if kappa_max is not None:
            kappa_max = float(kappa_max)
            if not (kappa_max > 0 and math.isfinite(kappa_max)):
                raise ValueError(f"Schedule: kappa_max must be positive and finite, got {kappa_max}")
        self.kind = kind
        self.sigma_min = sigma_min
        self.kappa_max = kappa_max
        self._alpha, self._sigma = SHAPES[kind]
        # sigma_min of the compact factors' own noise curve: kappa_t = (alpha_t / sigma_c(t))^2.
        self.sigma_min_compact = sigma_min if kappa_max is None else kappa_max ** -0.5

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Signal scale ``alpha_t`` of the Gaussian kernels: ``alpha_0 = 0``, ``alpha_1 = 1``."""
        return self._alpha(t)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Standard deviation ``sigma_t`` of the Gaussian kernels: ``sigma_0 = 1``, ``sigma_1 = sigma_min``."""
        return self._sigma(t, self.sigma_min)

    def kappa(self, t: torch.Tensor) -> torch.Tensor:
        """Concentration ``kappa_t = (alpha_t / sigma_c(t))^2`` of the compact kernels: ``kappa_0 = 0``,
        ``kappa_1 = kappa_max``."""
        return (self._alpha(t) / self._sigma(t, self.sigma_min_compact)) ** 2

    def factor(self, i: int) -> "Schedule":
        """The schedule of factor ``i`` of a product: this one (one end point for every factor)."""
        return self

    def noise(self, t: torch.Tensor) -> torch.Tensor:
        """The path's noise scale at ``t (...)``, what CNFM's ``weighting="sigma"`` multiplies residuals by:
        ``sigma_t`` here."""
        return self.sigma(t)

    def options(self) -> dict:
        """Plain-data keyword arguments that rebuild this schedule (``make_schedule(s.options())``)."""
        return dict(kind=self.kind, sigma_min=self.sigma_min, kappa_max=self.kappa_max)

    def __repr__(self) -> str:
        extra = "" if self.kappa_max is None else f", kappa_max={self.kappa_max:g}"
        return f"Schedule(kind={self.kind!r}, sigma_min={self.sigma_min:g}{extra})"


class FactorSchedule(Schedule):
    """One shape, an end point per factor of a product: factor ``i`` follows
    ``Schedule(kind, sigma_min=sigma_min[i])`` (``sigma_1 = sigma_min[i]`` in standardised units on R^d and
    in the chart of intervals; ``kappa_1 = 1 / sigma_min[i]^2`` on tori, spheres and SO3).

    Args:
        kind: the shape, one of :data:`SHAPES`.
        sigma_min: one end point per factor, each in ``(0, 1)``.
        dims: the factors' intrinsic dimensions (for :meth:`noise`); default 1 each.

    ``alpha``, ``sigma`` and ``kappa`` of the object itself are those of the sharpest factor; kernels use
    :meth:`factor`. :meth:`noise` is ``D / sum_i (d_i / sigma_i(t))``: the targets of factor ``i`` grow like
    ``d_i / sigma_i(t)``, so it weights residuals by the scale of their sum (``sigma_t`` when all end points
    are equal).
    """

    def __init__(self, kind: str = "linear", sigma_min: Sequence[float] = (1e-2,),
                 dims: Optional[Sequence[int]] = None):
        values = [float(v) for v in sigma_min]
        if not values:
            raise ValueError("FactorSchedule: sigma_min needs one value per factor, got none")
        self.factors = [Schedule(kind, v) for v in values]  # checks kind and every value
        dims = [1] * len(values) if dims is None else [int(d) for d in dims]
        if len(dims) != len(values) or min(dims) < 1:
            raise ValueError(f"FactorSchedule: dims must be {len(values)} positive integers (one per factor), "
                             f"got {dims}")
        super().__init__(kind, min(values))
        self.sigma_mins = values
        self.dims = dims

    def factor(self, i: int) -> Schedule:
        if not 0 <= i < len(self.factors):
            raise ValueError(f"FactorSchedule has {len(self.factors)} factors, got factor index {i}")
        return self.factors[i]

    def noise(self, t: torch.Tensor) -> torch.Tensor:
        rate = sum(d / f.sigma(t) for d, f in zip(self.dims, self.factors))
        return sum(self.dims) / rate

    def options(self) -> dict:
        return dict(kind=self.kind, sigma_min=list(self.sigma_mins), dims=list(self.dims))

    def __repr__(self) -> str:
        ends = ", ".join(f"{v:.4g}" for v in self.sigma_mins)
        return f"FactorSchedule(kind={self.kind!r}, sigma_min=[{ends}])"


def make_schedule(spec: Union[None, str, dict, Schedule] = None) -> Schedule:
    """A :class:`Schedule` from ``None`` (the default linear one), a kind name, a dict of
    :class:`Schedule` keyword arguments (as read from a config; a list ``sigma_min``, one per factor, gives a
    :class:`FactorSchedule`), or a schedule (returned as is)."""
    if spec is None:
        return Schedule()
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        return Schedule(spec)
    if isinstance(spec, dict):
        if isinstance(spec.get("sigma_min"), (list, tuple)):
            return FactorSchedule(**spec)
        return Schedule(**spec)
    raise TypeError(f"schedule must be None, a kind name, a dict or a Schedule, got {type(spec).__name__}")
