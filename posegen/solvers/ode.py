r"""ODE integration on product manifolds: fixed-step Euler, midpoint and RK4, and adaptive dopri5.

The state is a point ``x (B, D)`` on the manifold plus optional flat extras ``e (B, K)`` (the running
log-density of :meth:`posegen.PoseFlow.log_prob`). Two ways to keep the point on the manifold:

* ``step="project"`` (default): the field is defined on all of the ambient coordinates (posegen's fields
  evaluate ``v(projx(x))``), so a classical Runge-Kutta step in coordinates followed by ``projx`` keeps the
  scheme's order: RK4 stays 4th order on spheres (measured in ``tests/test_solvers.py``).
* ``step="expmap"``: stages are pulled back to the tangent space at the step's start with ``proju`` and the
  step is taken along the geodesic with ``expmap``. For Euler this is the textbook geodesic Euler; for
  higher orders the projection of stage velocities costs accuracy (it is 2nd order at best), which is why
  it is not the default.

On R^d and tori both are the same (``projx`` wraps angles).

Factors whose stored coordinates are not complete (a joint interval, whose points must stay inside its
limits) are integrated in their chart (``Manifold.to_chart``: R^d for an interval), where no step of any
size can leave them; the field is evaluated at ``from_chart(y)`` and mapped with ``chart_velocity``. The
running log-density is a scalar along the trajectory, so it does not depend on the chart.

Adaptive integration (``method="dopri5"`` and torchdiffeq's other adaptive solvers) runs torchdiffeq on
the flat coordinates and projects at the end; the field sees ``projx(x)`` at every stage. Prefer dopri5:
torchdiffeq 0.2.5's dopri8 was measured to miss its tolerance by 100-1000x (``tests/test_solvers.py``).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torchdiffeq import odeint

from ..manifolds import Manifold
from .defaults import DEFAULT_SOLVER

# Butcher tableaus: (a rows, b, c).
_TABLEAUS = {
    "euler": ([], [1.0], [0.0]),
    "midpoint": ([[0.5]], [0.0, 1.0], [0.0, 0.5]),
    "rk4": ([[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6], [0.0, 0.5, 0.5, 1.0]),
}
FIXED = tuple(_TABLEAUS)
ADAPTIVE = ("dopri5", "dopri8", "bosh3", "adaptive_heun")
METHODS = FIXED + ADAPTIVE
STEPS = ("project", "expmap")

Field = Callable[[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, Optional[torch.Tensor]]]


def check_method(method: str, step: str = "project") -> None:
    if method not in METHODS:
        raise ValueError(f'Invalid method "{method}". Must be one of {sorted(METHODS)}')
    if step not in STEPS:
        raise ValueError(f'Invalid step "{step}". Must be one of {sorted(STEPS)}')


def integrate(field: Field, x: torch.Tensor, manifold: Manifold, t0: float = 0.0, t1: float = 1.0, *,
              extra: Optional[torch.Tensor] = None, method: str = DEFAULT_SOLVER["method"],
              steps: int = DEFAULT_SOLVER["steps"], step: str = DEFAULT_SOLVER["step"],
              atol: float = DEFAULT_SOLVER["atol"], rtol: float = DEFAULT_SOLVER["rtol"]):
    """Integrate ``dx/dt = v(t, x)`` (and ``de/dt = g(t, x)``) from ``t0`` to ``t1``.

    Args:
        field: ``field(t (B,), x (B, D)) -> (v (B, D), g (B, K) or None)``.
        x: start points ``(B, D)`` on ``manifold``.
        manifold: where ``x`` lives.
        t0, t1: start and end time (``t1 < t0`` integrates backwards).
        extra: flat extras ``(B, K)`` integrated alongside, or None.
        method: ``"euler"``, ``"midpoint"``, ``"rk4"`` (fixed steps) or an adaptive torchdiffeq method.
        steps: number of fixed steps (NFE = steps x stages).
        step: ``"project"`` or ``"expmap"`` (fixed-step methods; see module docstring).
        atol, rtol: tolerances of adaptive methods.

    Returns:
        ``x_t1 (B, D)`` if ``extra`` is None, else ``(x_t1, e_t1)``.
    """
    check_method(method, step)
    if manifold.has_chart:
        field_c, y, chart, back = _in_chart(field, x, manifold)
        out = integrate(field_c, y, chart, t0, t1, extra=extra, method=method, steps=steps, step=step,
                        atol=atol, rtol=rtol)
        return back(out) if extra is None else (back(out[0]), out[1])
    if method in ADAPTIVE:
        out = _adaptive(field, x, manifold, t0, t1, extra, method, atol, rtol)
    else:
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        out = _fixed(field, x, manifold, t0, t1, extra, method, int(steps), step)
    return out if extra is not None else out[0]


def _in_chart(field, x, manifold):
    """The problem restated in ``manifold``'s chart: ``(field_in_chart, y, chart_manifold, back)``."""
    chart = manifold.chart_manifold()

    def field_in_chart(t, y):
        p = manifold.from_chart(y)
        v, g = field(t, p)
        return manifold.chart_velocity(p, v), g

    return field_in_chart, manifold.to_chart(x), chart, manifold.from_chart


def _advance(manifold, x, dx, h, step):
    if step == "project":
        return manifold.projx(x + h * dx)
    return manifold.expmap(x, h * manifold.proju(x, dx))


def _fixed(field, x, manifold, t0, t1, extra, method, steps, step):
    a, b, c = _TABLEAUS[method]
    h = (t1 - t0) / steps
    B = x.shape[0]
    for n in range(steps):
        t = t0 + n * h
        ks, gs = [], []
        for i, ci in enumerate(c):
            xi = x if i == 0 else _advance(manifold, x, sum(aij * k for aij, k in zip(a[i - 1], ks)), h, step)
            ti = torch.full((B,), t + ci * h, dtype=x.dtype, device=x.device)
            k, g = field(ti, xi)
            ks.append(k)
            gs.append(g)
        x = _advance(manifold, x, sum(bi * k for bi, k in zip(b, ks)), h, step)
        if extra is not None:
            extra = extra + h * sum(bi * g for bi, g in zip(b, gs))
    return x, extra


def _adaptive(field, x, manifold, t0, t1, extra, method, atol, rtol):
    D = x.shape[-1]
    B = x.shape[0]

    def f(t, y):
        xs = manifold.projx(y[:, :D])
        v, g = field(t.expand(B).to(y.dtype), xs)
        return v if extra is None else torch.cat([v, g], -1)

    y0 = x if extra is None else torch.cat([x, extra], -1)
    ts = torch.tensor([t0, t1], dtype=x.dtype, device=x.device)
    y1 = odeint(f, y0, ts, method=method, atol=atol, rtol=rtol)[-1]
    return manifold.projx(y1[:, :D]), (None if extra is None else y1[:, D:])
