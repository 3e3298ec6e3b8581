"""Integrator and chunk defaults: the one place they are set.

Everything that integrates the flow without being told how reads its defaults here: ``PoseFlow`` (its
default ``solver``, the chunk sizes of ``sample``/``log_prob``), :func:`posegen.solvers.integrate`, the
training loop's validation, the run config (``sample``, ``eval``, ``plot`` sections) and the CLI.

Two words, two meanings: a *chunk* (``chunk_size``) is how many points are integrated at once, a memory
bound (samples and exact likelihoods do not depend on it); a *batch* (``batch_size``) is the training batch
of one optimiser step.
"""

from __future__ import annotations

from typing import Any, Dict

#: The keys of a solver settings mapping, in the order they are listed in messages.
SOLVER_KEYS = ("method", "steps", "step", "atol", "rtol")

#: ``PoseFlow``'s default integrator (``sample``, ``log_prob``, ``posegen sample``/``eval``): RK4, 32 steps,
#: projected steps; ``atol``/``rtol`` are read by the adaptive methods only.
DEFAULT_SOLVER: Dict[str, Any] = {"method": "rk4", "steps": 32, "step": "project", "atol": 1e-5, "rtol": 1e-5}

#: The cheaper integrator for repeated, approximate passes: the training loop's validation NLL and the
#: figures of ``posegen plot`` (keys not given here come from the flow's own solver).
PREVIEW_SOLVER: Dict[str, Any] = {"method": "rk4", "steps": 16}

#: Points integrated at once by ``PoseFlow.sample`` (and ``posegen sample``).
SAMPLE_CHUNK_SIZE = 65536
#: Points integrated at once by ``PoseFlow.log_prob`` (and ``posegen eval``, the training validation): smaller
#: than for sampling, since the divergence keeps a Jacobian per point.
LOG_PROB_CHUNK_SIZE = 8192


def default_solver() -> Dict[str, Any]:
    """A fresh copy of :data:`DEFAULT_SOLVER`."""
    return dict(DEFAULT_SOLVER)


def preview_solver() -> Dict[str, Any]:
    """A fresh copy of :data:`PREVIEW_SOLVER`."""
    return dict(PREVIEW_SOLVER)


__all__ = ["SOLVER_KEYS", "DEFAULT_SOLVER", "PREVIEW_SOLVER", "SAMPLE_CHUNK_SIZE", "LOG_PROB_CHUNK_SIZE",
           "default_solver", "preview_solver"]
