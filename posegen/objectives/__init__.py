"""Training objectives: one interface (:class:`Objective`), four losses, one registry.

=============== ================= ==========================================================
name            parametrization   loss
=============== ================= ==========================================================
``cnfm``        cnf               CNFM: flow matching on a mixture path built from the data
``rfm``         cnf               Riemannian Flow Matching: regression onto geodesic velocities
``interpolant`` cnf               stochastic interpolants: ``E|v|^2 - 2<dI/dt, v>``
``moser``       moser             Moser Flow: NLL of ``nu - div u`` + negative-part penalty
=============== ================= ==========================================================

Example::

    obj = make_objective("rfm", t_eps=1e-3)
    obj.setup(flow, flow.to_internal(points))
    loss = obj.loss(flow, flow.to_internal(batch), generator=g)
"""

from __future__ import annotations

import inspect
from typing import Any, Dict

from .base import Objective, PathObjective
from .cnfm import CNFM
from .interpolant import Interpolant
from .moser import Moser
from .rfm import RFM

OBJECTIVES: Dict[str, Any] = {"cnfm": CNFM, "moser": Moser, "rfm": RFM, "interpolant": Interpolant}


def make_objective(name: str, **options: Any) -> Objective:
    """Build the objective registered as ``name`` with its constructor ``options``.

    Unknown names and unknown options raise :class:`ValueError` listing the valid ones;
    ``make_objective(obj.name, **obj.options)`` rebuilds ``obj``.
    """
    if name not in OBJECTIVES:
        raise ValueError(f'Invalid objective "{name}". Must be one of {sorted(OBJECTIVES)}')
    cls = OBJECTIVES[name]
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [k for k in params if k != "self"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f'objective "{name}" got unknown option(s) {unknown}. Valid options: {valid}')
    return cls(**options)


__all__ = ["Objective", "PathObjective", "CNFM", "Moser", "RFM", "Interpolant", "OBJECTIVES", "make_objective"]
