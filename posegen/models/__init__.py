"""Velocity networks on product manifolds, and encoders of structured conditions (point clouds)."""

from .encoders import ENCODERS, PointCloudEncoder, make_encoder
from .velocity import ACTIVATIONS, CONDITIONING, VelocityMLP

__all__ = ["VelocityMLP", "ACTIVATIONS", "CONDITIONING", "PointCloudEncoder", "ENCODERS", "make_encoder"]
