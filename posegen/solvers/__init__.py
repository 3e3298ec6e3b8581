"""Integrators on product manifolds and the divergence behind exact likelihoods."""

from .divergence import divergence
from .ode import ADAPTIVE, FIXED, METHODS, integrate

__all__ = ["integrate", "divergence", "METHODS", "FIXED", "ADAPTIVE"]
