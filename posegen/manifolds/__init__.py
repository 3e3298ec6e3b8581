"""Geometry: the manifold protocol, its factors (R^d, tori, joint intervals, spheres, SO(3)), products
and ``parse``.

Imports only torch (and numpy in :mod:`.gate`, which accepts arrays). Everything downstream (paths, models, solvers) consumes this protocol.
"""

from .base import TOLERANCES, Manifold, tol
from .euclidean import Euclidean
from .interval import Interval
from .parse import parse
from .product import Product
from .sphere import SO3, Sphere
from .torus import Torus, wrap_angle

__all__ = ["Manifold", "Euclidean", "Torus", "Interval", "Sphere", "SO3", "Product", "parse", "wrap_angle",
           "TOLERANCES", "tol"]
