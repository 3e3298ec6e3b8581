"""Lazy import of pytorch_kinematics, the optional dependency behind :mod:`posegen.robots`.

``import posegen`` (and ``import posegen.robots``) must work without it; only building a kinematic chain
needs it, and then a missing install says how to get it.
"""

from __future__ import annotations

from types import ModuleType

from ..optional import require


def pytorch_kinematics() -> ModuleType:
    """The imported ``pytorch_kinematics`` module, or ImportError with the install command."""
    return require("pytorch_kinematics", extra="robots", purpose="posegen.robots")
