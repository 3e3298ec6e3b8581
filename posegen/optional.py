"""Optional dependencies, imported on first use with one error shape.

posegen's core needs torch, roma, torchdiffeq, numpy and PyYAML; each heavier dependency belongs to an extra
(``pyproject.toml``) and is imported only by the function that needs it, through :func:`require`, so that a
missing one says what needed it and which extra installs it::

    trimesh = require("trimesh", extra="grasps", purpose="posegen.grasps")
    # ImportError: posegen.grasps needs trimesh: pip install "posegen[grasps]" (No module named 'trimesh')
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require", "install_hint"]


def install_hint(extra: str, alternative: str = "") -> str:
    """``pip install "posegen[extra]"`` (quoted, so that zsh does not glob the brackets), and ``alternative`` (a
    plain pip install of the package itself, e.g. ``pip install ompl``) after it when given."""
    return f'pip install "posegen[{extra}]"' + (f" (or: {alternative})" if alternative else "")


def require(module: str, *, extra: str, purpose: str, alternative: str = "") -> ModuleType:
    """``importlib.import_module(module)``; if that fails (the package, or one of its own dependencies, is missing),
    one ImportError naming ``purpose`` (what needed it), the package and the extra that installs it.

    Args:
        module: dotted module name (``"trimesh"``, ``"scipy.spatial"``, ``"pyarrow.parquet"``).
        extra: the optional extra of posegen's ``pyproject.toml`` that installs it.
        purpose: what needs it, as the user called it (``"posegen.grasps"``, ``"plots"``, a file name).
        alternative: another way to install it, appended to the hint.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = module.split(".")[0]
        raise ImportError(f"{purpose} needs {package}: {install_hint(extra, alternative)} ({e})") from e
