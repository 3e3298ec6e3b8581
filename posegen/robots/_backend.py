"""Lazy import of pytorch_kinematics, the optional dependency behind :mod:`posegen.robots`.

``import posegen`` (and ``import posegen.robots``) must work without it; only building a kinematic chain
needs it, and then a missing install says how to get it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_INSTALL_HINT = 'posegen.robots needs pytorch_kinematics: pip install "posegen[robots]"'


def pytorch_kinematics() -> ModuleType:
    """The imported ``pytorch_kinematics`` module, or ImportError with the install command."""
    try:
        return importlib.import_module("pytorch_kinematics")
    except ImportError as e:  # the package or one of its own dependencies is missing
        raise ImportError(f"{_INSTALL_HINT} ({e})") from e
