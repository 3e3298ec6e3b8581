"""Integrators on product manifolds and the divergence behind exact likelihoods."""

from .defaults import (DEFAULT_SOLVER, LOG_PROB_CHUNK_SIZE, PREVIEW_SOLVER, SAMPLE_CHUNK_SIZE, SOLVER_KEYS,
                       default_solver, preview_solver)
from .divergence import divergence
from .ode import ADAPTIVE, FIXED, METHODS, integrate

__all__ = ["integrate", "divergence", "METHODS", "FIXED", "ADAPTIVE", "SOLVER_KEYS", "DEFAULT_SOLVER",
           "PREVIEW_SOLVER", "SAMPLE_CHUNK_SIZE", "LOG_PROB_CHUNK_SIZE", "default_solver", "preview_solver"]
