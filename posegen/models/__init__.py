"""Velocity networks on product manifolds."""

from .velocity import ACTIVATIONS, CONDITIONING, VelocityMLP

__all__ = ["VelocityMLP", "ACTIVATIONS", "CONDITIONING"]
