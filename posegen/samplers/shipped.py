"""The weights shipped with posegen (``posegen/samplers/weights/<kind>_<name>.pt``) and how to find them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["weights_path", "shipped_weights"]


def weights_path(kind: str, name: str) -> Path:
    """Where the shipped ``kind`` model (``"ik"``, ``"grasp"``) of ``name`` (a robot, a gripper) lives."""
    return Path(str(resources.files("posegen.samplers") / "weights" / f"{kind}_{name}.pt"))


def shipped_weights(kind: str, name: str, what: str, instead: str) -> Path:
    """:func:`weights_path` of a file that exists; ValueError naming the shipped ones and ``instead`` otherwise."""
    path = weights_path(kind, str(name))
    if not path.is_file():
        have = sorted(p.stem[len(kind) + 1:] for p in path.parent.glob(f"{kind}_*.pt"))
        raise ValueError(f"no pretrained {what} for {name!r}; shipped: {have} ({instead})")
    return path
